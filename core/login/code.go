package login

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
)

// code is an authorization code as stored (under the hash of the code).
type code struct {
	Realm string `json:"realm"`
	// Request is the authorization request the code answers: its client, redirect URI,
	// scope, nonce and PKCE challenge bind the code.
	Request   Request   `json:"request"`
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
	AuthTime  time.Time `json:"auth_time"`
	Issued    time.Time `json:"issued"`
	// Ends is Issued + Client login timeout.
	Ends time.Time `json:"ends"`
	// Used is set by the one redemption; a second one finds it and revokes.
	Used bool `json:"used"`
}

// respond answers an authenticated request with what its response_type asks: a code, an
// access token (implicit: the implicit-flow lifespan, no refresh token) and an ID token, in
// the query (code alone) or the fragment.
func (s *Service) respond(ctx context.Context, r *realm.Realm, q *Request, a *accepted, now time.Time) (*Outcome, error) {
	params := url.Values{"session_state": {a.SessionID}}
	var raw, access string
	if q.Wants(RespCode) {
		c := code{Realm: r.Name, Request: *q, SessionID: a.SessionID, UserID: a.UserID, AuthTime: a.AuthTime, Issued: now,
			Ends: now.Add(r.Timeouts.Effective().ClientLoginTimeout)}
		raw = secret()
		if err := s.put(ctx, CodeKind, hashKey(raw), nil, c); err != nil {
			return nil, err
		}
		params.Set("code", raw)
	}
	expiry := now.Add(r.Timeouts.Effective().AccessTokenLifespanImplicit)
	if q.Wants(RespToken) {
		g, err := s.sessions.Attach(ctx, session.AttachRequest{Realm: r.Name, SessionID: a.SessionID, ClientID: q.ClientID, Scope: q.Scope, Implicit: true})
		if err != nil {
			return nil, err
		}
		access, expiry = g.AccessToken, g.ExpiresAt
		params.Set("access_token", g.AccessToken)
		params.Set("token_type", g.TokenType)
		params.Set("expires_in", strconv.FormatInt(g.ExpiresIn(), 10))
		params.Set("scope", g.Scope)
	}
	if q.Wants(RespIDToken) {
		acr, amr, claims := s.authContext(ctx, r, a.SessionID)
		idt, err := s.tokens.IDToken(ctx, r.Name, token.IDClaims{
			Subject: a.UserID, ClientID: q.ClientID, SessionID: a.SessionID, Nonce: q.Nonce, ACR: acr, AMR: amr,
			AuthTime: a.AuthTime, AccessToken: access, Code: raw, IssuedAt: now, Expiry: expiry, Extra: claims,
		})
		if err != nil {
			return nil, fmt.Errorf("issue the id token: %w", err)
		}
		params.Set("id_token", idt)
	}
	return Reply(q, s.Issuer(r.Name), params), nil
}

// Exchange is a code grant's answer: the session's tokens and, for an OpenID Connect
// request, an ID token.
type Exchange struct {
	*session.Grant
	IDToken string
}

// CodeGrant is a token request of grant type authorization_code (RFC 6749 §4.1.3).
type CodeGrant struct {
	Realm       string
	ClientID    string // the authenticated client
	Code        string
	RedirectURI string
	Verifier    string // code_verifier
	JKT         string // the thumbprint of the request's checked DPoP proof's key, "" without one
}

func invalidGrant(format string, args ...any) error {
	return &session.Error{Code: session.InvalidGrant, Description: fmt.Sprintf(format, args...), Refusal: session.RefusedOther}
}

