package token

import (
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// The compact signer writes what a go-jose Signer writes for the same key, header type and
// payload: byte for byte where the signature is deterministic (HS512, RS256); for ES256,
// whose signatures are randomized, the same header and payload, and a signature go-jose
// verifies.
func TestCompactSignerIsGoJose(t *testing.T) {
	payloads := []string{`{}`, `{"exp":1772352000,"sub":"u","aud":["a","b"],"scope":"openid é <>&"}`, `{"long":"` + strings.Repeat("x", 1000) + `"}`}
	for _, alg := range []Algorithm{HS512, ES256, RS256} {
		t.Run(string(alg), func(t *testing.T) {
			sk, err := generate(alg, t0)
			if err != nil {
				t.Fatal(err)
			}
			k, err := parseKey(sk)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.makeSigners(); err != nil {
				t.Fatal(err)
			}
			jk := jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: k.private, KeyID: k.id}}
			if k.secret != nil {
				jk.Key = k.secret
			}
			for typ, s := range k.signers {
				opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
				if k.secret != nil {
					opts = opts.WithHeader(jose.HeaderKey("kid"), k.id)
				}
				js, err := jose.NewSigner(jk, opts)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range payloads {
					got, err := s.sign([]byte(p))
					if err != nil {
						t.Fatal(err)
					}
					jws, err := js.Sign([]byte(p))
					if err != nil {
						t.Fatal(err)
					}
					want, err := jws.CompactSerialize()
					if err != nil {
						t.Fatal(err)
					}
					if alg != ES256 && got != want {
						t.Errorf("%s: signed\n%s\ngo-jose signs\n%s", typ, got, want)
					}
					if i, j := strings.LastIndexByte(got, '.'), strings.LastIndexByte(want, '.'); got[:i] != want[:j] || len(got)-i != len(want)-j {
						t.Errorf("%s: signed\n%s\ngo-jose signs\n%s", typ, got, want)
					}
					parsed, err := jose.ParseSignedCompact(got, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
					if err != nil {
						t.Fatal(err)
					}
					if out, err := parsed.Verify(k.verifies()); err != nil || string(out) != p {
						t.Errorf("%s: go-jose verifies %q, %v; want %q", typ, out, err, p)
					}
				}
			}
		})
	}
}
