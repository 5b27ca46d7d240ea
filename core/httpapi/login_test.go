package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// frontend is a small login front-end, as a deployment writes one: it reads the challenge
// over the front-end API and accepts it as the user decide says, or rejects it.
type frontend struct {
	srv *httptest.Server
	s   *stack
	// calls counts the browser's visits.
	calls atomic.Int32
	// seen is the last login request read.
	seen atomic.Pointer[loginRequest]
	// decide returns the accept body, or nil to stop after reading (the browser is left on
	// the front-end's page, answered 200).
	decide atomic.Pointer[func(loginRequest) map[string]any]
}

// loginRequest is the front-end API's answer to GET login-requests/{challenge}.
type loginRequest struct {
	Challenge      string    `json:"challenge"`
	ClientID       string    `json:"client_id"`
	RedirectURI    string    `json:"redirect_uri"`
	RequestedScope []string  `json:"requested_scope"`
	Prompt         []string  `json:"prompt"`
	MaxAge         *int64    `json:"max_age"`
	LoginHint      string    `json:"login_hint"`
	UILocales      string    `json:"ui_locales"`
	Skip           bool      `json:"skip"`
	Subject        string    `json:"subject"`
	SessionID      string    `json:"session_id"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// acceptAlice accepts as user u-1 ("alice"), with her e-mail as a claim.
func acceptAlice(lr loginRequest) map[string]any {
	return map[string]any{"user_id": user, "username": "alice", "acr": "1", "amr": []string{"pwd"},
		"offline_access": true, "claims": map[string]any{"email": "alice@example.test", "email_verified": true}}
}

func (f *frontend) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	challenge := r.URL.Query().Get("login_challenge")
	var lr loginRequest
	if status, err := f.call(http.MethodGet, loginRequestPath(realmName, challenge), nil, &lr); err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	f.seen.Store(&lr)
	decide := f.decide.Load()
	var body map[string]any
	if decide != nil {
		body = (*decide)(lr)
	}
	if body == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	if status, err := f.call(http.MethodPut, loginRequestPath(realmName, challenge)+"/accept", body, &to); err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// call is one front-end API call; it runs on the server's goroutine, so it reports
// failures instead of failing the test.
func (f *frontend) call(method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.s.srv.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+frontendToken)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.s.client.Do(req)
	if err != nil {
		return http.StatusBadGateway, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return http.StatusOK, json.Unmarshal(b, out)
}

func (f *frontend) setDecide(d func(loginRequest) map[string]any) { f.decide.Store(&d) }

func loginRequestPath(realmName, challenge string) string {
	return "/realms/" + realmName + "/login-requests/" + url.PathEscape(challenge)
}

func bearerHeader(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func jsonPut(path, bearer string, v any) call {
	c := jsonCall(path, bearer, v)
	c.method = http.MethodPut
	return c
}

// loginStack is a stack whose realm acme sends browsers to a test front-end.
type loginStack struct {
	*stack
	fe *frontend
}

func newLoginStack(t testing.TB, opts ...option) *loginStack {
	t.Helper()
	fe := &frontend{}
	fe.srv = httptest.NewServer(http.HandlerFunc(fe.serve))
	t.Cleanup(fe.srv.Close)
	fe.setDecide(acceptAlice)
	opts = append([]option{withRealm(func(r *realm.Realm) { r.LoginFrontendURL = fe.srv.URL + "/login" })}, opts...)
	s := newStack(t, opts...)
	fe.s = s
	return &loginStack{stack: s, fe: fe}
}

// browser is a browser: a cookie jar, and redirects followed until one leaves for a
// relying party's host (*.test), whose URL it returns.
type browser struct {
	*http.Client
	stopped atomic.Pointer[url.URL]
}

func (s *loginStack) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{}
	b.Client = &http.Client{Jar: jar, Transport: s.client.Transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Hostname(), ".test") {
			// The Location itself: the client drops a fragment from the URL it would follow.
			u := req.URL
			if req.Response != nil {
				if loc, err := req.Response.Request.URL.Parse(req.Response.Header.Get("Location")); err == nil {
					u = loc
				}
			}
			b.stopped.Store(u)
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// visit opens u and returns where the browser was sent outside sessiond and the front-end
// (nil if it stayed), and the last status.
func (b *browser) visit(tb testing.TB, u string) (*url.URL, int) {
	tb.Helper()
	b.stopped.Store(nil)
	resp, err := b.Get(u)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return b.stopped.Load(), resp.StatusCode
}

// cookie returns the browser's SSO cookie for the realm, "" without one.
func (b *browser) cookie(s *stack) string {
	u, _ := url.Parse(s.issuer(realmName) + "/")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "SESSIOND_SSO" {
			return c.Value
		}
	}
	return ""
}

// rp is a relying party using golang.org/x/oauth2 and go-oidc as any Go application does.
type rp struct {
	conf     oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	ctx      context.Context
}

func (s *loginStack) rp(t *testing.T, clientID, secret, redirect string, scopes ...string) *rp {
	t.Helper()
	ctx := oidc.ClientContext(s.ctx, s.client)
	p, err := oidc.NewProvider(ctx, s.issuer(realmName))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if secret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &rp{
		conf:     oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: redirect, Scopes: scopes},
		provider: p, verifier: p.Verifier(&oidc.Config{ClientID: clientID, Now: s.clock.Now}), ctx: ctx,
	}
}

// login runs the code flow in b: AuthCodeURL with S256 PKCE and a nonce, the browser's
// round, Exchange with the verifier, and the ID token verified with its nonce and at_hash.
func (p *rp) login(t *testing.T, b *browser, extra ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	verifier, state, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()[:24]
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}, extra...)
	back, status := b.visit(t, p.conf.AuthCodeURL(state, opts...))
	if back == nil {
		t.Fatalf("the browser did not come back to the client (last status %d)", status)
	}
	q := back.Query()
	if q.Get("error") != "" {
		t.Fatalf("the client got error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state || q.Get("iss") != p.provider.Endpoint().AuthURL[:strings.Index(p.provider.Endpoint().AuthURL, "/protocol")] {
		t.Fatalf("callback %s: state or iss (RFC 9207) wrong", back)
	}
	tok, err := p.conf.Exchange(p.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.verifier.Verify(p.ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refused the ID token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("ID token nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	return tok, idt
}

// TestOIDCLogin_standardLibrariesCompleteACodeFlowWithSSOAndOffline is issue 16's first
// "done when": x/oauth2 and go-oidc log in through the authorization endpoint, a test
// front-end and the token endpoint; a second client gets SSO with prompt=none and no
// front-end step; the offline token of the code flow survives RP-initiated logout.
func TestOIDCLogin_standardLibrariesCompleteACodeFlowWithSSOAndOffline(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	b := s.newBrowser()
	web := s.rp(t, confidential, confidentialSecret, rpCallback, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	tok, idt := web.login(t, b, oauth2.SetAuthURLParam("login_hint", "alice"))

	if lr := s.fe.seen.Load(); lr.ClientID != confidential || lr.Skip || lr.LoginHint != "alice" ||
		strings.Join(lr.RequestedScope, " ") != "openid offline_access" {
		t.Errorf("the front-end read %+v", lr)
	}
	var claims struct {
		Sid      string `json:"sid"`
		Azp      string `json:"azp"`
		Acr      string `json:"acr"`
		AuthTime int64  `json:"auth_time"`
		Typ      string `json:"typ"`
		// The front-end's claims and the login username, as OIDC libraries read them
		// from the ID token without a UserInfo call.
		Username      string `json:"preferred_username"`
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != user || claims.Azp != confidential || claims.Acr != "1" || claims.AuthTime != s.clock.Now().Unix() || claims.Sid == "" ||
		claims.Username != "alice" || claims.Email != "alice@example.test" || !claims.EmailVerified {
		t.Errorf("ID token claims sub %q %+v", idt.Subject, claims)
	}
	if h := header(t, tok.Extra("id_token").(string)); h["typ"] != "JWT" {
		t.Errorf("ID token header %v, want typ JWT", h)
	}
	if typ := payload(t, tok.RefreshToken)["typ"]; typ != "Offline" {
		t.Errorf("refresh token typ %v, want Offline (offline_access granted)", typ)
	}
	if sid, _ := tok.Extra("session_state").(string); sid != claims.Sid {
		t.Errorf("session_state %q, sid %q", sid, claims.Sid)
	}
	info, err := web.provider.UserInfo(web.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if info.Subject != user || info.Email != "alice@example.test" || !info.EmailVerified {
		t.Errorf("userinfo %+v", info)
	}

	t.Run("discovery lists the flow and nothing more", func(t *testing.T) {
		var d map[string]any
		s.do(t, call{method: http.MethodGet, path: "/realms/" + realmName + "/.well-known/openid-configuration"}).decode(t, http.StatusOK, &d)
		oidcBase := s.issuer(realmName) + "/protocol/openid-connect"
		for k, v := range map[string]any{
			"authorization_endpoint": oidcBase + "/auth", "userinfo_endpoint": oidcBase + "/userinfo", "end_session_endpoint": oidcBase + "/logout",
			"response_types_supported": []any{"code", "token", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}, "code_challenge_methods_supported": []any{"S256"},
			"grant_types_supported": []any{"authorization_code", "client_credentials", "refresh_token"}, "response_modes_supported": []any{"query", "fragment", "form_post"},
			"authorization_response_iss_parameter_supported": true, "request_parameter_supported": false,
			"frontchannel_logout_supported": true, "frontchannel_logout_session_supported": true,
		} {
			if got, _ := json.Marshal(d[k]); string(got) != mustJSON(v) {
				t.Errorf("discovery %s = %s, want %s", k, got, mustJSON(v))
			}
		}
	})

	t.Run("second client gets SSO with prompt=none", func(t *testing.T) {
		before := s.fe.calls.Load()
		app := s.rp(t, spa, "", spaCallback, oidc.ScopeOpenID)
		_, idt2 := app.login(t, b, oauth2.SetAuthURLParam("prompt", "none"))
		if s.fe.calls.Load() != before {
			t.Error("the front-end was visited for an SSO login with prompt=none")
		}
		var c2 struct {
			Sid string `json:"sid"`
		}
		_ = idt2.Claims(&c2)
		if c2.Sid != claims.Sid || idt2.Subject != user {
			t.Errorf("second client's session %q for %q, want %q for %q", c2.Sid, idt2.Subject, claims.Sid, user)
		}
	})

	t.Run("RP-initiated logout ends the SSO session, the offline token goes on", func(t *testing.T) {
		q := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"bye"}}
		back, _ := b.visit(t, s.issuer(realmName)+"/protocol/openid-connect/logout?"+q.Encode())
		if back == nil || back.String() != rpLoggedOut+"?state=bye" {
			t.Fatalf("logout sent the browser to %v", back)
		}
		if b.cookie(s.stack) != "" {
			t.Error("the SSO cookie was not cleared")
		}
		got, err := s.store.Get(s.ctx, []usersessions.Key{{RealmID: realmName, ID: claims.Sid}, {RealmID: realmName, ID: claims.Sid, Offline: true}})
		if err != nil || got[0] != nil || got[1] == nil {
			t.Errorf("after logout: online %v, offline %v (%v); want the online session gone and the offline one kept", got[0], got[1], err)
		}
		s.refresh(t, confidentialAuth, tok.RefreshToken)
		if back, _ := b.visit(t, web.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("prompt", "none"))); back == nil || back.Query().Get("error") != "login_required" {
			t.Errorf("prompt=none after logout: %v, want login_required", back)
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestFrontChannelLogout_pageLoadsEachClientsURLWithIssAndSid: RP-initiated logout of a
// session whose clients registered front-channel logout URLs answers a page that loads each
// (with iss and sid) in an iframe its CSP allows, then goes on to the post-logout redirect.
func TestFrontChannelLogout_pageLoadsEachClientsURLWithIssAndSid(t *testing.T) {
	t.Parallel()
	const fc = "https://spa.test/fc?app=1"
	s := newLoginStack(t, withRealm(func(r *realm.Realm) {
		c, _ := r.Client(spa)
		c.FrontchannelLogoutURL = fc
	}))
	b := s.newBrowser()
	web := s.rp(t, confidential, confidentialSecret, rpCallback, oidc.ScopeOpenID)
	tok, idt := web.login(t, b)
	s.rp(t, spa, "", spaCallback, oidc.ScopeOpenID).login(t, b, oauth2.SetAuthURLParam("prompt", "none"))
	var c struct {
		Sid string `json:"sid"`
	}
	_ = idt.Claims(&c)

	q := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLoggedOut}}
	resp, err := b.Get(s.issuer(realmName) + "/protocol/openid-connect/logout?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := url.Values{"app": {"1"}, "iss": {s.issuer(realmName)}, "sid": {c.Sid}}
	frame := `<iframe src="https://spa.test/fc?` + strings.ReplaceAll(want.Encode(), "&", "&amp;") + `"`
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), frame) || !strings.Contains(string(body), rpLoggedOut) ||
		strings.Count(string(body), "<iframe") != 1 {
		t.Errorf("logout page %d, want one iframe %s and the way on to %s:\n%s", resp.StatusCode, frame, rpLoggedOut, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src https://spa.test") {
		t.Errorf("CSP %q does not allow the front-channel frame", csp)
	}
	if b.cookie(s.stack) != "" {
		t.Error("the SSO cookie was not cleared")
	}
}

// TestEndSession_withoutHintAsksFirstAndAPostWithoutTheCookieEndsNothing: a logout link
// without id_token_hint shows a confirmation form; the confirmation posted without the
// browser's cookie (a cross-site form: SameSite=Lax keeps the cookie back) ends nothing and
// clears no cookie; posted by the browser itself, it ends the session.
func TestEndSession_withoutHintAsksFirstAndAPostWithoutTheCookieEndsNothing(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	b := s.newBrowser()
	s.code(t, b)
	sso := s.login.ReadCookie(s.ctx, realmName, b.cookie(s.stack))
	if sso == nil {
		t.Fatal("no SSO cookie after login")
	}
	logout := s.issuer(realmName) + "/protocol/openid-connect/logout"
	resp, err := b.Get(logout)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="confirm" value="yes"`) || b.cookie(s.stack) == "" {
		t.Fatalf("GET without a hint: %d, cookie %q:\n%s", resp.StatusCode, b.cookie(s.stack), body)
	}
	live := func() bool {
		got, err := s.store.Get(s.ctx, []usersessions.Key{{RealmID: realmName, ID: sso.SessionID}})
		return err == nil && got[0] != nil
	}
	confirm := url.Values{"confirm": {"yes"}}
	r := s.do(t, call{method: http.MethodPost, path: logoutPath(realmName), header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body: confirm.Encode()})
	if r.status != http.StatusOK || r.header.Get("Set-Cookie") != "" || !live() {
		t.Errorf("a confirmation without the cookie: %d, Set-Cookie %q, session live %v", r.status, r.header.Get("Set-Cookie"), live())
	}
	resp, err = b.PostForm(logout, confirm)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || live() || b.cookie(s.stack) != "" {
		t.Errorf("the browser's confirmation: %d, session live %v, cookie %q", resp.StatusCode, live(), b.cookie(s.stack))
	}
}