// Redeem exchanges a code: once, within the Client login timeout, by the client it was
// issued to, with the same redirect_uri, with the PKCE verifier of its challenge, and with a
// DPoP proof by the key the request's dpop_jkt named, if it named one. A
// refused request changes nothing; a second redemption is refused and ends the sessions
// the first one gave tokens of (RFC 6749 §4.1.2), online and offline, with back-channel
// logout to their clients.
func (s *Service) Redeem(ctx context.Context, g CodeGrant) (*Exchange, error) {
	r, err := s.realmOf(g.Realm)
	if err != nil {
		return nil, err
	}
	if g.Code == "" {
		return nil, &session.Error{Code: session.InvalidRequest, Description: "missing code"}
	}
	if len(g.Code) > 256 {
		return nil, invalidGrant("Code not valid")
	}
	var c code
	rec, err := s.get(ctx, CodeKind, hashKey(g.Code), &c)
	if err != nil {
		return nil, err
	}
	if rec == nil || c.Realm != r.Name {
		return nil, invalidGrant("Code not valid")
	}
	now := s.clock()
	switch {
	case c.Used:
		s.revoke(ctx, r.Name, &c)
		return nil, invalidGrant("Code already used; the sessions it gave tokens of are ended")
	case !now.Before(c.Ends):
		return nil, invalidGrant("Code expired at %s (Client login timeout)", c.Ends.Format(time.RFC3339))
	case c.Request.ClientID != g.ClientID:
		return nil, invalidGrant("Code was issued to another client")
	case c.Request.RedirectURI != g.RedirectURI:
		return nil, invalidGrant("redirect_uri does not match the authorization request's")
	}
	if err := checkVerifier(c.Request.Challenge, g.Verifier); err != nil {
		return nil, err
	}
	switch {
	case c.Request.DPoPJKT == "":
	case g.JKT == "":
		return nil, invalidGrant("the code is bound to a DPoP key (dpop_jkt): the token request must carry a DPoP proof made with it")
	case subtle.ConstantTimeCompare([]byte(g.JKT), []byte(c.Request.DPoPJKT)) != 1:
		return nil, invalidGrant("the DPoP proof's key is not the one the authorization request bound the code to (dpop_jkt)")
	}
	c.Used = true
	if err := s.put(ctx, CodeKind, rec.Key, rec, c); err != nil {
		if errors.Is(err, spi.ErrConflict) { // redeemed at the same moment, perhaps on another node
			s.revoke(ctx, r.Name, &c)
			return nil, invalidGrant("Code already used; the sessions it gave tokens of are ended")
		}
		return nil, err
	}
	grant, err := s.sessions.Attach(ctx, session.AttachRequest{Realm: r.Name, SessionID: c.SessionID, ClientID: c.Request.ClientID, Scope: c.Request.Scope, JKT: g.JKT})
	if ex := (*sessionlimit.ExceededError)(nil); errors.As(err, &ex) {
		// Single sign-on into this client is over a session limit: the client gets the
		// token endpoint's own refusal, with the realm's message.
		return nil, invalidGrant("%s", ex.Message)
	}
	if err != nil {
		return nil, err
	}
	out := &Exchange{Grant: grant}
	if !hasScope(c.Request.Scope, "openid") {
		return out, nil
	}
	acr, amr, claims := s.authContext(ctx, r, c.SessionID)
	out.IDToken, err = s.tokens.IDToken(ctx, r.Name, token.IDClaims{
		Subject: c.UserID, ClientID: c.Request.ClientID, SessionID: c.SessionID, Nonce: c.Request.Nonce, ACR: acr, AMR: amr,
		AuthTime: c.AuthTime, AccessToken: grant.AccessToken, IssuedAt: grant.IssuedAt, Expiry: grant.ExpiresAt, Extra: claims,
	})
	if err != nil {
		return nil, fmt.Errorf("issue the id token: %w", err)
	}
	return out, nil
}

