package runtime

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	_ "github.com/lib/pq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/internal/testpg"
)

// These tests run the whole runtime over PostgreSQL, every provider in-process, and read
// what an operator reads: GET /metrics and the event log file.

// pgSchema creates an empty schema in the test database, dropped when t ends, and returns
// the database URL with search_path set to it.
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
	_, _ = rand.Read(b)
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

// startPostgres starts a runtime over a fresh PostgreSQL schema with the extra flags.
func startPostgres(t *testing.T, log hclog.Logger, extra ...string) *Runtime {
	t.Helper()
	e := newEnv(t)
	pg := pgSchema(t) // dropped after the runtime has stopped (cleanups run last-in first-out)
	args := append([]string{
		"--http-host=127.0.0.1", "--http-enabled=true", "--http-port=0", "--http-management-port=0", "--node-id=test-node", "--log-level=debug",
		"--realm-file=" + e.realmFile, "--frontend-token=" + testFrontend, "--hostname=http://sessiond.test", testKEKFlag,
		"--spi-user-sessions-provider=postgres", "--spi-user-sessions-postgres-url=" + pg,
		"--spi-user-sessions-postgres-in-process=true",
		"--spi-offline-preload-lazy-in-process=true", "--spi-offline-preload-database-in-process=true",
		"--spi-cache-lifespan-default-in-process=true", "--spi-cache-lifespan-override-in-process=true",
		"--spi-revocation-push-log-only-in-process=true",
	}, extra...)
	rt, err := Start(context.Background(), log, Options{Profile: conf.ProfileStart, Args: args})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { stop(t, rt) })
	waitReady(t, rt, nil)
	return rt
}

// grant is what a login or a refresh answered.
type grant struct{ access, refresh, sessionID string }

