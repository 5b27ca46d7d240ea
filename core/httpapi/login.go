package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/dpop"
	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/login/pages"
	"github.com/sessiond/sessiond/core/session"
)

// Logins runs the browser login flows; *login.Service implements it.
type Logins interface {
	Issuer(realm string) string
	ReadCookie(ctx context.Context, realm, raw string) *login.SSO
	Authorize(ctx context.Context, realm string, q *login.Request, sso *login.SSO) (*login.Outcome, error)
	Return(ctx context.Context, realm, verifier string, binding func(name string) string) (*login.Outcome, error)
	Get(ctx context.Context, realm, challenge string) (*login.LoginRequest, error)
	AcceptLogin(ctx context.Context, realm, challenge string, a login.Accept) (string, error)
	RejectLogin(ctx context.Context, realm, challenge string, rj login.Reject) (string, error)
	Redeem(ctx context.Context, g login.CodeGrant) (*login.Exchange, error)
	UserInfo(ctx context.Context, realm, raw, jkt string) (map[string]any, error)
	EndSession(ctx context.Context, realm string, l login.Logout, sso *login.SSO) (*login.LogoutOutcome, error)
}

// SSOCookie is the name of sessiond's SSO cookie. Its Path is the realm's, so one name
// serves every realm.
const SSOCookie = "SESSIOND_SSO"

func (s *Server) loginRoutes() {
	s.mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/auth", s.authorize)
	s.mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/auth", s.authorize)
	s.mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/userinfo", s.userinfo)
	s.mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/userinfo", s.userinfo)
	s.mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/logout", s.endSession)
	s.mux.HandleFunc("GET /realms/{realm}/login-requests/{challenge}", s.loginRequest)
	s.mux.HandleFunc("PUT /realms/{realm}/login-requests/{challenge}/accept", s.acceptLogin)
	s.mux.HandleFunc("PUT /realms/{realm}/login-requests/{challenge}/reject", s.rejectLogin)
}

// pageError shows an error page; a failure of the store is a 503 page, a throttled login a
// 429 page with Retry-After, anything else a 500.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *login.PageError
	if errors.As(err, &pe) {
		pages.Render(w, http.StatusBadRequest, "error.html", pages.Error{Title: "We cannot sign you in", Description: pe.Description})
		return
	}
	code, body := s.classify(r, err)
	if throttled := (*authfail.ThrottledError)(nil); errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
	}
	if code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	}
	pages.Render(w, code, "error.html", pages.Error{Title: "We cannot sign you in", Description: body.Description})
}

// browserParams reads a browser's parameters: the query of a GET, the form of a POST.
func (s *Server) browserParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method == http.MethodGet {
		return r.URL.Query(), nil
	}
	if err := s.form(w, r, r.PathValue("realm")); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// authorize is the authorization endpoint (RFC 6749 §3.1, OpenID Connect Core §3.1.2).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	rl, err := s.knownRealm(name)
	if err != nil {
		s.pageError(w, r, &login.PageError{Description: "the realm does not exist"})
		return
	}
	params, err := s.browserParams(w, r)
	if err != nil {
		s.pageError(w, r, &login.PageError{Description: "the request is malformed"})
		return
	}
	if v := params.Get("login_verifier"); v != "" {
		out, err := s.login.Return(r.Context(), name, v, func(cookie string) string {
			if c, err := r.Cookie(cookie); err == nil {
				return c.Value
			}
			return ""
		})
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		s.setSSOCookie(w, name, out)
		sendBack(w, r, out)
		return
	}
	q, err := login.ParseRequest(rl, params)
	var re *login.RedirectError
	switch {
	case errors.As(err, &re):
		sendBack(w, r, login.ErrorReply(q, s.login.Issuer(name), re))
		return
	case err != nil:
		s.pageError(w, r, err)
		return
	}
	if q.StartsLogin() {
		// A login started writes a pending login the store keeps until the realm's login
		// timeout, for anyone who names a client and one of its redirect URIs: the
		// address's budget bounds them. Past it the browser is shown a page (429,
		// Retry-After), not sent back to the client with temporarily_unavailable, which
		// RFC 6749 §4.1.2.1 would allow: a client that answers that by starting a new login
		// would loop, the client could not tell its user when to retry, and the refusal
		// concerns this browser's address, not the client.
		a := authfail.Attempt{Kind: authfail.KindLogin, Realm: name, ClientID: q.ClientID, Addr: remoteIP(r)}
		if err := s.guard.StartLogin(a); err != nil {
			s.refused(r, authfail.Refusal{Attempt: a, Reason: authfail.ReasonThrottled}, err)
			s.pageError(w, r, err)
			return
		}
	}
	out, err := s.login.Authorize(r.Context(), name, q, s.sso(r, name))
	if err != nil {
		var pe *login.PageError
		if errors.As(err, &pe) {
			s.pageError(w, r, err)
			return
		}
		// The redirect URI is known good: the client hears of the failure (RFC 6749 §4.1.2.1).
		code, _ := s.classify(r, err)
		e := &login.RedirectError{Code: login.ServerError, Description: "the login could not be started"}
		if code == http.StatusServiceUnavailable {
			e.Code, e.Description = login.TemporarilyUnavailable, "a provider is unavailable; retry shortly"
		}
		s.log.Error("authorization request failed", "realm", name, "error", err)
		sendBack(w, r, login.ErrorReply(q, s.login.Issuer(name), e))
		return
	}
	s.setSSOCookie(w, name, out)
	sendBack(w, r, out)
}

