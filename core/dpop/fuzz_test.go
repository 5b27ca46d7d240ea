package dpop_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/dpop"
)

// FuzzParse: no proof, however malformed, panics the parser or the checker, and every
// refusal is a *dpop.Error (an invalid_dpop_proof answer, never a 500). The seeds are
// fixed (the fuzzing engine's workers must see the coordinator's corpus): the RFC's proof,
// and its header and claims rewritten one way or another under its signature.
func FuzzParse(f *testing.F) {
	parts := strings.Split(rfcProof, ".")
	header := func(h string) string { return b64.EncodeToString([]byte(h)) + "." + parts[1] + "." + parts[2] }
	claims := func(c map[string]any) string {
		raw, _ := json.Marshal(c)
		return parts[0] + "." + b64.EncodeToString(raw) + "." + parts[2]
	}
	jwk := `{"kty":"EC","x":"` + rfcX + `","y":"` + rfcY + `","crv":"P-256"}`
	f.Add(rfcProof)
	f.Add(header(`{"typ":"dpop+jwt","alg":"ES256","jwk":` + jwk + `,"crit":["x"]}`))
	f.Add(header(`{"typ":"dpop+jwt","alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`))
	f.Add(header(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"}}`))
	f.Add(header(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","d":"AAAA"}}`))
	f.Add(claims(map[string]any{"jti": 1, "htm": "POST", "htu": rfcHTU, "iat": "x"}))
	f.Add(claims(map[string]any{"jti": "a", "htm": "POST", "htu": rfcHTU, "iat": 1e300, "ath": "x", "nonce": "y"}))
	f.Add(hmacProof(map[string]any{"jti": "a", "htm": "POST", "htu": rfcHTU, "iat": rfcIAT}))
	f.Add("e30.e30.")
	f.Add("..")
	now := time.Unix(rfcIAT, 0)
	c := dpop.New(memoryStore(f, "fuzz"), dpop.Options{Now: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := dpop.Parse(raw); err != nil && !dpop.IsError(err) {
			t.Fatalf("Parse: not a refusal: %v", err)
		}
		for _, req := range []dpop.Request{
			{Realm: "acme", Method: "POST", URL: rfcHTU},
			{Realm: "acme", Method: "POST", URL: rfcHTU, AccessToken: "t", NonceRequired: true},
		} {
			if _, err := c.Check(context.Background(), raw, req); err != nil && !dpop.IsError(err) {
				t.Fatalf("Check: not a refusal: %v", err)
			}
		}
	})
}
