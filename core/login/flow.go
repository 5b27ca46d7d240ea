package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// pending is an authentication session as stored: the request, its clocks, and what the
// front-end decided.
type pending struct {
	Realm   string    `json:"realm"`
	Request Request   `json:"request"`
	Started time.Time `json:"started"`
	// Ends is Started + Login timeout: the whole login must be done by then.
	Ends time.Time `json:"ends"`
	// StepEnds is the last step + Login action timeout: the next step must come by then.
	StepEnds time.Time `json:"step_ends"`
	// The live SSO session of this browser at the authorization request, if any.
	SSOSession string    `json:"sso_session,omitempty"`
	SSOUser    string    `json:"sso_user,omitempty"`
	SSOAuth    time.Time `json:"sso_auth_time,omitzero"`
	Skip       bool      `json:"skip"`
	// Browser is the hash of the value of the browser-binding cookie set with the redirect
	// to the front-end: only the browser that started the login may finish it (login CSRF).
	Browser string `json:"browser"`
	// After accept: where the browser returns, and what it gets.
	Verifier string    `json:"verifier,omitempty"` // hash of the verifier's secret part
	Accepted *accepted `json:"accepted,omitempty"`
	// Rejected is a refusal on its way back through sessiond (form_post only: a front-end
	// cannot answer in the client's response mode).
	Rejected *Reject `json:"rejected,omitempty"`
	Done     bool    `json:"done"`
}

// accepted is the outcome of an accepted login.
type accepted struct {
	SessionID  string    `json:"session_id"`
	UserID     string    `json:"user_id"`
	AuthTime   time.Time `json:"auth_time"`
	RememberMe bool      `json:"remember_me"`
}

// Outcome is where the authorization endpoint sends the browser, and the SSO cookie to set
// on the way ("" leaves it alone).
type Outcome struct {
	Redirect string
	// Form, when set, is posted to Redirect by the browser (response_mode form_post)
	// instead of a redirect.
	Form url.Values
	// Binding is the browser-binding cookie of a login sent to the front-end; on the
	// browser's return, its name is in Done to be cleared.
	Binding *Binding
	// Cookie is the signed SSO cookie value; CookieExpires is zero for a browser-session
	// cookie (without remember-me).
	Cookie        string
	CookieExpires time.Time
}

// Binding is a cookie that ties a login to the browser that started it.
type Binding struct {
	Name, Value string
	Expires     time.Time
}

// BindingCookie is the name of the browser-binding cookie of a login: one per login, so
// that logins in two tabs do not undo each other.
func BindingCookie(challenge string) string { return "SESSIOND_LOGIN_" + hashKey(challenge)[:16] }

// SSO is the browser's SSO cookie as verified: nil when absent or not valid.
type SSO struct {
	SessionID, UserID string
	AuthTime          time.Time
}

// ReadCookie verifies an SSO cookie value of realm; a forged, expired or foreign one is nil.
func (s *Service) ReadCookie(ctx context.Context, realmName, raw string) *SSO {
	if raw == "" {
		return nil
	}
	t, err := s.tokens.VerifyAccept(ctx, realmName, raw, token.Accept{Types: []token.Type{token.SSO}})
	if err != nil {
		return nil
	}
	return &SSO{SessionID: t.SessionID, UserID: t.Subject, AuthTime: t.IssuedAt}
}

