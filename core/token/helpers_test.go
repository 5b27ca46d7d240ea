package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

var update = flag.Bool("update", false, "rewrite testdata/realm-keys.json and the FuzzVerify seed corpus")

// t0 is the fixed "now" of the tests and of the testdata fixtures.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a controllable time source.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(t0) }

// fakeStore is a map-backed Store with the record semantics of the user-sessions contract.
type fakeStore struct {
	mu      sync.Mutex
	records map[string]usersessions.Record // by kind + "/" + key
	fail    error                          // returned by every call when set
	gets    int
}

func newFakeStore() *fakeStore { return &fakeStore{records: map[string]usersessions.Record{}} }

func (f *fakeStore) GetRecords(_ context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	f.mu.Lock()
	f.gets++
	if f.fail != nil {
		f.mu.Unlock()
		return nil, f.fail
	}
	out := make([]*usersessions.Record, len(keys))
	for i, k := range keys {
		if r, ok := f.records[kind+"/"+k]; ok {
			r.Value = slices.Clone(r.Value)
			out[i] = &r
		}
	}
	f.mu.Unlock()
	return out, nil
}

func (f *fakeStore) PutRecord(_ context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	cur := f.records[r.Kind+"/"+r.Key]
	if cur.Version != r.Version {
		return nil, fmt.Errorf("stored version %d, given %d: %w", cur.Version, r.Version, spi.ErrConflict)
	}
	next := *r
	next.Value = slices.Clone(r.Value)
	next.Version = cur.Version + 1
	f.records[r.Kind+"/"+r.Key] = next
	out := next
	return &out, nil
}

// racingStore makes the first two PutRecord calls wait for each other, so two nodes that
// both found no key are sure to both try to write one.
type racingStore struct {
	Store
	arrived sync.WaitGroup
	puts    atomic.Int32
}

func newRacingStore(s Store) *racingStore {
	r := &racingStore{Store: s}
	r.arrived.Add(2)
	return r
}

func (r *racingStore) PutRecord(ctx context.Context, rec *usersessions.Record) (*usersessions.Record, error) {
	if r.puts.Add(1) <= 2 {
		r.arrived.Done()
		r.arrived.Wait()
	}
	return r.Store.PutRecord(ctx, rec)
}

func (f *fakeStore) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// storedOf returns the decoded keys record of a realm.
func (f *fakeStore) storedOf(t *testing.T, realm string) storedKeys {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var sk storedKeys
	if err := json.Unmarshal(f.records[RecordKind+"/"+realm].Value, &sk); err != nil {
		t.Fatalf("keys record of %q: %v", realm, err)
	}
	return sk
}

// put writes a keys record directly, as another node or an older version would have.
func (f *fakeStore) put(t testing.TB, realm string, sk storedKeys) {
	t.Helper()
	value, err := json.Marshal(sk)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.records[RecordKind+"/"+realm]
	f.records[RecordKind+"/"+realm] = usersessions.Record{Kind: RecordKind, Key: realm, Value: value, Version: cur.Version + 1}
}

const issuerBase = "https://sso.example.test"

// fixture is a Service over a store, with a clock the test controls.
type fixture struct {
	store *fakeStore
	clock *clock
	keys  *KeyManager
	svc   *Service
}

func newFixture(t testing.TB, alg Algorithm, leeway time.Duration) *fixture {
	t.Helper()
	f := &fixture{store: newFakeStore(), clock: newClock()}
	f.keys, f.svc = newService(t, f.store, f.clock, alg, leeway)
	return f
}

func newService(t testing.TB, store Store, c *clock, alg Algorithm, leeway time.Duration) (*KeyManager, *Service) {
	t.Helper()
	keys, err := NewKeyManager(store, KeyOptions{Algorithm: alg, Now: c.Now, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return keys, New(keys, Options{IssuerBase: issuerBase, Leeway: leeway, Now: c.Now})
}

// signRaw signs payload as a compact JWS with any key, with the header type of an access
// token, for forging tokens.
func signRaw(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, payload []byte) string {
	t.Helper()
	return signTyped(t, alg, key, kid, typAccess, payload)
}

// signTyped is signRaw with the JWS header type typ.
func signTyped(t testing.TB, alg jose.SignatureAlgorithm, key any, kid, typ string, payload []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if _, symmetric := key.([]byte); symmetric { // go-jose writes a JSONWebKey's kid only for keys with a public part
		key, opts = key.([]byte), opts.WithHeader("kid", kid)
	} else {
		key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// payloadOf returns the JSON claims of w.
func payloadOf(t testing.TB, w wire) []byte {
	t.Helper()
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireOf returns the claims of a token as encoded, for building variants of it.
func wireOf(t testing.TB, raw string) wire {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// claims returns claims of a token of type typ issued at now for five minutes.
func claims(typ Type, now time.Time) Claims {
	c := Claims{
		Type: typ, Subject: "user-1", Audience: []string{"account"}, ClientID: "app",
		SessionID: "session-1", Scope: "openid profile", IssuedAt: now, Expiry: now.Add(5 * time.Minute),
	}
	if typ == Bearer {
		c.Username = "alice"
	}
	return c
}

func (f *fixture) issue(t testing.TB, realm string, c Claims) *Token {
	t.Helper()
	tok, err := f.svc.Issue(context.Background(), realm, c)
	if err != nil {
		t.Fatalf("issue %s in %q: %v", c.Type, realm, err)
	}
	return tok
}

// loadKeysFixture writes testdata/realm-keys.json into store as realm's keys.
func loadKeysFixture(t testing.TB, store *fakeStore, realm string) storedKeys {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "realm-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sk storedKeys
	if err := json.Unmarshal(b, &sk); err != nil {
		t.Fatal(err)
	}
	store.put(t, realm, sk)
	return sk
}

// legacy returns a token with claims c in the format sessiond issued before at+jwt and
// realm secrets: signed with the realm's published key, header typ JWT, whatever its type.
func (f *fixture) legacy(t testing.TB, realm string, c Claims) string {
	t.Helper()
	k := f.activeOf(t, realm, asymmetric)
	w := wire{
		Exp: c.Expiry.Unix(), Iat: c.IssuedAt.Unix(), Jti: "legacy-" + string(c.Type), Iss: f.svc.Issuer(realm),
		Aud: audience(c.Audience), Sub: c.Subject, Typ: c.Type, Azp: c.ClientID, Sid: c.SessionID, Scope: c.Scope,
	}
	return signTyped(t, jose.SignatureAlgorithm(k.alg), k.private, k.id, typJWT, payloadOf(t, w))
}
