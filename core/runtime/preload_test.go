package runtime

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// These tests start the runtime as `sessiond start` does, with every provider in-process
// (no plugin binary to build) over an embedded store in a temporary file, so that offline
// sessions opened by one runtime are there for the next: they are what is preloaded.

const (
	testRealm    = "offline"
	testClient   = "app"
	testSecret   = "app-secret"
	testFrontend = "fe-token-of-the-runtime-tests-0123456789"
)

const testRealmJSON = `{
  "realm": "offline",
  "offlineSessionIdleTimeout": 2592000,
  "clients": [
    {"clientId": "app", "secret": "app-secret", "publicClient": false, "optionalClientScopes": ["offline_access"]}
  ]
}`

// env is one test's store and realm, shared by the runtimes it starts in turn.
type env struct {
	t         *testing.T
	dir       string
	realmFile string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir) // no conf/sessiond.conf here: only the flags count
	e := &env{t: t, dir: dir, realmFile: filepath.Join(dir, "realm.json")}
	if err := os.WriteFile(e.realmFile, []byte(testRealmJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// start starts a runtime with the common flags and extra ones, all providers in-process.
func (e *env) start(opts Options, log hclog.Logger, extra ...string) *Runtime {
	e.t.Helper()
	return e.run(opts, log, append(e.args(), extra...))
}

// args are the common flags: plain HTTP and the management interface on free ports of
// 127.0.0.1, a hostname, the test realm and front-end credential, an embedded store.
func (e *env) args() []string {
	return []string{
		"--http-host=127.0.0.1", "--http-enabled=true", "--http-port=0", "--http-management-port=0", "--node-id=test-node", "--log-level=debug",
		"--realm-file=" + e.realmFile, "--frontend-token=" + testFrontend, "--hostname=http://sessiond.test", testKEKFlag,
		"--spi-user-sessions-provider=embedded", "--spi-user-sessions-embedded-path=" + filepath.Join(e.dir, "sessions.db"),
		"--spi-user-sessions-embedded-in-process=true",
		"--spi-offline-preload-lazy-in-process=true", "--spi-offline-preload-database-in-process=true",
		"--spi-cache-lifespan-default-in-process=true", "--spi-cache-lifespan-override-in-process=true",
		"--spi-revocation-push-log-only-in-process=true",
	}
}

// run starts a runtime with args under opts.Profile (start when unset).
func (e *env) run(opts Options, log hclog.Logger, args []string) *Runtime {
	e.t.Helper()
	opts.Profile, opts.Args = cmp.Or(opts.Profile, conf.ProfileStart), args
	if log == nil {
		log = hclog.NewNullLogger()
	}
	rt, err := Start(context.Background(), log, opts)
	if err != nil {
		e.t.Fatalf("start: %v", err)
	}
	e.t.Cleanup(func() { stop(e.t, rt) })
	return rt
}

var stopped sync.Map // *Runtime → true

// stop stops rt once, however often it is called.
func stop(t *testing.T, rt *Runtime) {
	if _, done := stopped.LoadOrStore(rt, true); done {
		return
	}
	if err := rt.Stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// seed opens n offline sessions with a lazy runtime and returns their refresh tokens.
func (e *env) seed(n int) []string {
	e.t.Helper()
	rt := e.start(Options{}, nil)
	waitReady(e.t, rt, nil)
	var tokens []string
	for i := range n {
		body, _ := json.Marshal(map[string]any{"client_id": testClient, "user_id": fmt.Sprint("user-", i), "username": fmt.Sprint("user", i),
			"ip_address": "127.0.0.1", "scope": "openid offline_access", "offline_access": true})
		req, _ := http.NewRequest(http.MethodPost, base(rt)+"/realms/"+testRealm+"/sessions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testFrontend)
		req.Header.Set("Content-Type", "application/json")
		code, res := do(e.t, req)
		if code != http.StatusCreated || res["refresh_token"] == nil {
			e.t.Fatalf("open offline session %d: %d %v", i, code, res)
		}
		tokens = append(tokens, res["refresh_token"].(string))
	}
	stop(e.t, rt)
	return tokens
}

func base(rt *Runtime) string { return "http://" + rt.Addr().String() }

// managementBase is where health and metrics are served: the management interface under
// start, the one port under start-dev.
func managementBase(rt *Runtime) string { return cmp.Or(rt.ManagementURL(), base(rt)) }

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// refreshAll refreshes every token (the offline token grant) and returns the new tokens.
func refreshAll(t *testing.T, rt *Runtime, tokens []string) []string {
	t.Helper()
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}
		req, _ := http.NewRequest(http.MethodPost, base(rt)+"/realms/"+testRealm+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
		req.SetBasicAuth(testClient, testSecret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, res := do(t, req)
		if code != http.StatusOK || res["refresh_token"] == nil {
			t.Fatalf("refresh %d: %d %v", i, code, res)
		}
		out[i] = res["refresh_token"].(string)
	}
	return out
}

// counting counts the sessions the runtime reads from its store (the readiness probe's
// key aside), and lets a test hold up or break the preload's stream.
type counting struct {
	usersessions.Provider
	gets  atomic.Int64
	pages atomic.Int64
	page  func(n int64) error // before each streamed page; an error ends the stream
}

func (c *counting) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	for _, k := range keys {
		if k.RealmID == testRealm {
			c.gets.Add(1)
		}
	}
	return c.Provider.Get(ctx, keys)
}

func (c *counting) Stream(ctx context.Context, req usersessions.StreamRequest, fn func([]*usersessions.UserSession) error) error {
	return c.Provider.Stream(ctx, req, func(p []*usersessions.UserSession) error {
		n := c.pages.Add(1)
		if c.page != nil {
			if err := c.page(n); err != nil {
				return err
			}
		}
		return fn(p)
	})
}

func (c *counting) wrap(p usersessions.Provider) usersessions.Provider {
	c.Provider = p
	return c
}

// preloadCheck returns the readiness check of the offline preload.
func preloadCheck(t *testing.T, rt *Runtime) httpapi.Check {
	t.Helper()
	for _, c := range rt.Checks(context.Background()) {
		if c.Name == "offline preload" {
			return c
		}
	}
	t.Fatalf("no offline preload check in %+v", rt.Checks(context.Background()))
	return httpapi.Check{}
}

// waitReady waits until every readiness check is UP; seen, when set, gets each state of
// the preload check on the way.
func waitReady(t *testing.T, rt *Runtime, seen func(httpapi.Check)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		up := true
		for _, c := range rt.Checks(context.Background()) {
			if c.Status != "UP" {
				up = false
			}
			if seen != nil && c.Name == "offline preload" {
				seen(c)
			}
		}
		if up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %+v", rt.Checks(context.Background()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const sessions = 20

// A runtime that preloaded its offline sessions serves their refreshes from memory: not
// one store read. It is selected with the seed's own flag.
func TestPreloadedRuntimeServesOfflineRefreshesWithoutStoreReads(t *testing.T) {
	e := newEnv(t)
	tokens := e.seed(sessions)
	store := &counting{}
	rt := e.start(Options{wrapStore: store.wrap}, nil,
		"--spi-user-sessions-infinispan-preload-offline-sessions-from-database=true", "--spi-offline-preload-database-workers=2")
	waitReady(t, rt, nil)
	if c := preloadCheck(t, rt); !strings.Contains(c.Reason, fmt.Sprintf("preloaded %d offline sessions", sessions)) {
		t.Fatalf("preload check %+v", c)
	}
	if st := rt.cache.Stats(); st.Preloaded != sessions {
		t.Fatalf("cache %+v, want %d preloaded", st, sessions)
	}
	store.gets.Store(0)
	tokens = refreshAll(t, rt, tokens)
	refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != 0 {
		t.Errorf("%d store reads for %d offline refreshes of preloaded sessions, want 0", n, 2*sessions)
	}
}

// A lazy runtime reads each offline session once, on its first refresh; then none.
func TestLazyRuntimeReadsEachOfflineSessionOnce(t *testing.T) {
	e := newEnv(t)
	tokens := e.seed(sessions)
	store := &counting{}
	rt := e.start(Options{wrapStore: store.wrap}, nil)
	waitReady(t, rt, nil)
	for _, c := range rt.Checks(context.Background()) {
		if c.Name == "offline preload" {
			t.Errorf("a lazy runtime reports a preload: %+v", c)
		}
	}
	if store.pages.Load() != 0 {
		t.Errorf("a lazy runtime streamed %d pages", store.pages.Load())
	}
	tokens = refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != sessions {
		t.Errorf("first refreshes: %d store reads, want %d (one per session)", n, sessions)
	}
	refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != sessions {
		t.Errorf("second refreshes: %d store reads in all, want still %d", n, sessions)
	}
}

// Under the override provider (set with Keycloak's key, in seconds) an imported offline
// session leaves the cache after its lifespan; the next refresh reads it back from the
// store, works, and is cached again.
func TestOverriddenEntryIsEvictedAndReloaded(t *testing.T) {
	e := newEnv(t)
	tokens := e.seed(3)
	store := &counting{}
	clock := testclock.New(time.Now())
	rt := e.start(Options{wrapStore: store.wrap, now: clock.Now}, nil,
		"--spi-cache-lifespan-provider=override",
		"--spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override=60")
	waitReady(t, rt, nil)
	tokens = refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != 3 {
		t.Fatalf("first refreshes: %d reads, want 3", n)
	}
	clock.Advance(59 * time.Second)
	tokens = refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != 3 {
		t.Fatalf("within the lifespan: %d reads in all, want still 3", n)
	}
	clock.Advance(2 * time.Second) // 61s after they were imported
	tokens = refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != 6 {
		t.Errorf("after the lifespan: %d reads in all, want 6 (each session read back once)", n)
	}
	if st := rt.cache.Stats(); st.Evictions != 3 {
		t.Errorf("cache %+v, want 3 evictions", st)
	}
	refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != 6 {
		t.Errorf("reloaded sessions were not cached again: %d reads in all", n)
	}
}

// A store failure during the preload does not stop sessiond: it becomes ready, says why
// in the log and in readiness, and serves the rest of the offline sessions lazily.
func TestStoreFailureDuringPreloadFallsBackToLazy(t *testing.T) {
	e := newEnv(t)
	tokens := e.seed(sessions)
	store := &counting{page: func(n int64) error {
		if n == 2 {
			return fmt.Errorf("connection to the database lost: %w", spi.ErrUnavailable)
		}
		return nil
	}}
	var logs testlog.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	rt := e.start(Options{wrapStore: store.wrap}, log,
		"--spi-offline-preload-provider=database", "--spi-offline-preload-database-page-size=5", "--spi-offline-preload-database-workers=1")
	waitReady(t, rt, nil)
	c := preloadCheck(t, rt)
	if c.Status != "UP" || !strings.Contains(c.Reason, "lazy loading from here") || !strings.Contains(c.Reason, "connection to the database lost") {
		t.Errorf("preload check %+v", c)
	}
	for _, want := range []string{"offline preload failed", "connection to the database lost", "sessiond is ready"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	refreshAll(t, rt, tokens)
	if n := store.gets.Load(); n != sessions-5 {
		t.Errorf("%d store reads, want %d: the first page was preloaded, the rest loaded lazily", n, sessions-5)
	}
}

// While the preload runs, readiness is DOWN and says how far it is; once done, UP.
func TestReadinessReportsProgressWhilePreloading(t *testing.T) {
	e := newEnv(t)
	e.seed(sessions)
	release := make(chan struct{})
	store := &counting{page: func(n int64) error {
		if n == 3 {
			<-release
		}
		return nil
	}}
	rt := e.start(Options{wrapStore: store.wrap}, nil,
		"--spi-offline-preload-provider=database", "--spi-offline-preload-database-page-size=5", "--spi-offline-preload-database-workers=1")
	deadline := time.Now().Add(10 * time.Second)
	var c httpapi.Check
	for c = preloadCheck(t, rt); !strings.Contains(c.Reason, "10 of 20"); c = preloadCheck(t, rt) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("preload check %+v, want progress at 10 of 20", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c.Status != "DOWN" || !strings.Contains(c.Reason, "preloading offline sessions: 10 of 20 (50%)") || !strings.Contains(c.Reason, "/s") {
		t.Errorf("preload check %+v", c)
	}
	resp, err := http.Get(rt.ManagementURL() + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(raw), "10 of 20") {
		t.Errorf("GET /health/ready = %d %s", resp.StatusCode, raw)
	}
	close(release)
	waitReady(t, rt, nil)
	if c := preloadCheck(t, rt); !strings.Contains(c.Reason, "preloaded 20 offline sessions") {
		t.Errorf("after: %+v", c)
	}
}
