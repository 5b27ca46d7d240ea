// Package token issues and verifies the tokens of sessiond (access, refresh and offline
// tokens, signed JWTs shaped like Keycloak's) and keeps each realm's signing keys: creates,
// rotates (rotate.go) and stores them, encrypted with the operator's key-encryption key when
// one is given (kek.go).
//
// Kinds of token cannot pass for one another: access tokens are signed with the realm's
// published key and carry the JWS header typ at+jwt (RFC 9068); refresh and offline tokens
// are signed with a realm secret that is never published (HS512, as Keycloak does), so no
// verifier working from the JWKS accepts one; back-channel logout tokens carry logout+jwt;
// action tokens (action.go) are signed with the realm secret under action+jwt and verified
// only by VerifyAction. Verify checks the header type and the algorithm family a kind must
// have, then the typ claim.
//
// JOSE is github.com/go-jose/go-jose/v4: maintained, used by go-oidc, Vault and Kubernetes,
// and it makes the caller name the algorithms it accepts when parsing, so "none" and
// HMAC-with-the-public-key confusion are closed by construction rather than by checks we
// could forget. Claims are encoded here (not with go-jose/jwt) to control their exact shape,
// and tokens are signed here under a header encoded once per key and type (jws.go), which
// a test holds to what a go-jose Signer writes.
package token

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
)

// MaxSize is the longest token Verify parses; longer ones are refused before any decoding.
const MaxSize = 16 << 10

// Type is a token's "typ" claim, as Keycloak sets it.
type Type string

const (
	Bearer  Type = "Bearer"  // access token
	Refresh Type = "Refresh" // refresh token of an online session
	Offline Type = "Offline" // refresh token of an offline session
)

// Claims are what the caller decides about a token. Issue adds iss, jti, typ and, for
// access tokens, session_state.
type Claims struct {
	Type      Type
	Subject   string   // sub: the user id
	Audience  []string // aud: one value is encoded as a string, several as an array
	ClientID  string   // azp
	SessionID string   // sid: the user session id (required for refresh and offline tokens)
	Scope     string   // space separated
	Username  string   // preferred_username; access tokens only
	// IssuedAt and Expiry are encoded in whole seconds, rounded down: a token never
	// outlives the expiry the caller computed.
	IssuedAt time.Time
	Expiry   time.Time
	// JKT binds the token to a DPoP key (RFC 9449 §6.1): the cnf.jkt claim, the RFC 7638
	// thumbprint of the key; "" for an unbound token.
	JKT string
}

// Token is an issued or verified token.
type Token struct {
	Claims
	Issuer string // iss
	ID     string // jti, random
	KeyID  string // kid of the key that signed it
	Raw    string // the compact JWS
	// Legacy: the token is in the format from before at+jwt and realm secrets (signed with
	// the published key, header typ JWT), accepted because the caller and the operator allow
	// it. A refresh replaces it with a token in the current format.
	Legacy bool
}

// Accept says which tokens a verifier takes.
type Accept struct {
	// Types are the token types accepted in the current format: access tokens (Bearer) signed
	// with the published key and header typ at+jwt; refresh and offline tokens signed with
	// the realm secret (HS512).
	Types []Type
	// Legacy are the types also accepted in the format sessiond issued before at+jwt and
	// realm secrets: signed with the published key, header typ JWT, the kind only in the typ
	// claim. Unless Options.RefuseLegacy, so that sessions from before an upgrade go on.
	Legacy []Type
	// IgnoreExpiry accepts a token past its exp: for the id_token_hint of a logout, which
	// names whose session to end and grants nothing (OpenID Connect RP-Initiated Logout).
	IgnoreExpiry bool
}

// Options configure a Service.
type Options struct {
	// IssuerBase is the public base URL, e.g. "https://sso.example.com"; a realm's issuer
	// is IssuerBase + "/realms/" + realm.
	IssuerBase string
	// Leeway is how long after exp an access token is still accepted, for clock skew
	// between nodes. Refresh and offline tokens get none.
	Leeway time.Duration
	// Now is the clock for expiry checks (nil: time.Now).
	Now func() time.Time
	// RefuseLegacy refuses tokens in the format from before at+jwt and realm secrets even
	// where Accept.Legacy allows them (the legacy-tokens=refuse option).
	RefuseLegacy bool
	// Log says, once per realm, that a legacy token was seen (nil: no log).
	Log hclog.Logger
	// VerifiedTokens bounds the verified-token cache (verified.go): 0 means
	// DefaultVerifiedTokens, a negative value turns it off.
	VerifiedTokens int
}