// Authorize answers a validated authorization request: at once with a code (prompt=none
// and a live SSO session) or a login_required error, or by sending the browser to the
// realm's login front-end with a new challenge.
func (s *Service) Authorize(ctx context.Context, realmName string, q *Request, sso *SSO) (*Outcome, error) {
	r, ok := s.realms.Realm(realmName)
	if !ok || !r.Enabled {
		return nil, &PageError{Description: "the realm does not exist"}
	}
	now := s.clock()
	iss := s.Issuer(r.Name)
	var us *usersessions.UserSession
	if sso != nil {
		var err error
		if us, err = s.liveSession(ctx, r, sso.SessionID, now); err != nil {
			return nil, err
		}
		if us != nil && us.UserID != sso.UserID {
			us = nil
		}
	}
	fresh := us != nil && (q.MaxAge < 0 || !now.After(sso.AuthTime.Add(time.Duration(q.MaxAge)*time.Second)))
	if q.prompts(PromptNone) {
		if !fresh {
			return ErrorReply(q, iss, &RedirectError{Code: LoginRequired, Description: "no live session for this browser (or older than max_age); prompt=none forbids a login"}), nil
		}
		return s.respond(ctx, r, q, &accepted{SessionID: us.ID, UserID: us.UserID, AuthTime: sso.AuthTime}, now)
	}
	frontend := r.LoginFrontendURL
	if frontend == "" && s.dev != nil {
		frontend = s.dev(r.Name)
	}
	if frontend == "" {
		return ErrorReply(q, iss, &RedirectError{Code: TemporarilyUnavailable, Description: "the realm has no login front-end (loginFrontendUrl)"}), nil
	}
	t := r.Timeouts.Effective()
	p := pending{Realm: r.Name, Request: *q, Started: now, Ends: now.Add(t.LoginTimeout), StepEnds: now.Add(min(t.LoginActionTimeout, t.LoginTimeout))}
	if us != nil {
		p.SSOSession, p.SSOUser, p.SSOAuth = us.ID, us.UserID, sso.AuthTime
		p.Skip = fresh && !q.prompts(PromptLogin)
	}
	challenge, binding := secret(), secret()
	p.Browser = hashKey(binding)
	if err := s.put(ctx, RequestKind, hashKey(challenge), nil, p); err != nil {
		return nil, err
	}
	u, err := url.Parse(frontend)
	if err != nil {
		return nil, fmt.Errorf("realm %q: loginFrontendUrl: %w", r.Name, err)
	}
	v := u.Query()
	v.Set("login_challenge", challenge)
	u.RawQuery = v.Encode()
	return &Outcome{Redirect: u.String(), Binding: &Binding{Name: BindingCookie(challenge), Value: binding, Expires: p.Ends}}, nil
}

// LoginRequest is what the front-end reads about a challenge.
type LoginRequest struct {
	Challenge   string   `json:"challenge"`
	ClientID    string   `json:"client_id"`
	RedirectURI string   `json:"redirect_uri"`
	Scope       []string `json:"requested_scope"`
	Prompt      []string `json:"prompt"`
	MaxAge      *int64   `json:"max_age,omitempty"`
	LoginHint   string   `json:"login_hint,omitempty"`
	UILocales   string   `json:"ui_locales,omitempty"`
	ACRValues   string   `json:"acr_values,omitempty"`
	// Skip: this browser has a live SSO session that needs no new authentication; Subject
	// is its user. The front-end may accept at once with that user.
	Skip    bool   `json:"skip"`
	Subject string `json:"subject,omitempty"`
	// SessionID is the SSO session this browser has, when it has one, even without Skip.
	SessionID string    `json:"session_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"` // the next step must come by then
}

// step reads the pending login of challenge and checks its clocks; each call is a step,
// and moves the step deadline.
func (s *Service) step(ctx context.Context, realmName, challenge string) (*pending, *usersessions.Record, time.Time, error) {
	var p pending
	rec, err := s.get(ctx, RequestKind, hashKey(challenge), &p)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if rec == nil || p.Realm != realmName || p.Done || p.Accepted != nil || p.Rejected != nil {
		return nil, nil, time.Time{}, ErrNotFound
	}
	now := s.clock()
	switch {
	case !now.Before(p.Ends):
		return nil, nil, now, fmt.Errorf("%w: the Login timeout ended at %s", ErrExpired, p.Ends.Format(time.RFC3339))
	case !now.Before(p.StepEnds):
		return nil, nil, now, fmt.Errorf("%w: the Login action timeout ended at %s", ErrExpired, p.StepEnds.Format(time.RFC3339))
	}
	return &p, rec, now, nil
}

// nextStep returns the deadline of the step after one taken at now.
func (s *Service) nextStep(p *pending, now time.Time) time.Time {
	r, ok := s.realms.Realm(p.Realm)
	if !ok {
		return now
	}
	return minTime(now.Add(r.Timeouts.Effective().LoginActionTimeout), p.Ends)
}

