package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/sessiond/sessiond/internal/tcpproxy"
	"github.com/sessiond/sessiond/internal/testpg"
)

// These tests run the real binary against a real store and take it away: sessiond is
// restarted on the same store, or its PostgreSQL connection is cut under traffic.

const (
	persistRealm    = "persist"
	persistClient   = "app"
	persistSecret   = "app-secret"
	persistFrontend = "fe-persist-token"
	persistAdmin    = "admin-persist-token"
	// persistHostname is the public base URL, fixed so that the token issuer
	// (<hostname>/realms/<realm>) stays the same across a restart on another port.
	persistHostname = "http://sessiond.test"
)

// persistRealmJSON is a realm whose client may ask for offline tokens (offline_access among
// its optional client scopes); docs/quickstart-realm.json's "shop" may not.
const persistRealmJSON = `{
  "realm": "persist",
  "ssoSessionIdleTimeout": 1800,
  "ssoSessionMaxLifespan": 36000,
  "offlineSessionIdleTimeout": 2592000,
  "accessTokenLifespan": 300,
  "clients": [
    {
      "clientId": "app",
      "secret": "app-secret",
      "publicClient": false,
      "redirectUris": ["http://127.0.0.1:3000/*"],
      "optionalClientScopes": ["offline_access"]
    }
  ]
}
`