// Service issues and verifies tokens with the keys of a KeyManager. It is safe for
// concurrent use.
type Service struct {
	keys         *KeyManager
	base         string
	leeway       time.Duration
	now          func() time.Time
	refuseLegacy bool
	log          hclog.Logger
	verified     *verifiedCache // nil: off

	legacySeen   atomic.Uint64
	legacyRealms sync.Map // realm name → struct{}: the realms whose first legacy token was logged
}

// New returns a Service signing with keys.
func New(keys *KeyManager, opts Options) *Service {
	s := &Service{keys: keys, base: strings.TrimRight(opts.IssuerBase, "/"), leeway: max(opts.Leeway, 0), now: opts.Now,
		refuseLegacy: opts.RefuseLegacy, log: opts.Log, verified: newVerifiedCache(opts.VerifiedTokens)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	return s
}

// LegacyTokens returns how many legacy tokens Verify has accepted, or refused because the
// operator refuses them, since the service started.
func (s *Service) LegacyTokens() uint64 { return s.legacySeen.Load() }

// Issuer returns the realm's issuer URL (the iss claim and the discovery document's issuer).
func (s *Service) Issuer(realm string) string {
	return s.base + "/realms/" + url.PathEscape(realm)
}

// wire is the JWT payload, in Keycloak's claim order.
type wire struct {
	Exp          int64    `json:"exp"`
	Iat          int64    `json:"iat"`
	Jti          string   `json:"jti"`
	Iss          string   `json:"iss"`
	Aud          audience `json:"aud,omitempty"`
	Sub          string   `json:"sub"`
	Typ          Type     `json:"typ"`
	Azp          string   `json:"azp"`
	Sid          string   `json:"sid,omitempty"`
	SessionState string   `json:"session_state,omitempty"`
	Scope        string   `json:"scope,omitempty"`
	Username     string   `json:"preferred_username,omitempty"`
	Cnf          *Cnf     `json:"cnf,omitempty"`
}

// Cnf is the confirmation claim (RFC 7800) of a DPoP-bound token: its key's thumbprint.
type Cnf struct {
	JKT string `json:"jkt"`
}

// audience is "aud": a string for one value, an array for several (RFC 7519 allows both,
// Keycloak emits both).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// Issue signs a token for realm with its active key, creating the realm's first key if it
// has none. Claims the token type requires but c lacks are spi.ErrInvalid.
func (s *Service) Issue(ctx context.Context, realm string, c Claims) (*Token, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("issue %s token in realm %q: %w: %w", c.Type, realm, err, spi.ErrInvalid)
	}
	w := wire{
		Exp: c.Expiry.Unix(), Iat: c.IssuedAt.Unix(), Jti: rand.Text(), Iss: s.Issuer(realm),
		Aud: audience(c.Audience), Sub: c.Subject, Typ: c.Type, Azp: c.ClientID, Sid: c.SessionID,
		Scope: c.Scope,
	}
	if c.Type == Bearer {
		w.SessionState, w.Username = c.SessionID, c.Username
	}
	if c.JKT != "" {
		w.Cnf = &Cnf{JKT: c.JKT}
	}
	raw, kid, err := s.sign(ctx, realm, c.Type, w.appendJSON(make([]byte, 0, w.jsonSize())))
	if err != nil {
		return nil, err
	}
	return w.token(raw, kid), nil
}

func (c Claims) check() error {
	switch {
	case c.Type != Bearer && c.Type != Refresh && c.Type != Offline:
		return fmt.Errorf("unknown token type %q", c.Type)
	case c.Subject == "" || c.ClientID == "":
		return errors.New("subject and client id are required")
	case c.SessionID == "" && c.Type != Bearer:
		return errors.New("a session id is required")
	case c.IssuedAt.IsZero() || !c.Expiry.After(c.IssuedAt):
		return fmt.Errorf("expiry %s must be after issued-at %s", c.Expiry, c.IssuedAt)
	}
	return nil
}

// sign signs an access token with the realm's published key and header typ at+jwt, a refresh
// or offline token with the realm secret.
func (s *Service) sign(ctx context.Context, realm string, t Type, payload []byte) (raw, kid string, err error) {
	if t == Bearer {
		return s.keys.sign(ctx, realm, asymmetric, typAccess, payload)
	}
	return s.keys.sign(ctx, realm, secret, typJWT, payload)
}

