package token

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Action is the typ claim of an action token: a permit for one user to do one action (verify
// an email address, reset credentials, execute required actions), which the login front-end
// redeems once. Keycloak puts the action id in typ; sessiond keeps typ for the kind of
// token, so that no action name can ever read as another kind, and names the action in the
// action claim.
const Action Type = "Action"

// typAction is the JWS header type of action tokens. They are signed with the realm secret
// (HS512), like refresh tokens, so nothing that verifies with the JWKS accepts one; the
// header type is what tells the two kinds apart: Verify refuses it for every other kind, and
// VerifyAction refuses every other header.
const typAction = "action+jwt"

// ActionClaims are what the caller decides about an action token. The optional fields are
// those Keycloak's action tokens carry, under Keycloak's claim names.
type ActionClaims struct {
	Action   string // action: e.g. "verify-email"; required
	Subject  string // sub: the user id; required
	ClientID string // azp: the client the action was started for
	// AdminInitiated says an administrator asked for it (the admin API), not the user (the
	// login front-end); it decided the default lifespan.
	AdminInitiated bool     // adm
	Email          string   // eml: the address to verify (verify-email, idp-verify-account-via-email)
	RedirectURI    string   // reduri: where to send the user once done
	Required       []string // rqac: the required actions to execute (execute-actions)
	// AuthSessionID is the authentication session the action continues, if any (asid).
	AuthSessionID string
	// IdentityProviderAlias and IdentityProviderUsername name the account to link
	// (idp-verify-account-via-email: idpa, idpu).
	IdentityProviderAlias    string
	IdentityProviderUsername string
	// IssuedAt and Expiry are encoded in whole seconds, rounded down.
	IssuedAt time.Time
	Expiry   time.Time
}

// ActionToken is an issued or verified action token.
type ActionToken struct {
	ActionClaims
	Issuer string // iss, also its aud, as Keycloak sets both
	ID     string // jti, random: what single use is recorded under
	KeyID  string
	Raw    string
}

// actionWire is the JWT payload of an action token.
type actionWire struct {
	Exp    int64    `json:"exp"`
	Iat    int64    `json:"iat"`
	Jti    string   `json:"jti"`
	Iss    string   `json:"iss"`
	Aud    audience `json:"aud"`
	Sub    string   `json:"sub"`
	Typ    Type     `json:"typ"`
	Action string   `json:"action"`
	Azp    string   `json:"azp,omitempty"`
	Adm    bool     `json:"adm,omitempty"`
	Eml    string   `json:"eml,omitempty"`
	Reduri string   `json:"reduri,omitempty"`
	Rqac   []string `json:"rqac,omitempty"`
	Asid   string   `json:"asid,omitempty"`
	Idpa   string   `json:"idpa,omitempty"`
	Idpu   string   `json:"idpu,omitempty"`
}

// IssueAction signs an action token for realm with the realm secret and header type
// action+jwt, creating the realm's first keys if it has none. Missing claims are
// spi.ErrInvalid.
func (s *Service) IssueAction(ctx context.Context, realm string, c ActionClaims) (*ActionToken, error) {
	switch {
	case c.Action == "" || c.Subject == "":
		return nil, fmt.Errorf("issue action token in realm %q: action and subject are required: %w", realm, spi.ErrInvalid)
	case c.IssuedAt.IsZero() || !c.Expiry.After(c.IssuedAt):
		return nil, fmt.Errorf("issue action token in realm %q: expiry %s must be after issued-at %s: %w", realm, c.Expiry, c.IssuedAt, spi.ErrInvalid)
	}
	iss := s.Issuer(realm)
	w := actionWire{
		Exp: c.Expiry.Unix(), Iat: c.IssuedAt.Unix(), Jti: rand.Text(), Iss: iss, Aud: audience{iss},
		Sub: c.Subject, Typ: Action, Action: c.Action, Azp: c.ClientID, Adm: c.AdminInitiated,
		Eml: c.Email, Reduri: c.RedirectURI, Rqac: c.Required, Asid: c.AuthSessionID,
		Idpa: c.IdentityProviderAlias, Idpu: c.IdentityProviderUsername,
	}
	payload, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	raw, kid, err := s.keys.sign(ctx, realm, secret, typAction, payload)
	if err != nil {
		return nil, err
	}
	return w.token(raw, kid), nil
}

func (w *actionWire) token(raw, kid string) *ActionToken {
	return &ActionToken{
		ActionClaims: ActionClaims{
			Action: w.Action, Subject: w.Sub, ClientID: w.Azp, AdminInitiated: w.Adm, Email: w.Eml,
			RedirectURI: w.Reduri, Required: w.Rqac, AuthSessionID: w.Asid,
			IdentityProviderAlias: w.Idpa, IdentityProviderUsername: w.Idpu,
			IssuedAt: time.Unix(w.Iat, 0).UTC(), Expiry: time.Unix(w.Exp, 0).UTC(),
		},
		Issuer: w.Iss, ID: w.Jti, KeyID: kid, Raw: raw,
	}
}

// VerifyAction checks an action token presented to realm, as VerifyAccept checks the other
// kinds (size, JWS shape, algorithm, key, signature), then: the header type is action+jwt
// and the key the realm secret, issuer and audience are the realm's, typ is Action, and the
// token has not expired (no leeway: it is redeemed on the node that checks it). A refused
// token is an *Error; any other error is a failure to read the realm's keys. It does not
// say whether the token was used: that is the caller's record (core/actiontoken).
func (s *Service) VerifyAction(ctx context.Context, realm, raw string) (*ActionToken, error) {
	payload, typ, k, err := s.signed(ctx, realm, raw)
	if err != nil {
		return nil, err
	}
	if k.alg.family() != secret || typ != typAction {
		return nil, refuse(ErrWrongType, fmt.Sprintf("token has header type %s with %s, not an action token (%s with %s)", quote(typ), k.alg, typAction, HS512))
	}
	var w actionWire
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, refuse(ErrMalformed, "action token claims are not valid JSON of the expected types")
	}
	want := s.Issuer(realm)
	switch {
	case w.Iss != want:
		return nil, refuse(ErrWrongRealm, fmt.Sprintf("token was issued by %s, not by realm %q", quote(w.Iss), realm))
	case !slices.Equal(w.Aud, audience{want}):
		return nil, refuse(ErrWrongRealm, fmt.Sprintf("action token is not for realm %q", realm))
	case w.Typ != Action:
		return nil, refuse(ErrWrongType, fmt.Sprintf("token type is %s, expected %s", quote(string(w.Typ)), Action))
	case w.Exp == 0 || w.Jti == "" || w.Action == "" || w.Sub == "":
		return nil, refuse(ErrMalformed, "action token lacks exp, jti, action or sub")
	}
	if exp := time.Unix(w.Exp, 0).UTC(); !s.now().Before(exp) {
		return nil, refuse(ErrExpired, fmt.Sprintf("action token expired at %s", exp.Format(time.RFC3339)))
	}
	return w.token(raw, k.id), nil
}

// errActionViaVerify is asking Verify for action tokens, whose claims its Token cannot hold.
var errActionViaVerify = errors.New("action tokens are verified with VerifyAction")