func login(t *testing.T, rt *Runtime, user, ip string, offline bool) grant {
	t.Helper()
	scope := "openid"
	if offline {
		scope += " offline_access"
	}
	body, _ := json.Marshal(map[string]any{"client_id": testClient, "user_id": user, "username": user,
		"ip_address": ip, "scope": scope, "offline_access": offline})
	req, _ := http.NewRequest(http.MethodPost, base(rt)+"/realms/"+testRealm+"/sessions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testFrontend)
	req.Header.Set("Content-Type", "application/json")
	code, res := do(t, req)
	if code != http.StatusCreated || res["refresh_token"] == nil {
		t.Fatalf("login %s: %d %v", user, code, res)
	}
	sid, _ := res["session_id"].(string)
	return grant{access: res["access_token"].(string), refresh: res["refresh_token"].(string), sessionID: sid}
}

// tokenCall posts a form to one of the client endpoints as the client app.
func tokenCall(t *testing.T, rt *Runtime, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base(rt)+"/realms/"+testRealm+"/protocol/openid-connect/"+endpoint, strings.NewReader(form.Encode()))
	req.SetBasicAuth(testClient, testSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func refresh(t *testing.T, rt *Runtime, token string) (int, grant) {
	t.Helper()
	code, res := tokenCall(t, rt, "token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}})
	var g grant
	if code == http.StatusOK {
		g.access, g.refresh = res["access_token"].(string), res["refresh_token"].(string)
	}
	return code, g
}

// metricFamilies scrapes /metrics and parses the text exposition.
func metricFamilies(t *testing.T, rt *Runtime) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(rt.ManagementURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of the series of name whose labels include kv (pairs): a
// counter's or gauge's value, a histogram's sample count; ok false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, kv ...string) (float64, bool) {
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if got[kv[i]] != kv[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// After a login and two refreshes, one refused refresh and a logout, /metrics and the event
// log say so, and neither holds a token or a credential.
func TestMetricsAndEventLogOfARunningStack(t *testing.T) {
	var logs testlog.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	events := filepath.Join(t.TempDir(), "events.jsonl")
	rt := startPostgres(t, log, "--metrics-enabled=true", "--event-log-file="+events)

	a := login(t, rt, "alice", "203.0.113.9", false)
	tokens := []string{a.access, a.refresh}
	for i := range 2 {
		code, g := refresh(t, rt, a.refresh)
		if code != http.StatusOK {
			t.Fatalf("refresh %d: %d", i, code)
		}
		a = g
		tokens = append(tokens, g.access, g.refresh)
	}
	c := login(t, rt, "carol", "203.0.113.10", true) // an online and an offline session
	b := login(t, rt, "bob", "203.0.113.11", false)
	tokens = append(tokens, c.access, c.refresh, b.access, b.refresh)
	if code, res := tokenCall(t, rt, "logout", url.Values{"refresh_token": {b.refresh}}); code != http.StatusNoContent {
		t.Fatalf("logout: %d %v", code, res)
	}
	if code, _ := refresh(t, rt, b.refresh); code != http.StatusBadRequest {
		t.Fatalf("refresh after logout: %d, want 400", code)
	}

	fams := metricFamilies(t, rt)
	app := []string{"realm", testRealm, "client", testClient}
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sessiond_logins_total", app, 3},
		{"sessiond_refreshes_total", append(app, "outcome", "success"), 2},
		{"sessiond_refreshes_total", append(app, "outcome", "refused"), 1},
		{"sessiond_refresh_refusals_total", append(app, "reason", "unknown_session"), 1},
		{"sessiond_logouts_total", app, 1},
		{"sessiond_token_request_duration_seconds", []string{"grant_type", "refresh_token", "code", "200"}, 2},
		{"sessiond_token_request_duration_seconds", []string{"grant_type", "refresh_token", "code", "400"}, 1},
		// In the store: alice's and carol's online sessions, carol's offline one.
		{"sessiond_sessions_active", app, 2},
		{"sessiond_sessions_offline", app, 1},
		{"sessiond_sessions_count_failed", []string{"realm", testRealm}, 0},
		{"sessiond_plugin_state", []string{"spi", "user-sessions", "provider", "postgres", "state", "in-process"}, 1},
		{"sessiond_plugin_restarts_total", []string{"spi", "user-sessions", "provider", "postgres"}, 0},
		{"sessiond_preload_state", []string{"state", "lazy"}, 1},
		{"sessiond_event_log_dropped_total", nil, 0},
	}
	for _, tc := range tests {
		got, ok := metricValue(fams, tc.name, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// The first cleanup pass runs at start-up, in the background.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n, _ := metricValue(metricFamilies(t, rt), "sessiond_cleanup_passes_total"); n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cleanup pass in sessiond_cleanup_passes_total")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := metricValue(metricFamilies(t, rt), "sessiond_cleanup_last_run_timestamp_seconds"); !ok {
		t.Error("no sessiond_cleanup_last_run_timestamp_seconds after a pass")
	}

	stop(t, rt) // flushes and closes the event log
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	types := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %v: %s", err, sc.Text())
		}
		for _, k := range []string{"timestamp", "type", "outcome", "realm", "client_id", "session_id", "user_id", "offline"} {
			if _, ok := line[k]; !ok {
				t.Errorf("%s missing: %s", k, sc.Text())
			}
		}
		if ts, _ := line["timestamp"].(string); !strings.HasSuffix(ts, "Z") {
			t.Errorf("timestamp %q is not UTC", ts)
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("timestamp: %v", err)
		}
		typ, _ := line["type"].(string)
		types[typ]++
		switch {
		case typ == "refresh_refused":
			if line["outcome"] != "failure" || line["reason"] != "unknown_session" || line["user_id"] != "bob" {
				t.Errorf("refusal: %s", sc.Text())
			}
		case typ == "login" && line["user_id"] == "alice":
			if line["ip"] != "203.0.113.9" || line["offline"] != false || line["outcome"] != "success" {
				t.Errorf("alice's login: %s", sc.Text())
			}
		case typ == "login" && line["user_id"] == "carol":
			if line["offline"] != true {
				t.Errorf("carol's login: %s", sc.Text())
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"login": 3, "refresh": 2, "refresh_refused": 1, "logout": 1}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("event types %v, want %v", types, want)
	}

	// No token, credential or secret in the event log, nor in the debug log.
	raw, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	secrets := append(tokens, testSecret, testFrontend)
	for _, where := range []struct{ name, text string }{{"event log", string(raw)}, {"log", logs.String()}} {
		for _, s := range secrets {
			if strings.Contains(where.text, s) {
				t.Errorf("the %s holds a secret or token (%.12s…)", where.name, s)
			}
		}
		if strings.Contains(where.text, "eyJ") {
			t.Errorf("the %s holds something like a JWT", where.name)
		}
	}
}

// Without metrics-enabled (Keycloak's default), /metrics does not exist, and without
// event-log-file events go to the log.
func TestMetricsAreOffByDefault(t *testing.T) {
	var logs testlog.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	rt := startPostgres(t, log)
	resp, err := http.Get(rt.ManagementURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics with metrics disabled: %d, want 404", resp.StatusCode)
	}
	g := login(t, rt, "dave", "192.0.2.1", false)
	if code, _ := refresh(t, rt, g.refresh); code != http.StatusOK {
		t.Fatalf("refresh: %d", code)
	}
	for _, want := range []string{"type=login", "ip=192.0.2.1", "type=refresh"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks the event %q:\n%s", want, logs.String())
		}
	}
}

// A bad event-log-file stops the start with a clear error.
func TestUnwritableEventLogFileFailsTheStart(t *testing.T) {
	e := newEnv(t)
	_, err := Start(context.Background(), hclog.NewNullLogger(), Options{Profile: conf.ProfileStart, Args: []string{
		"--http-host=127.0.0.1", "--http-enabled=true", "--http-port=0", "--http-management-port=0", "--hostname=http://sessiond.test", "--realm-file=" + e.realmFile, testKEKFlag,
		"--spi-user-sessions-provider=embedded", "--spi-user-sessions-embedded-path=" + filepath.Join(e.dir, "sessions.db"),
		"--spi-user-sessions-embedded-in-process=true", "--spi-offline-preload-lazy-in-process=true",
		"--spi-cache-lifespan-default-in-process=true", "--spi-revocation-push-log-only-in-process=true",
		"--event-log-file=" + filepath.Join(e.dir, "no", "such", "dir", "events.jsonl"),
	}})
	if err == nil || !strings.Contains(err.Error(), "event log file") {
		t.Fatalf("start with an unwritable event log: %v", err)
	}
}
