// Package dpop checks DPoP proofs (RFC 9449, OAuth 2.0 Demonstrating Proof of Possession)
// so that sessiond can bind the tokens it issues to a key the client holds: a stolen token
// is then worth nothing without that key.
//
// Parse checks what a proof says about itself (header type, algorithm, the public key it
// carries, its signature and claims); Checker.Check checks it against the request it came
// with (method, URL, freshness, access-token hash, server nonce) and records its jti in the
// user-sessions store, so that no node of a cluster accepts it twice. JOSE is go-jose, as in
// core/token: it makes the caller name the algorithms it accepts, so none and HMAC are
// closed by construction.
package dpop

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/internal/jsonkeys"
)

// The OAuth error codes of RFC 9449.
const (
	InvalidProof = "invalid_dpop_proof" // §5, §7.1
	UseNonce     = "use_dpop_nonce"     // §8, §9
)

// Header names (RFC 9449 §4.1, §8).
const (
	Header      = "DPoP"
	NonceHeader = "DPoP-Nonce"
	// Scheme is the Authorization scheme of a DPoP-bound access token (§7.1).
	Scheme = "DPoP"
	// TokenType is the token_type of a token response whose access token is bound (§5).
	TokenType = "DPoP"
	// typ is the proof's JWS header type (§4.2).
	typ = "dpop+jwt"
)

// MaxSize bounds a proof: an RSA 4096 key in the header and the claims fit well within it.
const MaxSize = 8 << 10

// maxJTI bounds the jti a client chooses; it is stored (hashed) for the proof's lifetime.
const maxJTI = 256

// minRSABits is the smallest RSA key accepted (RFC 7518 §3.3: 2048 or larger).
const minRSABits = 2048