// sendBack sends the browser where an outcome says: a redirect, or the page that posts the
// outcome's form to the client (response_mode form_post).
func sendBack(w http.ResponseWriter, r *http.Request, out *login.Outcome) {
	if out.Form == nil {
		http.Redirect(w, r, out.Redirect, http.StatusFound)
		return
	}
	pages.Render(w, http.StatusOK, "formpost.html", pages.FormPost{Action: out.Redirect, Fields: out.Form})
}

// sso reads the browser's SSO cookie for realm; nil when it has none that verifies.
func (s *Server) sso(r *http.Request, realmName string) *login.SSO {
	c, err := r.Cookie(SSOCookie)
	if err != nil {
		return nil
	}
	return s.login.ReadCookie(r.Context(), realmName, c.Value)
}

// cookiePath is the realm's path: the cookie goes only to that realm's endpoints.
func cookiePath(realmName string) string { return "/realms/" + url.PathEscape(realmName) + "/" }

// setSSOCookie sets the SSO cookie an outcome carries. HttpOnly: no script reads it.
// Secure when the issuer is https. SameSite=Lax: the browser sends it on the top-level
// navigation from a client to the authorization endpoint (a cross-site GET), which SSO needs
// and Strict would refuse; it does not send it with cross-site POSTs or subresource requests,
// so another site cannot end the session by a form post (the logout confirmation is a POST).
func (s *Server) setSSOCookie(w http.ResponseWriter, realmName string, out *login.Outcome) {
	if b := out.Binding; b != nil {
		// The browser binding: the same attributes; Lax lets it come back with the
		// top-level navigation from the front-end.
		c := &http.Cookie{Name: b.Name, Value: b.Value, Path: cookiePath(realmName), HttpOnly: true,
			Secure: s.secureCookies(realmName), SameSite: http.SameSiteLaxMode, Expires: b.Expires}
		if b.Value == "" {
			c.MaxAge, c.Expires = -1, time.Unix(0, 0)
		}
		http.SetCookie(w, c)
	}
	if out.Cookie == "" {
		return
	}
	c := &http.Cookie{Name: SSOCookie, Value: out.Cookie, Path: cookiePath(realmName), HttpOnly: true,
		Secure: s.secureCookies(realmName), SameSite: http.SameSiteLaxMode}
	if !out.CookieExpires.IsZero() {
		c.Expires = out.CookieExpires
	}
	http.SetCookie(w, c)
}

func (s *Server) secureCookies(realmName string) bool {
	return strings.HasPrefix(s.issuer(realmName), "https://")
}

func (s *Server) clearSSOCookie(w http.ResponseWriter, realmName string) {
	http.SetCookie(w, &http.Cookie{Name: SSOCookie, Value: "", Path: cookiePath(realmName), HttpOnly: true,
		Secure: s.secureCookies(realmName), SameSite: http.SameSiteLaxMode, MaxAge: -1, Expires: time.Unix(0, 0)})
}

// frontendCall authenticates the front-end on a login-request route and checks the realm.
func (s *Server) frontendCall(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	name := r.PathValue("realm")
	if err := s.authBearer(r, authfail.KindFrontend, name, s.frontendToken); err != nil {
		s.writeError(w, r, err)
		return "", "", false
	}
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return "", "", false
	}
	return name, r.PathValue("challenge"), true
}

// loginError answers a front-end call on a login request: 410 Gone for one past its Login
// timeout or Login action timeout (as Hydra answers a handled request), else writeError's.
func (s *Server) loginError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, login.ErrExpired) {
		writeJSON(w, http.StatusGone, errorBody{Error: "login_expired", Description: err.Error()})
		return
	}
	s.writeError(w, r, err)
}

func (s *Server) loginRequest(w http.ResponseWriter, r *http.Request) {
	name, challenge, ok := s.frontendCall(w, r)
	if !ok {
		return
	}
	lr, err := s.login.Get(r.Context(), name, challenge)
	if err != nil {
		s.loginError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lr)
}

