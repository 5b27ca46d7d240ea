package token

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify: whatever the input, Verify returns a refusal (*Error) or a token that holds,
// and never panics. The realm's keys are testdata/realm-keys.json and the clock stands at
// t0, so the seeds in testdata/fuzz/FuzzVerify that are valid tokens stay valid and the
// fuzzer mutates real signatures, not only garbage.
func FuzzVerify(f *testing.F) {
	store := newFakeStore()
	loadKeysFixture(f, store, fuzzRealm)
	keys, svc := newService(f, store, newClock(), ES256, 0)
	all := []Type{Bearer, Refresh, Offline}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := svc.Verify(context.Background(), fuzzRealm, raw, all...)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || te.Description == "" || tok != nil {
				t.Fatalf("Verify = %v, %v (%T); want nil and an *Error with a description", tok, err, err)
			}
			return
		}
		set, _ := keys.verifying(context.Background(), fuzzRealm, tok.KeyID)
		k := set.byID[tok.KeyID]
		switch {
		case tok.Raw != raw || len(raw) > MaxSize:
			t.Fatalf("accepted %d bytes, returned Raw %q", len(raw), tok.Raw)
		case tok.Issuer != svc.Issuer(fuzzRealm) || !slices.Contains(all, tok.Type):
			t.Fatalf("accepted iss %q typ %q", tok.Issuer, tok.Type)
		case !t0.Before(tok.Expiry):
			t.Fatalf("accepted a token that expired at %s", tok.Expiry)
		case k == nil || !k.usable(t0):
			t.Fatalf("accepted a token of key %q, which does not verify", tok.KeyID)
		}
	})
}

const fuzzRealm = "acme"

// The seeds and what Verify must answer for each. Run `go test -run TestFixtures -update`
// to regenerate the keys and the seeds together (signatures are randomised, so the files
// change each time).
var seeds = []struct {
	name string
	want error // nil: a valid token
}{
	{"valid-access", nil},
	{"valid-refresh", nil},
	{"valid-offline", nil},
	{"valid-retired-rs256", nil},
	{"refused-key-past-retirement", ErrUnknownKey},
	{"refused-legacy-access", ErrWrongType},
	{"refused-refresh-typ-on-published-key", ErrWrongType},
	{"refused-hs512-public-key", ErrAlgorithm},
	{"refused-alg-none", ErrAlgorithm},
	{"refused-hs256-public-key", ErrAlgorithm},
	{"refused-wrong-issuer", ErrWrongRealm},
	{"refused-expired", ErrExpired},
	{"refused-forged-signature", ErrSignature},
	{"refused-truncated", ErrMalformed},
	{"refused-garbage", ErrMalformed},
	{"refused-json-serialization", ErrMalformed},
	{"refused-oversized", ErrMalformed},
}

func TestFixtures(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if *update {
		writeFixtures(t, dir)
	}
	store := newFakeStore()
	loadKeysFixture(t, store, fuzzRealm)
	_, svc := newService(t, store, newClock(), ES256, 0)
	for _, s := range seeds {
		t.Run(s.name, func(t *testing.T) {
			raw := readSeed(t, filepath.Join(dir, s.name))
			_, err := svc.Verify(context.Background(), fuzzRealm, raw, Bearer, Refresh, Offline)
			if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
				t.Errorf("Verify: err = %v, want %v", err, s.want)
			}
		})
	}
}

