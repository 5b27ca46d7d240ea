package push

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/providers/builtin"
	"github.com/sessiond/sessiond/providers/revocation/adapter"
	"github.com/sessiond/sessiond/providers/revocation/webhook"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// pluginEnv makes the test binary serve the built-in revocation-push provider it names, as
// `sessiond plugin serve revocation-push <id>` does.
const pluginEnv = "SESSIOND_PUSH_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if id := os.Getenv(pluginEnv); id != "" {
		f, ok := builtin.Lookup(spi.RevocationPush, id)
		if !ok {
			fmt.Fprintf(os.Stderr, "no built-in revocation-push provider %q\n", id)
			os.Exit(2)
		}
		sdk.Serve(f.New(sdk.Logger(id)))
	}
	os.Exit(m.Run())
}

// t0 is where the tests' clock starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const issuerBase = "https://sso.example.test"

// db opens the test database; an unreachable server fails the test, which must never pass
// by not running.
func db(t *testing.T) *sql.DB {
	t.Helper()
	d, err := sql.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (run .ci/services, or set SESSIOND_TEST_POSTGRES_URL): %v", testpg.URL(), err)
	}
	return d
}

// freshSchema creates an empty schema, dropped when t ends, and returns a database URL
// whose search_path is it.
func freshSchema(t *testing.T) string {
	t.Helper()
	d := db(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "push_" + hex.EncodeToString(b)
	if _, err := d.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := d.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openStore opens the postgres provider on dbURL; it is closed when t ends (or earlier by
// the test, to play a restart).
func openStore(t *testing.T, dbURL string) *postgres.Provider {
	t.Helper()
	p := postgres.New(hclog.NewNullLogger())
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	cfg[postgres.OptURL] = dbURL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatalf("postgres Configure: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = p.Close(context.Background()) }) })
	return p
}

// policies is a not-before source the test sets.
type policies struct {
	mu     sync.Mutex
	realm  map[string]time.Time
	client map[[2]string]time.Time
}

func newPolicies() *policies {
	return &policies{realm: map[string]time.Time{}, client: map[[2]string]time.Time{}}
}

func (p *policies) Realm(r string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.realm[r]
}

func (p *policies) Client(r, c string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client[[2]string{r, c}]
}

func (p *policies) setRealm(r string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.realm[r] = t
}

func (p *policies) setClient(r, c string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.client[[2]string{r, c}] = t
}

// request is one request a receiver got.
type request struct {
	path, contentType string
	signature         string // the webhook's signature header
	body              []byte
}

// receiver is a client's HTTP endpoint that can go down (its port refuses connections) and
// come back on the same address.
type receiver struct {
	t      *testing.T
	addr   string
	status int

	mu  sync.Mutex
	srv *http.Server
	got []request
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{t: t, addr: "127.0.0.1:0", status: status}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) URL() string { return "http://" + r.addr }

func (r *receiver) start() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("receiver listen on %s: %v", r.addr, err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get(webhook.SignatureHeader), body})
		r.mu.Unlock()
		w.WriteHeader(r.status)
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }() // ends when stop closes srv
}

func (r *receiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// fixture is an Outbox over PostgreSQL, the adapter provider and realm "acme".
type fixture struct {
	dbURL    string
	store    *postgres.Provider
	clock    *testclock.Clock
	realms   *realm.Realms
	keys     *token.KeyManager
	tokens   *token.Service
	policies *policies
	provider revocationpush.Provider
	opts     Options
	outbox   *Outbox
}

// testOptions keep retries quick in the tests' own clock.
func testOptions() Options {
	return Options{MaxAttempts: 4, BackoffInitial: time.Second, BackoffMax: 4 * time.Second, Lease: 10 * time.Second, BatchSize: 50}
}

func newFixture(t *testing.T, clients ...*realm.Client) *fixture {
	t.Helper()
	f := &fixture{dbURL: freshSchema(t), clock: testclock.New(t0), policies: newPolicies(), opts: testOptions()}
	f.store = openStore(t, f.dbURL)
	rs, _, err := realm.NewRealms(&realm.Realm{Name: "acme", Enabled: true, Clients: clients}, &realm.Realm{Name: "other", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	f.realms = rs
	if f.keys, err = token.NewKeyManager(f.store, token.KeyOptions{Algorithm: token.RS256, Now: f.clock.Now}); err != nil {
		t.Fatal(err)
	}
	f.tokens = token.New(f.keys, token.Options{IssuerBase: issuerBase, Now: f.clock.Now})
	p := adapter.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{adapter.OptTimeout: "5s", adapter.OptMaxConcurrent: "4"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	f.provider = p
	f.outbox = f.newOutbox(t, f.store, f.provider)
	return f
}

// newOutbox is another Outbox over the fixture's realms, keys and clock: a new process, or
// another node.
func (f *fixture) newOutbox(t *testing.T, store Store, provider revocationpush.Provider) *Outbox {
	t.Helper()
	o, err := New(Deps{
		Store: store, Provider: provider, Realms: f.realms, Keys: f.keys, Tokens: f.tokens,
		NotBefore: f.policies, Now: f.clock.Now, Log: hclog.NewNullLogger(),
	}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// deliveries lists the realm's deliveries in a state ("" for all).
func (f *fixture) deliveries(t *testing.T, state usersessions.DeliveryState) []*usersessions.Delivery {
	t.Helper()
	ds, err := f.outbox.Deliveries(context.Background(), usersessions.DeliveryFilter{RealmID: "acme", State: state, Page: usersessions.Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// verified checks raw against the realm's published JWKS, as an adapter does, and returns
// its claims.
func (f *fixture) verified(t *testing.T, raw string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("not a compact JWS: %v", err)
	}
	set, err := f.keys.JWKS(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(set) // as a client fetches it
	var fetched jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &fetched); err != nil {
		t.Fatal(err)
	}
	keys := fetched.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the realm's JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with the realm's JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// pluginProvider starts the built-in revocation-push provider id as a plugin process (this
// test binary serving it) and configures it.
func pluginProvider(t *testing.T, id string, cfg spi.Config) revocationpush.Provider {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	h := host.New(hclog.NewNullLogger(), host.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stop plugin host: %v", err)
		}
	})
	p, err := h.Start(context.Background(), host.Spec{
		SPI: spi.RevocationPush, ID: id, Command: exe, Args: []string{"-test.run=^$"}, SHA256: hex.EncodeToString(sum[:]),
		Env: []string{pluginEnv + "=" + id, "GORACE=atexit_sleep_ms=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	full := spi.Config{}
	for _, o := range p.Descriptor().Options {
		full[o.Name] = o.Default
	}
	for k, v := range cfg {
		full[k] = v
	}
	if err := p.Configure(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	rp, ok := p.Provider().(revocationpush.Provider)
	if !ok {
		t.Fatalf("plugin provider is %T", p.Provider())
	}
	return rp
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
