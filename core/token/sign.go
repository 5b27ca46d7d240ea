package token

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Sign signs payload, a JSON object, as a compact JWS with the realm's active key, creating
// the realm's first key if it has none. It is for messages that carry the realm's authority
// without being sessiond tokens, such as the adapter actions of revocation push.
//
// The JWS header type is JWT, which Verify accepts only for refresh tokens (HS512, which this
// key is not) and, with legacy tokens accepted, for tokens from before at+jwt. So a payload
// whose typ claim names one of sessiond's token types is refused: nothing signed here may
// pass Verify as a token. The claim name is matched without regard to case, as encoding/json
// matches it when Verify decodes claims.
func (m *KeyManager) Sign(ctx context.Context, realm string, payload []byte) (string, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return "", fmt.Errorf("sign in realm %q: payload is not a JSON object: %w", realm, spi.ErrInvalid)
	}
	for name, v := range claims {
		var typ Type
		if strings.EqualFold(name, "typ") && json.Unmarshal(v, &typ) == nil && (typ == Bearer || typ == Refresh || typ == Offline || typ == Logout || typ == Action || typ == ID || typ == SSO) {
			return "", fmt.Errorf("sign in realm %q: payload claims typ %q, a sessiond token type: %w", realm, typ, spi.ErrInvalid)
		}
	}
	raw, _, err := m.sign(ctx, realm, asymmetric, typJWT, payload)
	return raw, err
}

// sign signs payload with the realm's active key of family f, with JWS header type typ, and
// returns the JWS and that key's id.
func (m *KeyManager) sign(ctx context.Context, realm string, f family, typ string, payload []byte) (raw, kid string, err error) {
	set, err := m.signing(ctx, realm, f)
	if err != nil {
		return "", "", err
	}
	k := set.active[f]
	raw, err = k.signers[typ].sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("sign in realm %q: %w", realm, err)
	}
	return raw, k.id, nil
}

// Logout is the typ claim of a back-channel logout token, as Keycloak sets it. Verify never
// accepts a logout token: sessiond sends them and never reads one back. Its JWS header type
// is logout+jwt, so a resource server that checks for at+jwt (RFC 9068) refuses it too.
const Logout Type = "Logout"

// BackchannelLogoutEvent is the member of the events claim that makes a JWT a logout token
// (OpenID Connect Back-Channel Logout 1.0, section 2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutClaims are what the caller decides about a back-channel logout token.
type LogoutClaims struct {
	Subject   string // sub: the user id
	SessionID string // sid: the user session id
	Audience  string // aud: the clientId of the client told
	// IssuedAt and Expiry are encoded in whole seconds, rounded down.
	IssuedAt time.Time
	Expiry   time.Time
}

// logoutWire is the JWT payload of a logout token. It has no nonce: the specification
// forbids one, so that a logout token cannot pass for an ID token.
type logoutWire struct {
	Iat    int64                     `json:"iat"`
	Exp    int64                     `json:"exp"`
	Jti    string                    `json:"jti"`
	Iss    string                    `json:"iss"`
	Aud    string                    `json:"aud"`
	Sub    string                    `json:"sub"`
	Typ    Type                      `json:"typ"`
	Sid    string                    `json:"sid"`
	Events map[string]map[string]any `json:"events"`
}

// LogoutToken signs an OpenID Connect back-channel logout token for realm: iss is the
// realm's issuer, jti random, and the events claim holds the back-channel logout event.
// Missing claims are spi.ErrInvalid.
func (s *Service) LogoutToken(ctx context.Context, realm string, c LogoutClaims) (string, error) {
	switch {
	case c.Subject == "" || c.SessionID == "" || c.Audience == "":
		return "", fmt.Errorf("logout token in realm %q: subject, session id and audience are required: %w", realm, spi.ErrInvalid)
	case c.IssuedAt.IsZero() || !c.Expiry.After(c.IssuedAt):
		return "", fmt.Errorf("logout token in realm %q: expiry %s must be after issued-at %s: %w", realm, c.Expiry, c.IssuedAt, spi.ErrInvalid)
	}
	payload, err := json.Marshal(logoutWire{
		Iat: c.IssuedAt.Unix(), Exp: c.Expiry.Unix(), Jti: rand.Text(), Iss: s.Issuer(realm),
		Aud: c.Audience, Sub: c.Subject, Typ: Logout, Sid: c.SessionID,
		Events: map[string]map[string]any{BackchannelLogoutEvent: {}},
	})
	if err != nil {
		return "", err
	}
	raw, _, err := s.keys.sign(ctx, realm, asymmetric, typLogout, payload)
	return raw, err
}