// Get answers the front-end's read of a challenge. It is a step: the next one (accept or
// reject) must come within the Login action timeout.
func (s *Service) Get(ctx context.Context, realmName, challenge string) (*LoginRequest, error) {
	p, rec, now, err := s.step(ctx, realmName, challenge)
	if err != nil {
		return nil, err
	}
	p.StepEnds = s.nextStep(p, now)
	if err := s.put(ctx, RequestKind, rec.Key, rec, p); err != nil {
		return nil, s.conflict(err)
	}
	q := p.Request
	out := &LoginRequest{Challenge: challenge, ClientID: q.ClientID, RedirectURI: q.RedirectURI, Scope: strings.Fields(q.Scope),
		Prompt: q.Prompt, LoginHint: q.LoginHint, UILocales: q.UILocales, ACRValues: q.ACRValues,
		Skip: p.Skip, SessionID: p.SSOSession, ExpiresAt: p.StepEnds}
	if out.Scope == nil {
		out.Scope = []string{}
	}
	if out.Prompt == nil {
		out.Prompt = []string{}
	}
	if p.Skip {
		out.Subject = p.SSOUser
	}
	if q.MaxAge >= 0 {
		out.MaxAge = &q.MaxAge
	}
	return out, nil
}

func (s *Service) conflict(err error) error {
	if errors.Is(err, spi.ErrConflict) {
		return &session.Error{Code: session.InvalidRequest, Description: "the login request was changed at the same time (another accept or reject); read it again"}
	}
	return err
}

// Accept is the front-end's decision that a person is authenticated.
type Accept struct {
	UserID     string         `json:"user_id"`
	Username   string         `json:"username"`
	RememberMe bool           `json:"remember_me"`
	AuthMethod string         `json:"auth_method"`
	ACR        string         `json:"acr"`
	AMR        []string       `json:"amr"`
	Claims     map[string]any `json:"claims"`
	// OfflineAccess: the user holds the realm's offline_access role.
	OfflineAccess bool   `json:"offline_access"`
	IPAddress     string `json:"ip_address"`
	UserAgent     string `json:"user_agent"`
}

// AcceptLogin records an accepted login: with Skip and the SSO session's own user, the
// browser joins that session; otherwise a user session is opened through the session
// service's Open, as POST /realms/{realm}/sessions does (all its rules and events apply).
// It returns where the front-end sends the browser: back to sessiond, which sets the SSO
// cookie and redirects to the client with a code.
func (s *Service) AcceptLogin(ctx context.Context, realmName, challenge string, a Accept) (string, error) {
	if a.UserID == "" {
		return "", &session.Error{Code: session.InvalidRequest, Description: "user_id is required"}
	}
	for name := range a.Claims {
		if token.RegisteredIDClaim(name) {
			return "", &session.Error{Code: session.InvalidRequest, Description: fmt.Sprintf("claim %q is set by sessiond and cannot be given", short(name))}
		}
	}
	p, rec, now, err := s.step(ctx, realmName, challenge)
	if err != nil {
		return "", err
	}
	q := p.Request
	var acc *accepted
	opened := false
	if p.Skip && p.SSOUser == a.UserID {
		r, _ := s.realms.Realm(realmName)
		if us, err := s.liveSession(ctx, r, p.SSOSession, now); err != nil {
			return "", err
		} else if us != nil {
			acc = &accepted{SessionID: us.ID, UserID: us.UserID, AuthTime: p.SSOAuth, RememberMe: us.RememberMe}
		}
	}
	if acc == nil {
		notes := map[string]string{}
		if len(a.Claims) > 0 {
			b, err := json.Marshal(a.Claims)
			if err != nil {
				return "", &session.Error{Code: session.InvalidRequest, Description: "claims: " + err.Error()}
			}
			notes[NoteClaims] = string(b)
		}
		if a.ACR != "" {
			notes[NoteACR] = a.ACR
		}
		if len(a.AMR) > 0 {
			notes[NoteAMR] = strings.Join(a.AMR, " ")
		}
		// The session's id derives from the login request: an accept retried after an
		// unknown outcome, or racing another accept of the same login, finds the session the
		// first stored instead of opening a second one.
		g, err := s.sessions.Open(ctx, session.OpenRequest{
			Realm: realmName, ClientID: q.ClientID, UserID: a.UserID, Username: a.Username,
			IPAddress: a.IPAddress, UserAgent: a.UserAgent, AuthMethod: a.AuthMethod, RememberMe: a.RememberMe,
			Scope: q.Scope, OfflineAccess: a.OfflineAccess, Notes: notes, IdempotencyKey: "login:" + rec.Key,
		})
		if err != nil {
			return "", err
		}
		acc, opened = &accepted{SessionID: g.SessionID, UserID: a.UserID, AuthTime: now, RememberMe: a.RememberMe}, true
	}
	verifier := secret()
	p.Accepted, p.Verifier, p.StepEnds = acc, hashKey(verifier), s.nextStep(p, now)
	if err := s.put(ctx, RequestKind, rec.Key, rec, p); err != nil {
		if opened && errors.Is(err, spi.ErrConflict) && !s.holds(ctx, rec.Key, acc.SessionID) {
			// The login request changed meanwhile and does not hold the session opened
			// here (it was rejected, say): no browser ever will. Another accept of this
			// login (a double submit, perhaps on another node) found the same session, whose
			// id derives from the login request, and recorded it: that one stays. Any other
			// failure (an unknown outcome) leaves it for a retried accept to find.
			s.discard(ctx, realmName, acc.SessionID)
		}
		return "", s.conflict(err)
	}
	return s.returnURL(realmName, challenge, verifier), nil
}

