package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The proof of RFC 9449 Figure 2 (section 4.2) and the thumbprint the RFC gives for its key
// (the jkt of Figure 9, section 6.1): a wire-format vector written by others.
const (
	rfcProof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	rfcJKT   = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	rfcX     = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"
	rfcY     = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
	rfcHTU   = "https://server.example.com/token"
	rfcIAT   = 1562262616
)

var b64 = base64.RawURLEncoding

// memoryStore is a memory provider as the runtime configures it, as node.
func memoryStore(t testing.TB, node string) usersessions.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{spi.HostNodeID: node}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// signer makes proofs with one private key, the way a client does.
type signer struct {
	alg  jose.SignatureAlgorithm
	key  crypto.Signer
	jwk  map[string]any // the public JWK as the header carries it
	jkt  string
	hash crypto.Hash
}

func newSigner(t testing.TB, alg jose.SignatureAlgorithm) *signer {
	t.Helper()
	s := &signer{alg: alg, hash: crypto.SHA256}
	var err error
	switch alg {
	case jose.ES256:
		s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		s.key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		s.hash = crypto.SHA384
	case jose.RS256, jose.PS256:
		s.key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, s.key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: s.key.Public()}
	raw, err := pub.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &s.jwk); err != nil {
		t.Fatal(err)
	}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	s.jkt = b64.EncodeToString(sum)
	return s
}

// claims of a good proof of a POST to htu at now, a fresh jti.
func goodClaims(htu string, now time.Time) map[string]any {
	return map[string]any{"jti": rand.Text(), "htm": "POST", "htu": htu, "iat": now.Unix()}
}

// sign makes a proof: the header {typ, alg, jwk} changed by edit (nil: none), the claims
// as given, signed with the signer's key as alg says.
func (s *signer) sign(t testing.TB, claims map[string]any, edit func(h map[string]any)) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": string(s.alg), "jwk": maps.Clone(s.jwk)}
	if edit != nil {
		edit(h)
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	return input + "." + b64.EncodeToString(s.signature(t, input))
}

func (s *signer) signature(t testing.TB, input string) []byte {
	t.Helper()
	if s.alg == jose.EdDSA {
		return ed25519.Sign(s.key.(ed25519.PrivateKey), []byte(input))
	}
	h := s.hash.New()
	h.Write([]byte(input))
	digest := h.Sum(nil)
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		ss.FillBytes(out[size:])
		return out
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if s.alg == jose.PS256 {
			sig, err = rsa.SignPSS(rand.Reader, k, s.hash, digest, nil)
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, s.hash, digest)
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	t.Fatalf("no signature for %T", s.key)
	return nil
}

// hmacProof is a proof "signed" with a shared secret: HS256, which proves no possession.
func hmacProof(claims map[string]any) string {
	hb, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64.EncodeToString([]byte("secret"))}})
	cb, _ := json.Marshal(claims)
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	m := hmac.New(sha256.New, []byte("secret"))
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
