package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

func TestKeysSurviveRestart(t *testing.T) {
	f := newFixture(t, ES256, 0)
	issued := f.issue(t, "acme", claims(Bearer, t0))
	refresh := f.issue(t, "acme", claims(Refresh, t0))

	sk := f.store.storedOf(t, "acme")
	if len(sk.Keys) != 1 || len(sk.Secrets) != 1 {
		t.Fatalf("stored %d keys and %d secrets, want 1 and 1", len(sk.Keys), len(sk.Secrets))
	}
	if s := sk.Secrets[0]; s.Algorithm != HS512 || len(s.Secret) != 64 || s.ID != refresh.KeyID || s.PKCS8 != nil {
		t.Errorf("stored secret %s kid %q of %d bytes; refresh token signed with kid %q", s.Algorithm, s.ID, len(s.Secret), refresh.KeyID)
	}
	stored := sk.Keys[0]
	priv, err := x509.ParsePKCS8PrivateKey(stored.PKCS8)
	if err != nil {
		t.Fatalf("stored key is not PKCS #8: %v", err)
	}
	if _, ok := priv.(*ecdsa.PrivateKey); !ok || stored.Algorithm != ES256 || stored.ID != issued.KeyID || !stored.Created.Equal(t0) {
		t.Errorf("stored key %T %s kid %q created %s; issued with kid %q", priv, stored.Algorithm, stored.ID, stored.Created, issued.KeyID)
	}

	// A new process on the same store: same key, old tokens still verify.
	keys, svc := newService(t, f.store, f.clock, ES256, 0)
	if _, err := svc.Verify(context.Background(), "acme", refresh.Raw, Refresh); err != nil {
		t.Fatalf("verify after restart: %v", err)
	}
	again, err := svc.Issue(context.Background(), "acme", claims(Bearer, t0))
	if err != nil || again.KeyID != issued.KeyID {
		t.Fatalf("issue after restart: kid %v, err %v; want kid %q", again, err, issued.KeyID)
	}
	if set := jwksOf(t, keys, "acme"); len(set.Keys) != 1 || set.Keys[0].KeyID != issued.KeyID {
		t.Errorf("JWKS after restart = %+v", set)
	}
}

// Two nodes creating a realm's first key at once end with one key: the loser of the
// optimistic write re-reads and uses the winner's.
func TestConcurrentFirstKeyMakesOneKey(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) Store{
		"fake":   func(*testing.T) Store { return newFakeStore() },
		"memory": func(t *testing.T) Store { return openMemory(t) },
	} {
		t.Run(name, func(t *testing.T) {
			store := newRacingStore(open(t))
			c := newClock()
			var kids [2][]string
			var wg sync.WaitGroup
			for node := range 2 {
				_, svc := newService(t, store, c, ES256, 0)
				kids[node] = make([]string, 4)
				for i := range 4 {
					wg.Go(func() {
						tok, err := svc.Issue(context.Background(), "acme", claims(Bearer, t0))
						if err != nil {
							t.Errorf("node %d: %v", node, err)
							return
						}
						kids[node][i] = tok.KeyID
					})
				}
			}
			wg.Wait()
			for node := range 2 {
				for _, kid := range kids[node] {
					if kid != kids[0][0] {
						t.Errorf("kids %v: the nodes sign with different keys", kids)
					}
				}
			}
			recs, err := store.GetRecords(context.Background(), RecordKind, []string{"acme"})
			if err != nil || recs[0] == nil {
				t.Fatalf("record: %v, %v", recs, err)
			}
			var sk storedKeys
			if err := json.Unmarshal(recs[0].Value, &sk); err != nil || len(sk.Keys) != 1 || recs[0].Version != 1 {
				t.Errorf("stored %d keys at version %d (%v); want one key, written once", len(sk.Keys), recs[0].Version, err)
			}
			if n := store.puts.Load(); n != 2 {
				t.Errorf("%d writes; want 2 (both nodes tried, one lost)", n)
			}
		})
	}
}