// holds reports whether the login request with record key reqKey recorded the session sid
// as accepted; a failed read says it does, so that a session is never ended on a guess.
func (s *Service) holds(ctx context.Context, reqKey, sid string) bool {
	var p pending
	rec, err := s.get(ctx, RequestKind, reqKey, &p)
	if err != nil {
		s.log.Warn("a login accepted twice: the login request could not be read again; its session is left to end on its own", "session", sid, "error", err)
		return true
	}
	return rec != nil && p.Accepted != nil && p.Accepted.SessionID == sid
}

// discard ends a session an accept opened but could not record, online and offline, through
// the normal logout path.
func (s *Service) discard(ctx context.Context, realmName, sid string) {
	for _, offline := range []bool{false, true} {
		if err := s.end(ctx, realmName, sid, offline, causeAcceptedTwice); err != nil {
			s.log.Error("a session opened by a login accepted twice could not be ended", "realm", realmName, "session", sid, "offline", offline, "error", err)
		}
	}
}

// Reject is the front-end's refusal of a login.
type Reject struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// rejectCodes are the errors a front-end may send the client (OpenID Connect Core §3.1.2.6).
var rejectCodes = []string{AccessDenied, LoginRequired, ConsentRequired, InteractionRequired, AccountSelectionReq, TemporarilyUnavailable}

// RejectLogin ends a login the front-end refused; it returns the client's redirect with
// the error (access_denied unless the front-end names another of rejectCodes).
func (s *Service) RejectLogin(ctx context.Context, realmName, challenge string, rj Reject) (string, error) {
	if rj.Error == "" {
		rj.Error = AccessDenied
	}
	if !slices.Contains(rejectCodes, rj.Error) {
		return "", &session.Error{Code: session.InvalidRequest, Description: fmt.Sprintf("error must be one of %s", strings.Join(rejectCodes, ", "))}
	}
	if len(rj.Description) > maxParam {
		return "", &session.Error{Code: session.InvalidRequest, Description: fmt.Sprintf("error_description is longer than %d bytes", maxParam)}
	}
	p, rec, now, err := s.step(ctx, realmName, challenge)
	if err != nil {
		return "", err
	}
	if p.Request.ResponseMode == FormPost {
		// The refusal must reach the client as a form post, which only a page of
		// sessiond's can make: the browser comes back through Return, as after an accept.
		verifier := secret()
		p.Rejected, p.Verifier, p.StepEnds = &rj, hashKey(verifier), s.nextStep(p, now)
		if err := s.put(ctx, RequestKind, rec.Key, rec, p); err != nil {
			return "", s.conflict(err)
		}
		return s.returnURL(realmName, challenge, verifier), nil
	}
	p.Done = true
	if err := s.put(ctx, RequestKind, rec.Key, rec, p); err != nil {
		return "", s.conflict(err)
	}
	return ErrorReply(&p.Request, s.Issuer(realmName), &RedirectError{Code: rj.Error, Description: rj.Description}).Redirect, nil
}