// writeRealm writes the test realm into a new temporary directory and returns its path.
func writeRealm(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "persist-realm.json")
	if err := os.WriteFile(path, []byte(persistRealmJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// persistArgs are the start-dev flags that must not change across a restart.
func persistArgs(realmFile string) []string {
	return []string{
		"--http-port=0",
		"--realm-file=" + realmFile,
		"--frontend-token=" + persistFrontend,
		"--admin-token=" + persistAdmin,
		"--hostname=" + persistHostname,
	}
}

// pgSchema creates an empty schema in the test database, dropped when t ends (register
// it before the daemon that uses it, so that the daemon has stopped by then), and returns
// the test database URL with search_path set to it.
func pgSchema(t *testing.T) string {
	t.Helper()
	db, err := sql.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("PostgreSQL is not reachable at %s (run .ci/services, or set SESSIOND_TEST_POSTGRES_URL): %v", testpg.URL(), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
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

// stopDaemon sends SIGTERM and waits for sessiond, and every plugin process it started, to
// exit; sessiond must exit 0.
func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	kids := pluginChildren(t, d.cmd.Process.Pid)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("sessiond did not exit within 20s of SIGTERM:\n%s", d.log())
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sessiond exited %d after SIGTERM:\n%s", code, d.log())
	}
	deadline := time.Now().Add(5 * time.Second)
	for name, pid := range kids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("plugin %s (pid %d) still running after sessiond exited", name, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// apiClient talks to one sessiond as the login front-end and as the client "app".
type apiClient struct {
	base string
	http *http.Client
	// frontend is the login front-end's credential; "" is persistFrontend.
	frontend string
}

func (c *apiClient) frontendToken() string { return cmp.Or(c.frontend, persistFrontend) }

func newAPIClient(base string, timeout time.Duration) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &apiClient{base: base, http: &http.Client{Timeout: timeout, Transport: tr}}
}

func (c *apiClient) close() { c.http.CloseIdleConnections() }

// apiResult is one answer: its status, the Retry-After header, the body, and the decoded
// token response or error when the body is one.
type apiResult struct {
	status     int
	retryAfter string
	body       string
	took       time.Duration

	SessionID    string `json:"session_id"`
	SessionState string `json:"session_state"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
}

func (c *apiClient) do(req *http.Request) (*apiResult, error) {
	started := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &apiResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(raw), took: time.Since(started)}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, r)
	}
	return r, nil
}

// open is the front-end opening a session for user (an offline one when offline is set).
func (c *apiClient) open(user string, offline bool) (*apiResult, error) {
	body := map[string]any{"client_id": persistClient, "user_id": user + "-id", "username": user, "ip_address": "127.0.0.1"}
	if offline {
		body["scope"] = "openid offline_access"
		body["offline_access"] = true
	}
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, c.base+"/realms/"+persistRealm+"/sessions", strings.NewReader(string(raw)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.frontendToken())
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// refresh is the client's grant_type=refresh_token (client_secret_basic).
func (c *apiClient) refresh(refreshToken string) (*apiResult, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, err := http.NewRequest(http.MethodPost, c.base+"/realms/"+persistRealm+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(persistClient, persistSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// readiness is GET /health/ready: the status and the body.
func (c *apiClient) readiness() (int, string, error) {
	resp, err := c.http.Get(c.base + "/health/ready")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(raw)), nil
}

// summary is an answer in one short line: the error, or the session a token answer is for
// (tokens are long and say nothing to a reader).
func (r *apiResult) summary() string {
	switch {
	case r == nil:
		return "no answer"
	case r.Error != "":
		return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(r.body))
	case r.AccessToken != "":
		return fmt.Sprintf("%d tokens for session %s (scope %q)", r.status, r.SessionState, r.Scope)
	}
	b := strings.TrimSpace(r.body)
	if len(b) > 200 {
		b = b[:200] + "…"
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

// tokenType is the "typ" claim of a JWT, read without verification.
func tokenType(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var claims struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return claims.Typ
}

// mustOpen opens a session and checks that it got the refresh token of the right type.
func mustOpen(t *testing.T, c *apiClient, user string, offline bool) *apiResult {
	t.Helper()
	r, err := c.open(user, offline)
	if err != nil {
		t.Fatalf("open session for %s: %v", user, err)
	}
	if r.status != http.StatusCreated || r.RefreshToken == "" || r.SessionID == "" {
		t.Fatalf("open session for %s (offline=%v) = %s, want 201 with a session id and a refresh token", user, offline, r.summary())
	}
	want := "Refresh"
	if offline {
		want = "Offline"
		if !slices.Contains(strings.Fields(r.Scope), "offline_access") {
			t.Fatalf("offline session for %s was granted scope %q, without offline_access", user, r.Scope)
		}
	}
	if got := tokenType(t, r.RefreshToken); got != want {
		t.Fatalf("refresh token of %s has typ %q, want %q", user, got, want)
	}
	return r
}

// TestRestartKeepsSessions opens an online and an offline session, stops sessiond with
// SIGTERM, starts it again on the same store with the same realm and credentials, and
// refreshes both. Offline sessions are always stored, so they survive; online sessions
// survive only with persistent-user-sessions on: off, they live in memory and a restart
// ends them (the refresh is refused with invalid_grant, as Keycloak does).
func TestRestartKeepsSessions(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"embedded", func(t *testing.T) []string {
			return []string{"--spi-user-sessions-provider=embedded",
				"--spi-user-sessions-embedded-path=" + filepath.Join(t.TempDir(), "sessions.db")}
		}},
		{"postgres", func(t *testing.T) []string {
			return []string{"--spi-user-sessions-provider=postgres",
				"--spi-user-sessions-postgres-url=" + pgSchema(t)}
		}},
	}
	features := []struct {
		name       string
		args       []string
		persistent bool
	}{
		{"persistent-user-sessions=on", nil, true},
		{"persistent-user-sessions=off", []string{"--features-disabled=persistent-user-sessions"}, false},
	}
	for _, st := range stores {
		for _, ft := range features {
			t.Run(st.name+"/"+ft.name, func(t *testing.T) {
				t.Parallel()
				args := append(persistArgs(writeRealm(t)), st.args(t)...)
				args = append(args, ft.args...)
				dir := t.TempDir()

				first := startDaemonIn(t, dir, args...)
				c := newAPIClient(first.base, 10*time.Second)
				online := mustOpen(t, c, "alice", false)
				offline := mustOpen(t, c, "bob", true)
				// Both refresh before the restart, so that what fails after it fails because
				// of the restart. Rotation is off in this realm: the original tokens stay valid.
				for name, rt := range map[string]string{"online": online.RefreshToken, "offline": offline.RefreshToken} {
					r, err := c.refresh(rt)
					if err != nil {
						t.Fatalf("refresh %s session before the restart: %v", name, err)
					}
					if r.status != http.StatusOK {
						t.Fatalf("refresh %s session before the restart = %s, want 200", name, r.summary())
					}
				}
				c.close()
				stopDaemon(t, first)
				if !strings.Contains(first.log(), "sessiond stopped") {
					t.Errorf("first sessiond did not log a clean stop:\n%s", first.log())
				}

				second := startDaemonIn(t, dir, args...)
				c = newAPIClient(second.base, 10*time.Second)
				defer c.close()

				r, err := c.refresh(offline.RefreshToken)
				if err != nil {
					t.Fatal(err)
				}
				offlineAnswer := r.summary()
				if r.status != http.StatusOK || r.RefreshToken == "" || tokenType(t, r.RefreshToken) != "Offline" {
					t.Errorf("refresh of the offline session after the restart = %s, want 200 with an offline token", r.summary())
				} else if r.SessionState != offline.SessionID {
					t.Errorf("offline refresh after the restart answered session %q, want %q", r.SessionState, offline.SessionID)
				}

				r, err = c.refresh(online.RefreshToken)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case ft.persistent && r.status != http.StatusOK:
					t.Errorf("refresh of the online session after the restart = %s, want 200 (persistent-user-sessions is on)", r.summary())
				case ft.persistent && r.SessionState != online.SessionID:
					t.Errorf("online refresh after the restart answered session %q, want %q", r.SessionState, online.SessionID)
				case !ft.persistent && (r.status != http.StatusBadRequest || r.Error != "invalid_grant"):
					t.Errorf("refresh of the online session %s after the restart = %s, want 400 invalid_grant (persistent-user-sessions is off: online sessions live in memory and end with the process)", online.SessionID, r.summary())
				}
				t.Logf("after the restart: offline refresh %s; online refresh %s", offlineAnswer, r.summary())
			})
		}
	}
}

// outageStats counts what the traffic saw.
type outageStats struct {
	mu sync.Mutex

	served      int // 2xx answers
	unavailable int // 503 with Retry-After
	noRetry     int // 503 without Retry-After
	other       map[int]int
	transport   int // no answer at all (timeout, connection error)
	samples     []string

	slowest503 time.Duration // slowest 503
	slowest    time.Duration // slowest answer of any kind
	during     [2]int        // answers during the cut: [served, 503]
}

func (s *outageStats) sample(format string, args ...any) {
	if len(s.samples) < 12 {
		s.samples = append(s.samples, fmt.Sprintf(format, args...))
	}
}

// record counts one answer (r nil: err happened); cut tells whether the proxy was cut
// when the request was sent.
func (s *outageStats) record(op string, r *apiResult, err error, took time.Duration, cut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowest = max(s.slowest, took)
	switch {
	case err != nil:
		s.transport++
		s.sample("%s: no answer after %v: %v", op, took.Round(time.Millisecond), err)
	case r.status >= 200 && r.status < 300:
		s.served++
		if cut {
			s.during[0]++
		}
	case r.status == http.StatusServiceUnavailable:
		s.slowest503 = max(s.slowest503, took)
		if cut {
			s.during[1]++
		}
		if r.retryAfter == "" {
			s.noRetry++
			s.sample("%s: 503 without Retry-After: %s", op, r.body)
		} else {
			s.unavailable++
		}
	default:
		s.other[r.status]++
		s.sample("%s: %s after %v", op, r.summary(), took.Round(time.Millisecond))
	}
}

// ackedSession is a session the front-end got a 201 for, with the latest refresh token a
// 2xx answer handed out for it.
type ackedSession struct {
	id, refreshToken string
	offline          bool
	openedAt         time.Time
}

// TestPostgresOutageUnderTraffic runs sessiond on PostgreSQL through a TCP proxy, keeps
// several goroutines opening and refreshing sessions, and cuts the proxy for a few seconds.
// While the database is away requests must fail fast with 503 and Retry-After and
// readiness must say so; once it is back sessiond must serve again by itself, and no
// session whose opening or refresh was acknowledged may be lost.
func TestPostgresOutageUnderTraffic(t *testing.T) {
	const (
		workers        = 6
		clientTimeout  = 10 * time.Second
		failFast       = 2 * time.Second // "well under the client timeout"
		warmUp         = 2 * time.Second
		outage         = 4 * time.Second
		recoverWithin  = 15 * time.Second
		afterRecovery  = 1500 * time.Millisecond
		pace           = 15 * time.Millisecond // pause between one worker's requests
		verifyAttempts = 20
	)
	sessiondBinary(t) // built before the clock starts
	testStart := time.Now()
	dbURL := pgSchema(t) // registered first: dropped after the daemon and the proxy are gone
	target, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.New(target.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxied, err := proxy.URL(dbURL)
	if err != nil {
		t.Fatal(err)
	}

	args := append(persistArgs(writeRealm(t)),
		"--spi-user-sessions-provider=postgres",
		"--spi-user-sessions-postgres-url="+proxied,
		// Every 503 is an ERROR line with its cause, the evidence if this test fails; debug
		// lines (one per session event) would bury them.
		"--log-level=info")
	d := startDaemonIn(t, t.TempDir(), args...)
	c := newAPIClient(d.base, clientTimeout)
	defer c.close()
	if code, body, err := c.readiness(); err != nil || code != http.StatusOK {
		t.Fatalf("readiness before the outage = %d %s %v, want 200", code, body, err)
	}

	stats := &outageStats{other: map[int]int{}}
	var (
		ackMu sync.Mutex
		acked = map[string]*ackedSession{} // by session id
	)
	ack := func(id, rt string, offline bool) {
		ackMu.Lock()
		defer ackMu.Unlock()
		if s := acked[id]; s != nil {
			s.refreshToken = rt
		} else {
			acked[id] = &ackedSession{id: id, refreshToken: rt, offline: offline, openedAt: time.Now()}
		}
	}

	ctx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Go(func() {
			// Each worker refreshes only the sessions it opened, so that the latest token of a
			// session is never raced by another worker.
			var mine []string
			latest := map[string]string{}
			for i := 0; ctx.Err() == nil; i++ {
				cut := proxy.IsCut()
				started := time.Now()
				if i%2 == 0 || len(mine) == 0 {
					// Every fourth login asks for an offline session.
					n := seq.Add(1)
					offline := n%4 == 0
					r, err := c.open(fmt.Sprintf("user-%d-%d", w, n), offline)
					stats.record("open", r, err, time.Since(started), cut)
					if err == nil && r.status == http.StatusCreated {
						mine = append(mine, r.SessionID)
						latest[r.SessionID] = r.RefreshToken
						ack(r.SessionID, r.RefreshToken, offline)
					}
				} else {
					id := mine[(i/2)%len(mine)]
					r, err := c.refresh(latest[id])
					stats.record("refresh", r, err, time.Since(started), cut)
					if err == nil && r.status == http.StatusOK {
						latest[id] = r.RefreshToken
						ack(id, r.RefreshToken, false)
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(pace):
				}
			}
		})
	}
	// stop ends the traffic once; it runs on every path out of the test.
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { stopTraffic(); wg.Wait() }) }
	defer stop()

	time.Sleep(warmUp) // traffic before the fault, not an assertion
	stats.mu.Lock()
	servedBefore := stats.served
	stats.mu.Unlock()
	if servedBefore == 0 {
		stop()
		t.Fatalf("no request was served before the outage: %+v", stats.samples)
	}

	// The outage: every connection to PostgreSQL is closed and new ones are refused.
	proxy.Cut()
	cutAt := time.Now()
	t.Logf("proxy cut after %v of traffic (%d served so far)", warmUp, servedBefore)
	// Readiness is polled throughout the outage; the first answer, the first non-200 one
	// and the last one are logged.
	var readyCodes []string
	downSeen := false
	lastReady := ""
	for time.Since(cutAt) < outage {
		code, body, err := c.readiness()
		at := time.Since(cutAt).Round(time.Millisecond)
		switch {
		case err != nil:
			readyCodes = append(readyCodes, "error")
			lastReady = fmt.Sprintf("%v into the outage: no answer: %v", at, err)
		default:
			readyCodes = append(readyCodes, fmt.Sprint(code))
			lastReady = fmt.Sprintf("%v into the outage: %d %s", at, code, body)
			if code != http.StatusOK && !downSeen {
				downSeen = true
				t.Logf("readiness first non-200 %s", lastReady)
			}
		}
		if len(readyCodes) == 1 {
			t.Logf("readiness %s", lastReady)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("readiness %s", lastReady)
	stats.mu.Lock()
	during := stats.during
	stats.mu.Unlock()

	// Back again: sessiond must serve by itself within recoverWithin.
	proxy.Restore()
	restoredAt := time.Now()
	var recovered time.Duration
	for {
		r, err := c.open("recovery-probe", false)
		if err == nil && r.status == http.StatusCreated {
			recovered = time.Since(restoredAt)
			ack(r.SessionID, r.RefreshToken, false)
			break
		}
		if time.Since(restoredAt) > recoverWithin {
			stop()
			t.Fatalf("sessiond did not serve a login within %v of PostgreSQL coming back; last answer %s %v", recoverWithin, r.summary(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	readyAgain := time.Duration(-1)
	for time.Since(restoredAt) < recoverWithin {
		if code, _, err := c.readiness(); err == nil && code == http.StatusOK {
			readyAgain = time.Since(restoredAt)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(afterRecovery) // traffic after the fault, not an assertion
	stop()

	// Every acknowledged session must still be there: refresh its latest token.
	ackMu.Lock()
	sessions := make([]*ackedSession, 0, len(acked))
	offlineAcked := 0
	for _, s := range acked {
		sessions = append(sessions, s)
		if s.offline {
			offlineAcked++
		}
	}
	ackMu.Unlock()
	var (
		verifyMu   sync.Mutex
		lost       []string
		unverified []string
		jobs       = make(chan *ackedSession)
		vwg        sync.WaitGroup
	)
	for range 8 {
		vwg.Go(func() {
			for s := range jobs {
				var last string
				ok := false
				for range verifyAttempts {
					r, err := c.refresh(s.refreshToken)
					if err == nil && r.status == http.StatusOK {
						ok = true
						break
					}
					if err == nil && r.status == http.StatusBadRequest && r.Error == "invalid_grant" {
						last = "lost: " + r.summary()
						break
					}
					if err != nil {
						last = err.Error()
					} else {
						last = r.summary()
					}
					time.Sleep(100 * time.Millisecond)
				}
				if ok {
					continue
				}
				verifyMu.Lock()
				entry := fmt.Sprintf("session %s (offline %v, opened %v after the cut): %s", s.id, s.offline, s.openedAt.Sub(cutAt).Round(time.Millisecond), last)
				if strings.HasPrefix(last, "lost: ") {
					lost = append(lost, entry)
				} else {
					unverified = append(unverified, entry)
				}
				verifyMu.Unlock()
			}
		})
	}
	for _, s := range sessions {
		jobs <- s
	}
	close(jobs)
	vwg.Wait()

	stats.mu.Lock()
	defer stats.mu.Unlock()
	otherTotal := 0
	for _, n := range stats.other {
		otherTotal += n
	}
	t.Logf("traffic: served %d (during the cut %d), 503+Retry-After %d (during the cut %d), 503 without Retry-After %d, other statuses %v, no answer %d",
		stats.served, during[0], stats.unavailable, during[1], stats.noRetry, stats.other, stats.transport)
	t.Logf("latency: slowest 503 %v, slowest answer %v; recovered %v after restore, ready again %v after restore; proxy refused %d connections during the cut",
		stats.slowest503.Round(time.Millisecond), stats.slowest.Round(time.Millisecond), recovered.Round(time.Millisecond), readyAgain.Round(time.Millisecond), proxy.Refused())
	t.Logf("sessions: acknowledged %d (%d offline), verified alive %d, lost %d, unverifiable %d; test took %v",
		len(sessions), offlineAcked, len(sessions)-len(lost)-len(unverified), len(lost), len(unverified), time.Since(testStart).Round(time.Millisecond))
	for _, s := range stats.samples {
		t.Logf("  sample: %s", s)
	}

	if stats.unavailable+stats.noRetry == 0 {
		t.Errorf("no request was answered 503 during a %v database outage (during the cut: %d served)", outage, during[0])
	}
	if stats.noRetry > 0 {
		t.Errorf("%d answers were 503 without a Retry-After header", stats.noRetry)
	}
	if otherTotal > 0 {
		t.Errorf("%d answers were neither 2xx nor 503 (by status %v); a database outage must answer 503 with Retry-After", otherTotal, stats.other)
	}
	if stats.transport > 0 {
		t.Errorf("%d requests got no answer within the client timeout %v", stats.transport, clientTimeout)
	}
	if stats.slowest503 > failFast {
		t.Errorf("the slowest 503 took %v; refusals must be fast (under %v, the client waits %v)", stats.slowest503, failFast, clientTimeout)
	}
	if !downSeen {
		t.Errorf("GET /health/ready stayed 200 throughout the %v database outage (answers polled every 100ms: %v); readiness must be non-200 while the store cannot be reached", outage, compact(readyCodes))
	}
	if readyAgain < 0 {
		t.Errorf("GET /health/ready was not 200 within %v of PostgreSQL coming back", recoverWithin)
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged sessions were lost:\n%s", len(lost), len(sessions), strings.Join(lost, "\n"))
	}
	if len(unverified) > 0 {
		t.Errorf("%d acknowledged sessions could not be checked after recovery:\n%s", len(unverified), strings.Join(unverified, "\n"))
	}
	if took := time.Since(testStart); took > 60*time.Second {
		t.Errorf("the test took %v, over its 60s budget", took)
	}
}

// compact run-length encodes a list of answers: "200×12 503×30".
func compact(codes []string) string {
	var b strings.Builder
	for i := 0; i < len(codes); {
		j := i
		for j < len(codes) && codes[j] == codes[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s×%d", codes[i], j-i)
		i = j
	}
	return b.String()
}