func TestStoredKeysFixture(t *testing.T) {
	store := newFakeStore()
	fixture := loadKeysFixture(t, store, "acme")
	keys, svc := newService(t, store, newClock(), ES256, 0)

	set := jwksOf(t, keys, "acme")
	var got []string
	for _, k := range set.Keys {
		got = append(got, k.KeyID+" "+k.Algorithm)
		if !k.IsPublic() || k.Use != "sig" {
			t.Errorf("JWKS key %s: public %v, use %q", k.KeyID, k.IsPublic(), k.Use)
		}
	}
	want := []string{fixture.Keys[0].ID + " ES256", fixture.Keys[1].ID + " RS256"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("JWKS keys %v, want %v (the active key, then the retired one still verifying)", got, want)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`} {
		if strings.Contains(string(b), private) {
			t.Errorf("JWKS leaks a private parameter %s: %s", private, b)
		}
	}

	// Tokens of the active and the retired key verify; the key past its retirement does not.
	for i, want := range []error{nil, nil, ErrUnknownKey} {
		priv, err := x509.ParsePKCS8PrivateKey(fixture.Keys[i].PKCS8)
		if err != nil {
			t.Fatal(err)
		}
		w := wire{Exp: t0.Add(time.Minute).Unix(), Iat: t0.Unix(), Iss: svc.Issuer("acme"), Typ: Bearer, Sub: "u", Azp: "app"}
		raw := signRaw(t, jose.SignatureAlgorithm(fixture.Keys[i].Algorithm), priv, fixture.Keys[i].ID, payloadOf(t, w))
		_, err = svc.Verify(context.Background(), "acme", raw, Bearer)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("token of fixture key %d: err %v, want %v", i, err, want)
		}
		if want != nil && !strings.Contains(err.Error(), "retired from realm") {
			t.Errorf("description %q should say the key was retired", err)
		}
	}
	tok, err := svc.Issue(context.Background(), "acme", claims(Bearer, t0))
	if err != nil || tok.KeyID != fixture.Keys[0].ID {
		t.Errorf("issue with stored keys: %v, %v; want the active key %s", tok, err, fixture.Keys[0].ID)
	}
}

// A node finds a key another node added as soon as a token names it, but re-reads the store
// for unknown kids at most once per minReload.
func TestPicksUpAnotherNodesKey(t *testing.T) {
	f := newFixture(t, ES256, 0)
	old := f.issue(t, "acme", claims(Bearer, t0))

	next := f.rotateElsewhere(t, "acme")
	priv, _ := x509.ParsePKCS8PrivateKey(next.PKCS8)
	raw := signRaw(t, jose.ES256, priv, next.ID, payloadOf(t, wireOf(t, old.Raw)))

	if _, err := f.svc.Verify(context.Background(), "acme", raw, Bearer); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("verify within minReload of the last read: %v, want ErrUnknownKey (no re-read yet)", err)
	}
	f.clock.Advance(minReload)
	if _, err := f.svc.Verify(context.Background(), "acme", raw, Bearer); err != nil {
		t.Fatalf("verify after minReload: %v", err)
	}
	if _, err := f.svc.Verify(context.Background(), "acme", old.Raw, Bearer); err != nil {
		t.Errorf("token of the retired key: %v", err)
	}
}

// rotateElsewhere does what another node rotating the realm's key would: a new active key
// in the store, the current one retired for an hour. This node is not told.
func (f *fixture) rotateElsewhere(t *testing.T, realm string) stored {
	t.Helper()
	sk := f.store.storedOf(t, realm)
	sk.Keys[0].VerifyUntil = f.clock.Now().Add(time.Hour)
	next, err := generate(ES256, f.clock.Now().Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	f.store.put(t, realm, storedKeys{Keys: append([]stored{next}, sk.Keys...)})
	return next
}

func TestReloadAfterInterval(t *testing.T) {
	f := newFixture(t, ES256, 0)
	first := f.issue(t, "acme", claims(Bearer, t0))
	next := f.rotateElsewhere(t, "acme")

	f.clock.Advance(defaultReload - time.Second)
	if tok := f.issue(t, "acme", claims(Bearer, f.clock.Now())); tok.KeyID != first.KeyID {
		t.Errorf("before Reload signed with %s, want the cached %s", tok.KeyID, first.KeyID)
	}
	f.clock.Advance(time.Second)
	if tok := f.issue(t, "acme", claims(Bearer, f.clock.Now())); tok.KeyID != next.ID {
		t.Errorf("after Reload signed with %s, want the new %s", tok.KeyID, next.ID)
	}
}

func TestRS256Keys(t *testing.T) {
	f := newFixture(t, RS256, 0)
	set := jwksOf(t, f.keys, "acme")
	if len(set.Keys) != 1 || set.Keys[0].Algorithm != "RS256" {
		t.Fatalf("JWKS %+v, want one RS256 key", set)
	}
	pub, ok := set.Keys[0].Key.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != rsaBits {
		t.Errorf("key %T, want a %d-bit RSA key", set.Keys[0].Key, rsaBits)
	}
	// The option picks the algorithm of new keys only: an existing ES256 realm keeps its key.
	es := newFixture(t, ES256, 0)
	kid := es.issue(t, "acme", claims(Bearer, t0)).KeyID
	_, svc := newService(t, es.store, es.clock, RS256, 0)
	tok, err := svc.Issue(context.Background(), "acme", claims(Bearer, t0))
	if err != nil || tok.KeyID != kid {
		t.Errorf("RS256 manager on an ES256 realm: %v, %v; want kid %s", tok, err, kid)
	}
}

func TestNewKeyManagerRefusesAlgorithm(t *testing.T) {
	for _, alg := range []Algorithm{"HS256", "none", "PS256"} {
		if _, err := NewKeyManager(newFakeStore(), KeyOptions{Algorithm: alg}); !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("%s: err = %v, want spi.ErrInvalid", alg, err)
		}
	}
}

func TestCorruptKeysRecord(t *testing.T) {
	es, err := generate(ES256, t0)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := generate(RS256, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(*stored){
		"not PKCS #8":         func(s *stored) { s.PKCS8 = []byte("junk") },
		"kid not the key's":   func(s *stored) { s.ID = "forged" },
		"EC key marked RS256": func(s *stored) { s.Algorithm = RS256 },
		"RSA key marked ES256": func(s *stored) {
			*s = rs
			s.Algorithm = ES256
		},
	}
	for name, corrupt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, ES256, 0)
			s := es
			corrupt(&s)
			f.store.put(t, "acme", storedKeys{Keys: []stored{s}})
			_, err := f.svc.Issue(context.Background(), "acme", claims(Bearer, t0))
			if err == nil || !strings.Contains(err.Error(), `keys of realm "acme"`) {
				t.Errorf("issue: err = %v, want a corrupt-record error", err)
			}
			// A token that parses gets as far as the keys: the failure is the store's, not a
			// refusal of the token.
			priv, _ := x509.ParsePKCS8PrivateKey(es.PKCS8)
			raw := signRaw(t, jose.ES256, priv, es.ID, payloadOf(t, wire{Exp: t0.Add(time.Minute).Unix(), Typ: Bearer}))
			var te *Error
			if _, err := f.svc.Verify(context.Background(), "acme", raw, Bearer); err == nil || errors.As(err, &te) {
				t.Errorf("verify: err = %v, want the corrupt-record error", err)
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		f := newFixture(t, ES256, 0)
		f.store.records[RecordKind+"/acme"] = usersessions.Record{Kind: RecordKind, Key: "acme", Value: []byte("{"), Version: 1}
		if _, err := f.keys.JWKS(context.Background(), "acme"); err == nil || !strings.Contains(err.Error(), "record is not valid") {
			t.Errorf("JWKS: err = %v", err)
		}
	})
}

// The real in-memory provider is a Store, and keys survive a "restart" of sessiond over it.
func TestMemoryProviderAsStore(t *testing.T) {
	p := openMemory(t)
	c := newClock()
	_, svc := newService(t, p, c, ES256, 0)
	tok, err := svc.Issue(context.Background(), "acme", claims(Offline, t0))
	if err != nil {
		t.Fatal(err)
	}
	_, restarted := newService(t, p, c, ES256, 0)
	if _, err := restarted.Verify(context.Background(), "acme", tok.Raw, Offline); err != nil {
		t.Fatalf("verify after restart: %v", err)
	}
	recs, err := p.ListRecords(context.Background(), RecordKind)
	if err != nil || len(recs) != 1 || recs[0].Key != "acme" {
		t.Fatalf("records %v, %v", recs, err)
	}
}

func openMemory(t *testing.T) *memory.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func jwksOf(t *testing.T, keys *KeyManager, realm string) jose.JSONWebKeySet {
	t.Helper()
	set, err := keys.JWKS(context.Background(), realm)
	if err != nil {
		t.Fatal(err)
	}
	return set
}