func (w *wire) token(raw, kid string) *Token {
	jkt := ""
	if w.Cnf != nil {
		jkt = w.Cnf.JKT
	}
	return &Token{
		Claims: Claims{
			Type: w.Typ, Subject: w.Sub, Audience: w.Aud, ClientID: w.Azp, SessionID: w.Sid,
			Scope: w.Scope, Username: w.Username,
			IssuedAt: time.Unix(w.Iat, 0).UTC(), Expiry: time.Unix(w.Exp, 0).UTC(), JKT: jkt,
		},
		Issuer: w.Iss, ID: w.Jti, KeyID: kid, Raw: raw,
	}
}

// notCompactJWS reports a rune that cannot appear in a compact JWS.
func notCompactJWS(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
}

// Verify checks a token in the current format of one of the expect types; see VerifyAccept.
func (s *Service) Verify(ctx context.Context, realm, raw string, expect ...Type) (*Token, error) {
	return s.VerifyAccept(ctx, realm, raw, Accept{Types: expect})
}

// VerifyAccept checks a token presented to realm and returns it if it holds, in this order:
// size, JWS shape, algorithm (ES256, RS256 or HS512), key (by kid, among the keys the realm
// verifies with now, of the header's algorithm), signature, issuer, kind (the header type and
// key family a kind has, then the typ claim, one of a), expiry. A refused token is an *Error
// (see the Err* kinds); any other error is a failure to read the realm's keys. It never
// creates a key.
func (s *Service) VerifyAccept(ctx context.Context, realm, raw string, a Accept) (*Token, error) {
	if len(a.Types)+len(a.Legacy) == 0 {
		return nil, fmt.Errorf("verify a token in realm %q: no token type expected: %w", realm, spi.ErrInvalid)
	}
	if slices.Contains(a.Types, Action) || slices.Contains(a.Legacy, Action) {
		return nil, fmt.Errorf("verify a token in realm %q: %w: %w", realm, errActionViaVerify, spi.ErrInvalid)
	}
	v, err := s.verifiedToken(ctx, realm, raw)
	if err != nil {
		return nil, err
	}
	w := v.claimsOf()
	legacy, err := s.kind(realm, v.alg, v.typ, &w, a)
	if err != nil {
		return nil, err
	}
	t, err := s.check(&w, raw, v.kid)
	if a.IgnoreExpiry && errors.Is(err, ErrExpired) {
		t, err = w.token(raw, v.kid), nil
	}
	if err != nil {
		return nil, err
	}
	t.Legacy = legacy
	return t, nil
}

// signed checks a presented token up to its signature: size, JWS shape, algorithm, key (by
// kid, among the keys the realm verifies with now, of the header's algorithm) and signature.
// It returns the payload, the JWS header type and the key that verified it.
func (s *Service) signed(ctx context.Context, realm, raw string) (payload []byte, typ string, k *key, err error) {
	if len(raw) > MaxSize {
		return nil, "", nil, refuse(ErrMalformed, fmt.Sprintf("token is %d bytes, more than the %d accepted", len(raw), MaxSize))
	}
	// Base64 decoders skip CR and LF, so without this one token would have many spellings,
	// and anything keyed by the raw string would see several tokens.
	if i := strings.IndexFunc(raw, notCompactJWS); i >= 0 {
		return nil, "", nil, refuse(ErrMalformed, fmt.Sprintf("token has a character outside base64url and '.' at offset %d", i))
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.HS512})
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) && alg.Got != "" {
			return nil, "", nil, refuse(ErrAlgorithm, fmt.Sprintf("token is signed with %s; only ES256, RS256 and HS512 are accepted", quote(string(alg.Got))))
		}
		return nil, "", nil, refuse(ErrMalformed, "token is not a compact JWS")
	}
	header := jws.Signatures[0].Protected
	if header.KeyID == "" {
		return nil, "", nil, refuse(ErrMalformed, "token header has no kid")
	}
	if _, ok := header.ExtraHeaders["crit"]; ok {
		// sessiond never sets crit; refusing it here keeps the failure a malformed token
		// rather than a signature error from the library.
		return nil, "", nil, refuse(ErrMalformed, "token header has crit parameters, which sessiond does not use")
	}
	set, err := s.keys.verifying(ctx, realm, header.KeyID)
	if err != nil {
		return nil, "", nil, err
	}
	k, err = set.verifier(realm, header.KeyID, Algorithm(header.Algorithm), s.keys.now())
	if err != nil {
		return nil, "", nil, err
	}
	payload, err = jws.Verify(k.verifies())
	if err != nil {
		return nil, "", nil, refuse(ErrSignature, fmt.Sprintf("token signature does not verify with key %s of realm %q", quote(k.id), realm))
	}
	typ, _ = header.ExtraHeaders[jose.HeaderType].(string)
	return payload, typ, k, nil
}

