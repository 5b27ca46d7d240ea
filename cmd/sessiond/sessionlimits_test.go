package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sessionLimitRealmsJSON: "one" lets each user one session and ends the oldest to make
// room, telling the client by back-channel logout (%[1]s); "capped" admits one session in
// the whole realm and refuses the rest with its message.
const sessionLimitRealmsJSON = `[
  {"realm": "one",
   "attributes": {"sessionLimits.userRealmLimit": "1", "sessionLimits.behavior": "Terminate oldest session"},
   "clients": [{"clientId": "app", "secret": "app-secret",
     "attributes": {"backchannel.logout.url": "%[1]s/backchannel"}}]},
  {"realm": "capped",
   "attributes": {"sessionLimits.realmLimit": "1", "sessionLimits.behavior": "Deny new session",
     "sessionLimits.errorMessage": "The licence allows one session"},
   "clients": [{"clientId": "app", "secret": "app-secret"}]}
]`

// Two sessiond processes on one PostgreSQL schema, 20 logins at once split across them:
// against a user's limit of one with Terminate oldest session, exactly one session is left
// and every other was ended with a back-channel logout to its client; against a realm's
// limit of one with Deny new session, exactly one login got in and the rest were refused
// with the realm's message. The admin API and CLI show the counts.
func TestSessionLimits_twoDaemonsOnOnePostgreSQL(t *testing.T) {
	t.Parallel()
	const logins = 20
	receiver := &logoutReceiver{}
	rp := httptest.NewServer(receiver)
	defer rp.Close()
	realms := func(t *testing.T) string {
		realmFile := filepath.Join(t.TempDir(), "limits.json")
		if err := os.WriteFile(realmFile, []byte(fmt.Sprintf(sessionLimitRealmsJSON, rp.URL)), 0o600); err != nil {
			t.Fatal(err)
		}
		return realmFile
	}
	a, b, _ := startTwoNodesWith(t, realms, "--spi-revocation-push-provider=adapter")
	ca, cb := newAPIClient(a.base, 20*time.Second), newAPIClient(b.base, 20*time.Second)
	defer ca.close()
	defer cb.close()
	// The realms' keys are made by a first login, before the race.
	for _, realm := range []string{"one", "capped"} {
		if r, err := ca.frontendIn(realm, "/sessions", map[string]any{"client_id": "app", "user_id": "warm-up"}); err != nil || r.status != http.StatusCreated {
			t.Fatalf("first login in %s: %v %v", realm, r, err)
		}
	}
	race := func(realm string, user func(i int) string) []*apiResult {
		out := make(chan *apiResult, logins)
		start := make(chan struct{})
		for i := range logins {
			c := ca
			if i%2 == 1 {
				c = cb
			}
			go func() {
				<-start
				r, err := c.frontendIn(realm, "/sessions", map[string]any{"client_id": "app", "user_id": user(i), "username": user(i)})
				if err != nil {
					r = &apiResult{body: err.Error()}
				}
				out <- r
			}()
		}
		close(start)
		var all []*apiResult
		for range logins {
			all = append(all, <-out)
		}
		return all
	}
	limits := func(realm, query string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, a.base+"/admin/realms/"+realm+"/session-limits"+query, nil)
		req.Header.Set("Authorization", "Bearer "+persistAdmin)
		r, err := ca.do(req)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("GET session-limits: %v %v", r, err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	online := func(v map[string]any, scope string) float64 {
		m, _ := v[scope].(map[string]any)
		n, _ := m["online"].(float64)
		return n
	}

	t.Run("user limit, terminate oldest", func(t *testing.T) {
		results := race("one", func(int) string { return "alice" })
		var created []string
		for _, r := range results {
			switch r.status {
			case http.StatusCreated:
				created = append(created, r.SessionID)
			case http.StatusServiceUnavailable: // waited out the lease on a loaded machine: retry
			default:
				t.Errorf("login answered %d %s", r.status, r.body)
			}
		}
		t.Logf("%d of %d logins created a session; the rest waited out the lease (503)", len(created), logins)
		v := limits("one", "?userId=alice")
		if n := online(v, "user"); n != 1 || len(created) == 0 {
			t.Fatalf("alice has %v live sessions after %d logins (%d created), want exactly 1: %v", n, logins, len(created), v)
		}
		// Every created session but the one left was ended, and its client told.
		want := len(created) - 1
		var told int
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			got := receiver.sids(t)
			told = 0
			for _, sid := range created {
				if got[sid] {
					told++
				}
			}
			if told >= want {
				break
			}
		}
		if told != want {
			t.Errorf("%d of the %d ended sessions had a back-channel logout, want every one", told, want)
		}
	})

	t.Run("realm limit, deny", func(t *testing.T) {
		// The warm-up login holds the one place: log it out first.
		req, _ := http.NewRequest(http.MethodPost, a.base+"/admin/realms/capped/logout-all", nil)
		req.Header.Set("Authorization", "Bearer "+persistAdmin)
		if r, err := ca.do(req); err != nil || r.status != http.StatusOK {
			t.Fatalf("logout-all: %v %v", r, err)
		}
		results := race("capped", func(i int) string { return fmt.Sprintf("user-%d", i) })
		count := map[int]int{}
		for _, r := range results {
			count[r.status]++
			if r.status == http.StatusConflict && (r.Error != "session_limit_exceeded" || !strings.Contains(r.body, "The licence allows one session")) {
				t.Errorf("refusal %s, want session_limit_exceeded with the realm's message", r.body)
			}
		}
		if count[http.StatusCreated] != 1 || count[http.StatusCreated]+count[http.StatusConflict]+count[http.StatusServiceUnavailable] != logins {
			t.Errorf("answers %v, want one 201 and the rest 409 (or 503 when a lease wait ran out)", count)
		}
		if n := online(limits("capped", ""), "realm"); n != 1 {
			t.Errorf("%v live sessions in the realm, want exactly 1", n)
		}
	})

	t.Run("the CLI shows the limits and counts", func(t *testing.T) {
		code, out, errOut := adminCLI(t, persistAdmin, "limits", "--url="+a.base, "--realm=one", "--user=alice")
		if code != 0 {
			t.Fatalf("sessiond admin limits exited %d: %s%s", code, errOut, out)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
		for _, want := range []string{"userRealmLimit 1 Terminate oldest session", "clientLimit none Terminate oldest session", "user alice 1 0"} {
			if !slices.Contains(lines, want) {
				t.Errorf("sessiond admin limits printed\n%s\nwant a line with %q", out, want)
			}
		}
	})
}

// sids are the sessions the receiver got a logout token of.
func (rc *logoutReceiver) sids(t *testing.T) map[string]bool {
	rc.mu.Lock()
	tokens := slices.Clone(rc.tokens)
	rc.mu.Unlock()
	out := map[string]bool{}
	for _, tok := range tokens {
		var claims struct {
			Sid string `json:"sid"`
		}
		if json.Unmarshal(decodeSegment(t, tok, 1), &claims) == nil {
			out[claims.Sid] = true
		}
	}
	return out
}

// TestOperatorGuideSessionLimits runs docs/operator-guide.md's session-limits example as
// written: its realm file under start-dev, two logins of alice (the second refused), and
// `sessiond admin limits`. Only the port and the binary's path differ.
func TestOperatorGuideSessionLimits(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "limited.json"), []byte(guideBlock(t, guide, "guide:limits-realm")), 0o600); err != nil {
		t.Fatal(err)
	}
	const frontend, adminToken = "fe-guide-limits", "admin-guide-limits"
	d := startDaemonIn(t, work, "--http-port=0", "--realm-file=limited.json", "--frontend-token="+frontend, "--admin-token="+adminToken)
	try := guideBlock(t, guide, "guide:limits-try")
	try = strings.ReplaceAll(try, "http://localhost:8080", d.base)
	try = strings.ReplaceAll(try, "./sessiond ", sessiondBinary(t)+" ")
	out := guideRun(t, work, "export SESSIOND_FRONTEND_TOKEN="+frontend+" SESSIOND_ADMIN_TOKEN="+adminToken+"\n"+try)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{"201", "409", "userRealmLimit 1 Deny new session", "clientLimit 1000 Terminate oldest session", "user alice 1 0"} {
		if !slices.Contains(lines, want) {
			t.Errorf("the guide's example printed\n%s\nwant a line %q", out, want)
		}
	}
}