// redirectBody is the answer to accept and reject: where the front-end sends the browser.
type redirectBody struct {
	RedirectTo string `json:"redirect_to"`
}

func (s *Server) acceptLogin(w http.ResponseWriter, r *http.Request) {
	decide(s, w, r, s.login.AcceptLogin)
}

func (s *Server) rejectLogin(w http.ResponseWriter, r *http.Request) {
	decide(s, w, r, s.login.RejectLogin)
}

// decide serves the front-end's accept or reject: a JSON body of type B, answered with
// where to send the browser.
func decide[B any](s *Server, w http.ResponseWriter, r *http.Request, apply func(ctx context.Context, realm, challenge string, body B) (string, error)) {
	name, challenge, ok := s.frontendCall(w, r)
	if !ok {
		return
	}
	var body B
	if err := decodeJSON(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	to, err := apply(r.Context(), name, challenge, body)
	if err != nil {
		s.loginError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, redirectBody{RedirectTo: to})
}

// codeGrant is the token endpoint's authorization_code grant (RFC 6749 §4.1.3).
func (s *Server) codeGrant(w http.ResponseWriter, r *http.Request, realmName, client, jkt string) {
	if s.login == nil {
		s.writeError(w, r, &session.Error{Code: session.UnsupportedGrantType, Description: "authorization_code is not served here"})
		return
	}
	ex, err := s.login.Redeem(r.Context(), login.CodeGrant{
		Realm: realmName, ClientID: client, Code: r.PostForm.Get("code"),
		RedirectURI: r.PostForm.Get("redirect_uri"), Verifier: r.PostForm.Get("code_verifier"), JKT: jkt,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, codeResponse{tokenResponse: grantResponse(ex.Grant), IDToken: ex.IDToken})
}

// codeResponse is the token response of a code grant: with the ID token.
type codeResponse struct {
	tokenResponse
	IDToken string `json:"id_token,omitempty"`
}

// userinfo is OpenID Connect UserInfo: the access token as a bearer header or, for a POST,
// the access_token form parameter (RFC 6750 §2.2).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	// A DPoP-bound token comes with the DPoP scheme and a proof (dpop.go).
	raw, jkt, ok, err := s.resourceProof(r, name, "/protocol/openid-connect/userinfo")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		raw, ok = bearerCredential(r)
	}
	if !ok && r.Method == http.MethodPost {
		if err := s.form(w, r, name); err != nil {
			s.writeError(w, r, err)
			return
		}
		raw = r.PostForm.Get("access_token")
	}
	if raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "invalid_request", Description: "an access token is required"})
		return
	}
	claims, err := s.login.UserInfo(r.Context(), name, raw, jkt)
	var ue *login.UserInfoError
	switch {
	case errors.As(err, &ue):
		status := http.StatusUnauthorized
		if ue.Code == "insufficient_scope" {
			status = http.StatusForbidden
		}
		if jkt != "" {
			w.Header().Set("WWW-Authenticate", dpop.Challenge(ue.Code, ue.Description))
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond", error="`+ue.Code+`"`)
		}
		writeJSON(w, status, errorBody{Error: ue.Code, Description: ue.Description})
	case err != nil:
		s.writeError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, claims)
	}
}

// endSession is RP-initiated logout (GET, and the POST of the logout endpoint without a
// refresh token).
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if _, err := s.knownRealm(name); err != nil {
		s.pageError(w, r, &login.PageError{Description: "the realm does not exist"})
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		params = r.PostForm
	}
	l := login.Logout{IDTokenHint: params.Get("id_token_hint"), ClientID: params.Get("client_id"),
		PostLogoutRedirectURI: params.Get("post_logout_redirect_uri"), State: params.Get("state"),
		Confirmed: r.Method == http.MethodPost && params.Get("confirm") == "yes"}
	out, err := s.login.EndSession(r.Context(), name, l, s.sso(r, name))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	switch {
	case out.Confirm:
		fields := map[string]string{}
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
			if v := params.Get(k); v != "" {
				fields[k] = v
			}
		}
		pages.Render(w, http.StatusOK, "logout.html", pages.Confirm{Action: r.URL.Path, Fields: fields, Next: out.Redirect})
		return
	case out.Ended:
		s.clearSSOCookie(w, name)
	}
	if out.Redirect != "" && len(out.FrontChannel) == 0 {
		http.Redirect(w, r, out.Redirect, http.StatusFound)
		return
	}
	// Front-channel logout needs the browser to load each client's URL: a page with
	// iframes, which then goes on to the post-logout redirect.
	pages.Render(w, http.StatusOK, "loggedout.html", pages.LoggedOut{FrontChannel: out.FrontChannel, Next: out.Redirect})
}