// kind checks that a token whose signature holds is of a kind the caller accepts: the JWS
// header type and the family of the key that signed it say what the token is, and its typ
// claim must agree. It reports whether the token is a legacy one.
func (s *Service) kind(realm string, alg Algorithm, typ string, w *wire, a Accept) (legacy bool, err error) {
	var allowed []Type
	switch f := alg.family(); {
	case f == asymmetric && typ == typAccess:
		allowed = only(a.Types, Bearer)
	case f == secret && typ == typJWT:
		allowed = only(a.Types, Refresh, Offline)
	case f == secret && typ == typSSO:
		allowed = only(a.Types, SSO)
	case f == asymmetric && typ == typJWT && w.Typ == ID:
		// An ID token: plain JWT header, as OpenID Connect's, told apart by its typ claim.
		allowed = only(a.Types, ID)
	case f == asymmetric && typ == typJWT:
		legacy, allowed = true, only(a.Legacy, Bearer, Refresh, Offline)
	default:
		return false, refuse(ErrWrongType, fmt.Sprintf("token has header type %s with %s, which is no kind of token sessiond accepts here", quote(typ), alg))
	}
	if !slices.Contains(allowed, w.Typ) {
		what := ""
		if legacy {
			what = " in the format from before this version of sessiond"
		}
		return false, refuse(ErrWrongType, fmt.Sprintf("token type is %s%s, expected %s", quote(string(w.Typ)), what, joinTypes(append(slices.Clone(a.Types), a.Legacy...))))
	}
	if legacy {
		s.legacySeen.Add(1)
		if _, seen := s.legacyRealms.LoadOrStore(realm, struct{}{}); !seen {
			s.log.Info("a token in the format from before at+jwt and realm secrets was presented; see \"Upgrading: token formats\" in the operator guide",
				"realm", realm, "typ", w.Typ, "refused", s.refuseLegacy)
		}
		if s.refuseLegacy {
			return false, refuse(ErrWrongType, fmt.Sprintf("token type %s is in the format from before this version of sessiond, which the operator refuses (legacy-tokens=refuse)", quote(string(w.Typ))))
		}
	}
	return legacy, nil
}

// only returns the members of ts that are among kinds.
func only(ts []Type, kinds ...Type) []Type {
	var out []Type
	for _, t := range ts {
		if slices.Contains(kinds, t) {
			out = append(out, t)
		}
	}
	return out
}

// verifier returns the key that must have signed a token with that kid and alg.
func (set *keySet) verifier(realm, kid string, alg Algorithm, now time.Time) (*key, error) {
	k := set.byID[kid]
	switch {
	case k == nil:
		return nil, refuse(ErrUnknownKey, fmt.Sprintf("token is signed with key %s, which realm %q does not have", quote(kid), realm))
	case !k.usable(now):
		return nil, refuse(ErrUnknownKey, fmt.Sprintf("token is signed with key %s, retired from realm %q at %s", quote(kid), realm, k.verifyUntil.Format(time.RFC3339)))
	case k.alg != alg:
		return nil, refuse(ErrAlgorithm, fmt.Sprintf("token says %s but key %s of realm %q is %s", quote(string(alg)), quote(kid), realm, k.alg))
	}
	return k, nil
}

// check verifies the expiry of a token whose signature, issuer and kind hold.
func (s *Service) check(w *wire, raw, kid string) (*Token, error) {
	if w.Exp == 0 {
		return nil, refuse(ErrMalformed, "token has no exp")
	}
	exp := time.Unix(w.Exp, 0).UTC()
	leeway := time.Duration(0)
	if w.Typ == Bearer {
		leeway = s.leeway
	}
	if now := s.now(); !now.Before(exp.Add(leeway)) {
		return nil, refuse(ErrExpired, fmt.Sprintf("%s token expired at %s", w.Typ, exp.Format(time.RFC3339)))
	}
	return w.token(raw, kid), nil
}

func joinTypes(ts []Type) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return strings.Join(out, " or ")
}

// quote renders a value taken from a token for an error description: quoted, escaped and
// cut short, so that a crafted token cannot fill or forge the message.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}
