package runtime

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
)

// A flood of wrong client secrets against the running daemon: the first auth-failure-limit
// are answered 401, the rest 429 with Retry-After; the event log holds a bounded number of
// auth_refused lines, written at once and summarised at the stop, whose counts add up to
// the flood; the metrics count them by reason. The window is the longest allowed (24h), so
// the bucket refills one failure per 72 minutes and no slow run of the flood on a loaded
// machine earns a 21st attempt (with 1m, one every 3 s did).
func TestWrongSecretFloodIsThrottledAuditedInBoundedLinesAndCounted(t *testing.T) {
	e := newEnv(t)
	events := filepath.Join(e.dir, "events.jsonl")
	rt := e.start(Options{}, nil, "--event-log-file="+events, "--metrics-enabled=true", "--auth-failure-limit=20", "--auth-failure-window=24h")
	waitReady(t, rt, nil)
	const flood = 500
	codes := map[int]int{}
	began := time.Now()
	for range flood {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}
		req, _ := http.NewRequest(http.MethodPost, base(rt)+"/realms/"+testRealm+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
		req.SetBasicAuth(testClient, "guess")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("a 429 without Retry-After")
		}
	}
	took := time.Since(began)
	if codes[http.StatusUnauthorized] != 20 || codes[http.StatusTooManyRequests] != flood-20 {
		t.Errorf("answers %v, want 20 × 401 and %d × 429", codes, flood-20)
	}
	resp, err := http.Get(managementBase(rt) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sessiond_auth_refusals_total{kind="client",reason="invalid_secret"} 20`,
		`sessiond_auth_refusals_total{kind="client",reason="throttled"} 480`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	stop(t, rt)

	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if m["type"] == "auth_refused" {
			lines = append(lines, m)
		}
	}
	accounted := map[string]float64{}
	for _, l := range lines {
		if l["kind"] != "client" || l["client_id"] != testClient || l["ip"] != "127.0.0.1" || l["realm"] != testRealm {
			t.Errorf("line %v", l)
		}
		n, _ := l["count"].(float64)
		accounted[l["reason"].(string)] += max(n, 1)
	}
	// Per reason, a first line and a summary for each audit window the flood spanned: 4 when
	// it lasted less than a window, as on a quiet machine.
	most := 2 * (2 + int(took/authfail.DefaultAuditWindow))
	if len(lines) < 4 || len(lines) > most || accounted["invalid_secret"] != 20 || accounted["throttled"] != flood-20 {
		t.Errorf("%d auth_refused lines accounting for %v; want 4 to %d (a first line and a summary for each reason and audit window; the flood took %v) for 20 invalid_secret, %d throttled",
			len(lines), accounted, most, took.Round(time.Millisecond), flood-20)
	}
	if all, _ := os.ReadFile(events); strings.Contains(string(all), "guess") {
		t.Error("the event log holds the secret")
	}
}
