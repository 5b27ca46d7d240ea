package dpop_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/core/dpop"
)

// FuzzParse: no proof, however malformed, panics the parser or the checker, and every
// refusal is a *dpop.Error (an invalid_dpop_proof answer, never a 500).
func FuzzParse(f *testing.F) {
	s := newSigner(f, jose.ES256)
	now := time.Unix(rfcIAT, 0)
	f.Add(rfcProof)
	f.Add(s.sign(f, goodClaims(tokenURL, now), nil))
	f.Add(s.sign(f, goodClaims(tokenURL, now), func(h map[string]any) { h["jwk"] = map[string]any{"kty": "EC", "crv": "P-256"} }))
	f.Add(s.sign(f, map[string]any{"jti": 1, "iat": "x"}, nil))
	f.Add(hmacProof(goodClaims(tokenURL, now)))
	f.Add("e30.e30.")
	f.Add("..")
	store := memoryStore(f, "fuzz")
	c := dpop.New(store, dpop.Options{Now: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := dpop.Parse(raw); err != nil && !dpop.IsError(err) {
			t.Fatalf("Parse: not a refusal: %v", err)
		}
		_, err := c.Check(context.Background(), raw, dpop.Request{Realm: "acme", Method: "POST", URL: tokenURL, AccessToken: "t", NonceRequired: true})
		if err != nil && !dpop.IsError(err) {
			t.Fatalf("Check: not a refusal: %v", err)
		}
	})
}