// Error is a refused proof, or a request that must carry one and does not: Code is
// InvalidProof or UseNonce. Nonce, when set, is a fresh server nonce for the client to
// retry with (the DPoP-Nonce response header).
type Error struct {
	Code        string
	Description string
	Nonce       string
	// Resource: the proof came to a protected resource (UserInfo), which answers 401 with
	// a DPoP challenge (§7.1) rather than the token endpoint's 400 (§5).
	Resource bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(format string, args ...any) *Error {
	return &Error{Code: InvalidProof, Description: fmt.Sprintf(format, args...)}
}

// Algorithms returns the proof signing algorithms accepted, for discovery's
// dpop_signing_alg_values_supported: asymmetric only (§4.2), never none or HMAC.
func Algorithms() []string {
	out := make([]string, len(algorithms))
	for i, a := range algorithms {
		out[i] = string(a)
	}
	return out
}

var algorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// Proof is a proof whose signature holds.
type Proof struct {
	JKT      string // RFC 7638 SHA-256 thumbprint of the public key, base64url
	ID       string // jti
	Method   string // htm
	URL      string // htu
	IssuedAt time.Time
	Nonce    string // "" when the client sent none
	ATH      string // base64url SHA-256 of the access token, "" when absent
}

// rawHeader is the protected header as the client wrote it, read before go-jose so that
// every refusal says which rule it broke.
type rawHeader struct {
	Typ string                     `json:"typ"`
	Alg string                     `json:"alg"`
	JWK map[string]json.RawMessage `json:"jwk"`
}

// claims are the proof's claims (§4.2); iat is a number, fractions allowed.
type claims struct {
	JTI   *string      `json:"jti"`
	HTM   *string      `json:"htm"`
	HTU   *string      `json:"htu"`
	IAT   *json.Number `json:"iat"`
	Nonce *string      `json:"nonce"`
	ATH   *string      `json:"ath"`
}

// privateMembers are the JWK members that only a private (or symmetric) key has.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Parse checks a proof on its own (RFC 9449 §4.3 steps 2 to 6): one well-formed compact JWS
// of type dpop+jwt, an accepted asymmetric algorithm, a public jwk in its header that
// verifies its signature, and the required claims (jti, htm, htu, iat) of the right types.
// Every refusal is an *Error with Code InvalidProof.
func Parse(raw string) (*Proof, error) {
	switch {
	case raw == "":
		return nil, invalid("the DPoP header is empty")
	case len(raw) > MaxSize:
		return nil, invalid("the DPoP proof is %d bytes, more than the %d accepted", len(raw), MaxSize)
	case strings.IndexFunc(raw, notCompactJWS) >= 0:
		return nil, invalid("the DPoP proof is not a compact JWS (a character outside base64url and '.')")
	case strings.Count(raw, ".") != 2:
		return nil, invalid("the DPoP proof is not a compact JWS (three parts separated by '.')")
	}
	head, _, _ := strings.Cut(raw, ".")
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, invalid("the DPoP proof's header is not base64url")
	}
	var h rawHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, invalid("the DPoP proof's header is not a JSON object of the expected types")
	}
	// go-jose reads the header again, case-sensitively: a "TYP" beside "typ" would be the
	// typ checked here and not the one go-jose and other verifiers see.
	if err := jsonkeys.Check(hb, &h); err != nil {
		return nil, invalid("the DPoP proof's header: %s", err)
	}
	switch {
	case h.Typ != typ:
		return nil, invalid("the DPoP proof's typ is %s, not %q", quote(h.Typ), typ)
	case !slices.Contains(algorithms, jose.SignatureAlgorithm(h.Alg)):
		return nil, invalid("the DPoP proof is signed with %s; accepted: %s", quote(h.Alg), strings.Join(Algorithms(), ", "))
	case h.JWK == nil:
		return nil, invalid("the DPoP proof's header has no jwk")
	}
	for _, m := range privateMembers {
		if _, ok := h.JWK[m]; ok {
			return nil, invalid("the DPoP proof's jwk holds a private or symmetric key (member %q): only the public key belongs there", m)
		}
	}
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		return nil, invalid("the DPoP proof's header or jwk is malformed")
	}
	sig := jws.Signatures[0]
	if _, ok := sig.Protected.ExtraHeaders["crit"]; ok {
		return nil, invalid("the DPoP proof has crit header parameters, which are not understood here")
	}
	jwk := sig.Protected.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, invalid("the DPoP proof's jwk is not a public key")
	}
	if k, ok := jwk.Key.(*rsa.PublicKey); ok && k.N.BitLen() < minRSABits {
		return nil, invalid("the DPoP proof's RSA key has %d bits, fewer than %d", k.N.BitLen(), minRSABits)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, invalid("the DPoP proof's signature does not verify with the key in its jwk")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("the DPoP proof's claims are not a JSON object of the expected types")
	}
	// Another reader of the proof (a resource server, a log) must see the htm, htu and jti
	// checked here: not the first of two, or an "HTM" encoding/json took for htm.
	if err := jsonkeys.Check(payload, &c); err != nil {
		return nil, invalid("the DPoP proof's claims: %s", err)
	}
	switch {
	case c.JTI == nil || *c.JTI == "":
		return nil, invalid("the DPoP proof has no jti")
	case len(*c.JTI) > maxJTI:
		return nil, invalid("the DPoP proof's jti is longer than %d bytes", maxJTI)
	case c.HTM == nil || *c.HTM == "":
		return nil, invalid("the DPoP proof has no htm")
	case c.HTU == nil || *c.HTU == "":
		return nil, invalid("the DPoP proof has no htu")
	case c.IAT == nil:
		return nil, invalid("the DPoP proof has no iat")
	}
	iat, err := c.IAT.Float64()
	if err != nil || iat <= 0 || iat > 1e11 {
		return nil, invalid("the DPoP proof's iat is not a time in seconds")
	}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("the DPoP proof's jwk has no thumbprint")
	}
	p := &Proof{
		JKT: base64.RawURLEncoding.EncodeToString(thumb), ID: *c.JTI, Method: *c.HTM, URL: *c.HTU,
		IssuedAt: time.Unix(int64(iat), 0).UTC(),
	}
	if c.Nonce != nil {
		p.Nonce = *c.Nonce
	}
	if c.ATH != nil {
		p.ATH = *c.ATH
	}
	return p, nil
}

// AccessTokenHash is the ath of an access token (§4.2): base64url SHA-256 of its ASCII.
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url, as cnf.jkt
// carries it (§6.1).
func Thumbprint(key crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: key}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// SameURL compares a proof's htu with the URL the request was sent to as RFC 9449 §4.3
// says: without query and fragment, after syntax- and scheme-based normalisation (RFC 3986
// §6.2.2, §6.2.3: case of scheme and host, default ports, an empty path as "/").
func SameURL(htu, want string) bool {
	a, ok := normalURL(htu)
	if !ok {
		return false
	}
	b, ok := normalURL(want)
	return ok && a == b
}

func normalURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// notCompactJWS reports a rune that cannot appear in a compact JWS.
func notCompactJWS(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
}

// quote renders a value from a proof for a description: quoted and cut short.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// IsError reports whether err is a refused proof.
func IsError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
