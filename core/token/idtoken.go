package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// ID is the typ claim of an OpenID Connect ID token, as Keycloak sets it. The JWS header
// type is the plain JWT (OpenID Connect defines no other, and go-oidc checks none), signed
// with the published key: a verifier asking for an access token (header at+jwt) or a
// refresh token (HS512) refuses it by its header, and a legacy verifier by its typ claim.
const ID Type = "ID"

// SSO is the typ claim of sessiond's SSO cookie, signed with the realm secret and header
// type sso+jwt: the browser's proof that it holds a user session. It is never published.
const SSO Type = "SSO"

// typSSO is the JWS header type of an SSO cookie.
const typSSO = "sso+jwt"

// IDClaims are what the caller decides about an ID token (OpenID Connect Core 1.0 §2).
type IDClaims struct {
	Subject   string // sub
	ClientID  string // aud and azp
	SessionID string // sid
	Nonce     string // nonce, as the authorization request gave it
	ACR       string // acr
	AMR       []string
	AuthTime  time.Time // auth_time
	// AccessToken, when set, is hashed into at_hash; Code into c_hash (hybrid flow).
	AccessToken string
	Code        string
	IssuedAt    time.Time
	Expiry      time.Time
	// Extra are further claims (the front-end's, given at accept); they never replace the
	// claims above.
	Extra map[string]any
}

// registered are the claims IDToken sets itself.
var registered = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "acr", "amr", "azp", "at_hash", "c_hash", "typ", "jti"}

// RegisteredIDClaim reports whether name is a claim IDToken sets itself, which Extra
// cannot give.
func RegisteredIDClaim(name string) bool { return slices.Contains(registered, name) }

// IDToken signs an ID token for realm with its published key.
func (s *Service) IDToken(ctx context.Context, realm string, c IDClaims) (string, error) {
	switch {
	case c.Subject == "" || c.ClientID == "":
		return "", fmt.Errorf("id token in realm %q: subject and client id are required: %w", realm, spi.ErrInvalid)
	case c.IssuedAt.IsZero() || !c.Expiry.After(c.IssuedAt):
		return "", fmt.Errorf("id token in realm %q: expiry %s must be after issued-at %s: %w", realm, c.Expiry, c.IssuedAt, spi.ErrInvalid)
	}
	claims := maps.Clone(c.Extra)
	if claims == nil {
		claims = map[string]any{}
	}
	for _, name := range registered {
		delete(claims, name)
	}
	claims["iss"], claims["sub"], claims["aud"], claims["azp"] = s.Issuer(realm), c.Subject, c.ClientID, c.ClientID
	claims["exp"], claims["iat"], claims["jti"], claims["typ"] = c.Expiry.Unix(), c.IssuedAt.Unix(), rand.Text(), ID
	if !c.AuthTime.IsZero() {
		claims["auth_time"] = c.AuthTime.Unix()
	}
	set := func(name, v string) {
		if v != "" {
			claims[name] = v
		}
	}
	set("nonce", c.Nonce)
	set("sid", c.SessionID)
	set("acr", c.ACR)
	if len(c.AMR) > 0 {
		claims["amr"] = c.AMR
	}
	if c.AccessToken != "" {
		claims["at_hash"] = HalfHash(c.AccessToken)
	}
	if c.Code != "" {
		claims["c_hash"] = HalfHash(c.Code)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("id token in realm %q: %w", realm, err)
	}
	raw, _, err := s.keys.sign(ctx, realm, asymmetric, typJWT, payload)
	return raw, err
}

// HalfHash is the at_hash of a token signed with ES256 or RS256 (OpenID Connect Core 1.0
// §3.1.3.6): the left half of its SHA-256, base64url.
func HalfHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// SSOCookie signs the value of the SSO cookie of a user session: sub, sid, iat (the time the
// user authenticated) and exp, with the realm secret.
func (s *Service) SSOCookie(ctx context.Context, realm, userID, sessionID string, authTime, expiry time.Time) (string, error) {
	if userID == "" || sessionID == "" || !expiry.After(authTime) {
		return "", fmt.Errorf("sso cookie in realm %q: user, session and an expiry after the authentication time are required: %w", realm, spi.ErrInvalid)
	}
	payload, err := json.Marshal(wire{Exp: expiry.Unix(), Iat: authTime.Unix(), Jti: rand.Text(), Iss: s.Issuer(realm),
		Sub: userID, Typ: SSO, Sid: sessionID})
	if err != nil {
		return "", err
	}
	raw, _, err := s.keys.sign(ctx, realm, secret, typSSO, payload)
	return raw, err
}