// checkVerifier checks a PKCE code_verifier against the stored S256 challenge.
func checkVerifier(challenge, verifier string) error {
	switch {
	case challenge == "" && verifier != "":
		return invalidGrant("code_verifier given, but the authorization request had no code_challenge")
	case challenge == "":
		return nil
	case verifier == "":
		return invalidGrant("code_verifier is missing (PKCE)")
	case len(verifier) < pkceMinimum || len(verifier) > pkceMaximum || strings.IndexFunc(verifier, notUnreserved) >= 0:
		return invalidGrant("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return invalidGrant("code_verifier does not match the code_challenge (PKCE)")
	}
	return nil
}

// revoke ends what a reused code gave: its online and offline sessions.
func (s *Service) revoke(ctx context.Context, realmName string, c *code) {
	for _, offline := range []bool{false, true} {
		if err := s.end(ctx, realmName, c.SessionID, offline, causeCodeReuse); err != nil {
			s.log.Error("a reused code's session could not be ended", "realm", realmName, "session", c.SessionID, "offline", offline, "error", err)
		}
	}
	s.log.Warn("authorization code used twice: its sessions are ended", "realm", realmName, "client", c.Request.ClientID, "session", c.SessionID)
}

// authContext is what the front-end said of the authentication when the session was
// opened, for the session's ID tokens: acr, amr, and the user's claims with
// preferred_username (the login username) unless the front-end gave one.
func (s *Service) authContext(ctx context.Context, r *realm.Realm, sid string) (string, []string, map[string]any) {
	us, err := s.liveSession(ctx, r, sid, s.clock())
	if err != nil || us == nil {
		return "", nil, nil
	}
	claims := map[string]any{}
	if v := us.Notes[NoteClaims]; v != "" {
		if err := json.Unmarshal([]byte(v), &claims); err != nil {
			s.log.Error("a session's stored claims do not parse; its ID token goes without them", "realm", r.Name, "session", sid, "error", err)
			claims = map[string]any{}
		}
	}
	if _, given := claims["preferred_username"]; !given && us.LoginUsername != "" {
		claims["preferred_username"] = us.LoginUsername
	}
	return us.Notes[NoteACR], strings.Fields(us.Notes[NoteAMR]), claims
}

// UserInfoError is a refused UserInfo request (RFC 6750 §3.1): invalid_token or
// insufficient_scope.
type UserInfoError struct {
	Code, Description string
}

func (e *UserInfoError) Error() string { return e.Code + ": " + e.Description }

// UserInfo answers OpenID Connect UserInfo for an access token: sub, preferred_username,
// and the claims the front-end gave at accept. The token's session must be live. jkt is
// the thumbprint of the key of the checked DPoP proof the token came with, "" when it came
// as a bearer token: a DPoP-bound token is accepted only with a proof of its key, and an
// unbound one only as a bearer token (RFC 9449 §7).
func (s *Service) UserInfo(ctx context.Context, realmName, raw, jkt string) (map[string]any, error) {
	r, err := s.realmOf(realmName)
	if err != nil {
		return nil, err
	}
	t, err := s.tokens.VerifyAccept(ctx, r.Name, raw, token.Accept{Types: []token.Type{token.Bearer}})
	if err != nil {
		var bad *token.Error
		if errors.As(err, &bad) {
			return nil, &UserInfoError{Code: "invalid_token", Description: bad.Description}
		}
		return nil, err
	}
	switch {
	case t.JKT != "" && jkt == "":
		return nil, &UserInfoError{Code: "invalid_token", Description: "the access token is DPoP-bound: present it with Authorization: DPoP and a DPoP proof of its key"}
	case t.JKT != jkt:
		return nil, &UserInfoError{Code: "invalid_token", Description: "the DPoP proof's key is not the one the access token is bound to"}
	}
	if !hasScope(t.Scope, "openid") {
		return nil, &UserInfoError{Code: "insufficient_scope", Description: "the access token was not granted the openid scope"}
	}
	us, err := s.anySession(ctx, r, t.SessionID)
	if err != nil {
		return nil, err
	}
	if us == nil || us.UserID != t.Subject {
		return nil, &UserInfoError{Code: "invalid_token", Description: "the token's session has ended"}
	}
	out := map[string]any{}
	if v := us.Notes[NoteClaims]; v != "" {
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("session %s: stored claims: %w", us.ID, err)
		}
	}
	out["sub"] = t.Subject
	if t.Username != "" {
		out["preferred_username"] = t.Username
	}
	return out, nil
}