// returnURL is where the front-end sends the browser once it decided: sessiond's
// authorization endpoint with the login_verifier, which Return checks.
func (s *Service) returnURL(realmName, challenge, verifier string) string {
	back := url.Values{"login_verifier": {challenge + "." + verifier}}
	return s.Issuer(realmName) + "/protocol/openid-connect/auth?" + back.Encode()
}

// Return finishes an accepted login when the browser comes back with its login_verifier:
// within the Login action timeout of the accept, once. It answers with the client's
// redirect carrying a code, and the SSO cookie.
//
// binding is the value of the browser's BindingCookie for the challenge: a browser other than
// the one that started the login (sent the redirect_to by someone else) cannot finish it.
func (s *Service) Return(ctx context.Context, realmName, verifier string, binding func(name string) string) (*Outcome, error) {
	challenge, secretPart, ok := strings.Cut(verifier, ".")
	if !ok || challenge == "" || secretPart == "" {
		return nil, &PageError{Description: "the login_verifier is malformed"}
	}
	var p pending
	rec, err := s.get(ctx, RequestKind, hashKey(challenge), &p)
	if err != nil {
		return nil, err
	}
	if rec == nil || p.Realm != realmName || (p.Accepted == nil && p.Rejected == nil) || p.Done || p.Verifier != hashKey(secretPart) {
		return nil, &PageError{Description: "this login is unknown or already finished; start again from the application"}
	}
	if b := binding(BindingCookie(challenge)); b == "" || hashKey(b) != p.Browser {
		return nil, &PageError{Description: "this login was started in another browser; start again from the application"}
	}
	now := s.clock()
	if !now.Before(p.Ends) || !now.Before(p.StepEnds) {
		return nil, &PageError{Description: "this login took too long (Login timeout or Login action timeout); start again from the application"}
	}
	p.Done = true
	if err := s.put(ctx, RequestKind, rec.Key, rec, p); err != nil {
		if errors.Is(err, spi.ErrConflict) {
			return nil, &PageError{Description: "this login was already finished"}
		}
		return nil, err
	}
	if rj := p.Rejected; rj != nil {
		out := ErrorReply(&p.Request, s.Issuer(realmName), &RedirectError{Code: rj.Error, Description: rj.Description})
		out.Binding = &Binding{Name: BindingCookie(challenge)} // no value: clear it
		return out, nil
	}
	r, ok := s.realms.Realm(realmName)
	if !ok {
		return nil, &PageError{Description: "the realm does not exist"}
	}
	out, err := s.respond(ctx, r, &p.Request, p.Accepted, now)
	if err != nil {
		return nil, err
	}
	t := r.Timeouts.Effective()
	max := t.SSOSessionMax
	if p.Accepted.RememberMe && t.SSOSessionMaxRememberMe > 0 {
		max = t.SSOSessionMaxRememberMe
	}
	ends := p.Accepted.AuthTime.Add(max)
	out.Cookie, err = s.tokens.SSOCookie(ctx, r.Name, p.Accepted.UserID, p.Accepted.SessionID, p.Accepted.AuthTime, ends)
	if err != nil {
		return nil, err
	}
	if p.Accepted.RememberMe {
		out.CookieExpires = ends
	}
	out.Binding = &Binding{Name: BindingCookie(challenge)} // no value: clear it
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// realmOf returns an enabled realm or the unknown-realm error.
func (s *Service) realmOf(name string) (*realm.Realm, error) {
	r, ok := s.realms.Realm(name)
	if !ok || !r.Enabled {
		return nil, session.ErrUnknownRealm
	}
	return r, nil
}