// writeFixtures makes testdata/realm-keys.json (an active ES256 key, an RS256 key retired
// but still verifying at t0, an ES256 key retired before t0, a realm secret) and the seeds.
func writeFixtures(t *testing.T, dir string) {
	var sk storedKeys
	for _, k := range []struct {
		alg              Algorithm
		created, retired time.Duration // before/after t0
	}{{ES256, -28 * 24 * time.Hour, 0}, {RS256, -270 * 24 * time.Hour, 90 * 24 * time.Hour}, {ES256, -400 * 24 * time.Hour, -60 * 24 * time.Hour}} {
		s, err := generate(k.alg, t0.Add(k.created))
		if err != nil {
			t.Fatal(err)
		}
		if k.retired != 0 {
			s.VerifyUntil = t0.Add(k.retired)
		}
		sk.Keys = append(sk.Keys, s)
	}
	secret, err := generate(HS512, t0.Add(-28*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sk.Secrets = append(sk.Secrets, secret)
	b, err := json.MarshalIndent(sk, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "realm-keys.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	store := newFakeStore()
	store.put(t, fuzzRealm, sk)
	_, svc := newService(t, store, newClock(), ES256, 0)
	issue := func(typ Type, expiry time.Time) string {
		c := claims(typ, t0.Add(-time.Hour))
		c.Expiry = expiry
		tok, err := svc.Issue(context.Background(), fuzzRealm, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Raw
	}
	years := t0.AddDate(5, 0, 0)
	access := issue(Bearer, years)
	w := wireOf(t, access)
	signWith := func(i int, w wire) string {
		return signRaw(t, jose.SignatureAlgorithm(sk.Keys[i].Algorithm), mustParse(t, sk.Keys[i].PKCS8), sk.Keys[i].ID, payloadOf(t, w))
	}
	wrongIssuer := w
	wrongIssuer.Iss = issuerBase + "/realms/other"
	public, err := x509.MarshalPKIXPublicKey(mustParse(t, sk.Keys[0].PKCS8).Public())
	if err != nil {
		t.Fatal(err)
	}
	sig := strings.LastIndexByte(access, '.') + 10
	none, _ := json.Marshal(map[string]string{"alg": "none", "kid": sk.Keys[0].ID, "typ": "JWT"})
	refreshOnPublic := w
	refreshOnPublic.Typ = Refresh
	values := map[string]string{
		"refused-legacy-access":                signTyped(t, jose.ES256, mustParse(t, sk.Keys[0].PKCS8), sk.Keys[0].ID, typJWT, payloadOf(t, w)),
		"refused-refresh-typ-on-published-key": signTyped(t, jose.ES256, mustParse(t, sk.Keys[0].PKCS8), sk.Keys[0].ID, typJWT, payloadOf(t, refreshOnPublic)),
		"refused-hs512-public-key":             signTyped(t, jose.HS512, public, sk.Keys[0].ID, typJWT, payloadOf(t, refreshOnPublic)),
		"valid-access":                         access,
		"valid-refresh":                        issue(Refresh, years),
		"valid-offline":                        issue(Offline, years),
		"valid-retired-rs256":                  signWith(1, w),
		"refused-key-past-retirement":          signWith(2, w),
		"refused-alg-none":                     base64.RawURLEncoding.EncodeToString(none) + "." + strings.Split(access, ".")[1] + ".",
		"refused-hs256-public-key":             signRaw(t, jose.HS256, public, sk.Keys[0].ID, payloadOf(t, w)),
		"refused-wrong-issuer":                 signWith(0, wrongIssuer),
		"refused-expired":                      issue(Bearer, t0),
		"refused-forged-signature":             access[:sig] + flip(access[sig]) + access[sig+1:],
		"refused-truncated":                    access[:len(access)/2],
		"refused-garbage":                      "eyJhbGciOiJFUzI1NiJ9.not base64!.@@",
		"refused-json-serialization":           `{"payload":"e30","protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AAAA"}`,
		"refused-oversized":                    access + strings.Repeat("A", MaxSize),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range seeds {
		content := "go test fuzz v1\nstring(" + strconv.Quote(values[s.name]) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustParse(t *testing.T, der []byte) crypto.Signer {
	t.Helper()
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return priv.(crypto.Signer)
}

// readSeed reads a corpus file of the form `go test fuzz v1` + one string(...) line.
func readSeed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, value, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if !ok || header != "go test fuzz v1" || !strings.HasPrefix(value, "string(") || !strings.HasSuffix(value, ")") {
		t.Fatalf("%s: not a one-string fuzz corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(value, "string("), ")"))
	if err != nil {
		t.Fatalf("%s: string literal: %v", path, err)
	}
	return s
}
