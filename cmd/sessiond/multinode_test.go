package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

// Two sessiond processes on one PostgreSQL schema: each keeps sessions in its own memory
// (core/cache) and learns of the other's writes through the store's LISTEN/NOTIFY feed.

const (
	// rotateRealm rotates refresh tokens with no leeway: no reuse, no grace window.
	rotateRealm = "rotate"
	// invalidationBound is how soon a logout on one node must be seen by the other.
	invalidationBound = time.Second
	// pollEvery is how often the other node is asked while waiting for it to see a change.
	pollEvery = 20 * time.Millisecond
)

const rotateRealmJSON = `{
  "realm": "rotate",
  "ssoSessionIdleTimeout": 1800,
  "ssoSessionMaxLifespan": 36000,
  "accessTokenLifespan": 300,
  "revokeRefreshToken": true,
  "refreshTokenMaxReuse": 0,
  "refreshTokenRotationGraceWindow": 0,
  "clients": [
    {
      "clientId": "app",
      "secret": "app-secret",
      "publicClient": false,
      "redirectUris": ["http://127.0.0.1:3000/*"]
    }
  ]
}
`

// writeMultinodeRealms writes one realm file with the persistence tests' realm (no
// rotation, offline tokens allowed) and rotateRealm, the same client in both.
func writeMultinodeRealms(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "multinode-realms.json")
	if err := os.WriteFile(path, []byte("["+persistRealmJSON+","+rotateRealmJSON+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// oidcIn posts a form to a realm's OpenID Connect endpoint as the client "app".
func (c *apiClient) oidcIn(realm, endpoint string, form url.Values) (*apiResult, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+"/realms/"+realm+"/protocol/openid-connect/"+endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(persistClient, persistSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// frontendIn posts JSON to a realm's front-end API with the front-end credential.
func (c *apiClient) frontendIn(realm, path string, body map[string]any) (*apiResult, error) {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, c.base+"/realms/"+realm+path, strings.NewReader(string(raw)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.frontendToken())
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

func (c *apiClient) refreshIn(realm, refreshToken string) (*apiResult, error) {
	return c.oidcIn(realm, "token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// logoutIn is the logout endpoint: 204 when the refresh token's session has ended.
func (c *apiClient) logoutIn(realm, refreshToken string) (*apiResult, error) {
	return c.oidcIn(realm, "logout", url.Values{"refresh_token": {refreshToken}})
}

// introspectIn reports whether the realm calls tok active; r is the answer.
func (c *apiClient) introspectIn(realm, tok string) (active bool, r *apiResult, err error) {
	r, err = c.oidcIn(realm, "token/introspect", url.Values{"token": {tok}})
	if err != nil || r.status != http.StatusOK {
		return false, r, err
	}
	var v struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		return false, r, fmt.Errorf("introspection answer %q: %v", r.body, err)
	}
	return v.Active, r, nil
}

// mustOpenIn opens an online session for user in realm.
func mustOpenIn(t *testing.T, c *apiClient, realm, user string) *apiResult {
	t.Helper()
	r, err := c.frontendIn(realm, "/sessions", map[string]any{"client_id": persistClient, "user_id": user + "-id", "username": user, "ip_address": "127.0.0.1"})
	if err != nil {
		t.Fatalf("open session for %s in %s: %v", user, realm, err)
	}
	if r.status != http.StatusCreated || r.RefreshToken == "" || r.SessionID == "" {
		t.Fatalf("open session for %s in %s = %s, want 201 with a session id and a refresh token", user, realm, r.summary())
	}
	return r
}

// mustRefreshIn refreshes and wants 200 with new tokens for the session sid.
func mustRefreshIn(t *testing.T, c *apiClient, node, realm, refreshToken, sid string) *apiResult {
	t.Helper()
	r, err := c.refreshIn(realm, refreshToken)
	if err != nil {
		t.Fatalf("refresh on %s: %v", node, err)
	}
	if r.status != http.StatusOK || r.AccessToken == "" || r.RefreshToken == "" {
		t.Fatalf("refresh of session %s on %s = %s, want 200 with tokens", sid, node, r.summary())
	}
	if r.SessionState != sid {
		t.Fatalf("refresh on %s answered session %q, want %q", node, r.SessionState, sid)
	}
	return r
}

// wantRefused checks that a refresh answered 400 invalid_grant.
func wantRefused(t *testing.T, r *apiResult, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("%s = %s, want 400 invalid_grant", what, r.summary())
	}
}

// wantActive checks what introspection on one node says about tok.
func wantActive(t *testing.T, c *apiClient, node, realm, tok string, want bool) {
	t.Helper()
	active, r, err := c.introspectIn(realm, tok)
	if err != nil {
		t.Fatalf("introspect on %s: %v", node, err)
	}
	if r.status != http.StatusOK || active != want {
		t.Fatalf("introspection on %s = %s, want 200 active=%v", node, r.summary(), want)
	}
}

// untilSeen asks probe every pollEvery until it reports done, for at most limit. It
// returns how long after since the first done answer came back, whether one did, the
// number of probes and the last answer.
func untilSeen(since time.Time, limit time.Duration, probe func() (done bool, answer string)) (time.Duration, bool, int, string) {
	deadline := since.Add(limit)
	var last string
	for n := 1; ; n++ {
		done, answer := probe()
		last = answer
		if done {
			return time.Since(since), true, n, last
		}
		if time.Now().After(deadline) {
			return time.Since(since), false, n, last
		}
		time.Sleep(pollEvery)
	}
}

// TestTwoNodesShareSessions runs two sessiond processes on one PostgreSQL schema, with
// different node ids and the same hostname, realms and credentials, so that a token one
// node issues verifies on the other. A session opened on one node is refreshed on the
// other (read from the store, then from that node's cache); a logout on one node must
// be seen by the other within invalidationBound, through the change feed; a rotated
// refresh token must not be reusable on the other node; and an offline session outlives
// the logout of its online session on either node.
func TestTwoNodesShareSessions(t *testing.T) {
	// Realm keys are created by the first node that issues a token of the realm (A, below)
	// and read from the store by the other.
	a, b, dbURL := startTwoNodes(t)
	for name, d := range map[string]*daemon{"node-a": a, "node-b": b} {
		// Until its feed has subscribed a node caches nothing; the test is about the cache.
		if !d.waitLog(`session change feed subscribed`, 15*time.Second) {
			t.Fatalf("%s: the session change feed did not subscribe within 15s:\n%s", name, d.log())
		}
		if !strings.Contains(d.log(), "node-id="+name) {
			t.Fatalf("%s did not start with node id %s:\n%s", name, name, d.log())
		}
	}
	ca, cb := newAPIClient(a.base, 10*time.Second), newAPIClient(b.base, 10*time.Second)
	defer ca.close()
	defer cb.close()
	nodes := map[string]*apiClient{"A": ca, "B": cb}
	defer func() {
		// The latencies above mean something only if the feed held throughout: a broken feed
		// empties the cache, and every read goes to the store until it resubscribes.
		for name, d := range map[string]*daemon{"node-a": a, "node-b": b} {
			if strings.Contains(d.log(), "session change feed broke") {
				t.Errorf("%s: the session change feed broke during the test:\n%s", name, d.log())
			}
		}
	}()

	t.Run("refresh on the other node, then logout seen there", func(t *testing.T) {
		// The control first: a session that B has cached, deleted in the database behind
		// both nodes' backs (no NOTIFY), is still active on B. So B answers from memory,
		// and what ends the session on B below is the change feed, not a store read.
		ctl := mustOpen(t, ca, "control", false)
		r := mustRefreshIn(t, cb, "B", persistRealm, ctl.RefreshToken, ctl.SessionID)
		r = mustRefreshIn(t, cb, "B", persistRealm, r.RefreshToken, ctl.SessionID)
		db, err := sql.Open("postgres", dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Exec("DELETE FROM user_session WHERE realm_id = $1 AND id = $2 AND NOT offline", persistRealm, ctl.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("deleting control session %s in the database removed %d rows, want 1", ctl.SessionID, n)
		}
		wantActive(t, cb, "B (control: row deleted without a NOTIFY, B still holds it)", persistRealm, r.AccessToken, true)
		// A write reaches the store, which no longer has the session; B forgets its copy.
		fresh, err := cb.refresh(r.RefreshToken)
		wantRefused(t, fresh, err, "refresh on B of the control session deleted in the database")
		wantActive(t, cb, "B (control, after its refresh failed)", persistRealm, r.AccessToken, false)
		t.Logf("control: B kept answering active=true for session %s after its row was deleted without a NOTIFY, until a refresh on B failed in the store (%s)", ctl.SessionID, fresh.summary())

		// Logout on A, introspection polled on B; several rounds, for a spread of latencies.
		const rounds = 5
		var latencies []time.Duration
		for i := range rounds {
			s := mustOpen(t, ca, fmt.Sprintf("alice-%d", i), false)
			r1 := mustRefreshIn(t, cb, "B", persistRealm, s.RefreshToken, s.SessionID)  // B reads the store, caches it
			r2 := mustRefreshIn(t, cb, "B", persistRealm, r1.RefreshToken, s.SessionID) // B answers from its cache
			wantActive(t, cb, "B", persistRealm, r2.AccessToken, true)
			wantActive(t, ca, "A", persistRealm, r2.AccessToken, true)

			sent := time.Now()
			out, err := ca.logoutIn(persistRealm, s.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if out.status != http.StatusNoContent {
				t.Fatalf("logout on A = %s, want 204", out.summary())
			}
			acked := time.Now()
			took, seen, probes, last := untilSeen(acked, 5*time.Second, func() (bool, string) {
				active, r, err := cb.introspectIn(persistRealm, r2.AccessToken)
				if err != nil {
					return false, err.Error()
				}
				return r.status == http.StatusOK && !active, r.summary()
			})
			if !seen {
				t.Fatalf("round %d: introspection on B still not inactive %v after the logout on A answered 204 (%d probes); last answer %s", i, took, probes, last)
			}
			t.Logf("round %d: the access token of session %s inactive on B %v after A's logout answered 204 (%v after it was sent; logout took %v; %d probe(s))",
				i, s.SessionID, took.Round(time.Microsecond), (acked.Sub(sent) + took).Round(time.Microsecond), acked.Sub(sent).Round(time.Microsecond), probes)
			latencies = append(latencies, took)
			if took >= invalidationBound {
				t.Errorf("round %d: node B saw A's logout of session %s only after %v, want under %v", i, s.SessionID, took, invalidationBound)
			}
			// The fresh refresh token B handed out before the logout is refused on B and A.
			for _, n := range []string{"B", "A"} {
				r, err := nodes[n].refresh(r2.RefreshToken)
				wantRefused(t, r, err, fmt.Sprintf("round %d: refresh on %s, after the logout on A, of the refresh token B issued before it", i, n))
			}
		}
		slices.Sort(latencies)
		t.Logf("logout on A → introspection inactive on B: min %v, median %v, max %v over %d rounds (polled every %v)",
			latencies[0].Round(time.Microsecond), latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond), rounds, pollEvery)

		// The refresh, polled on its own: a session B has cached, logged out on A, and the
		// fresh refresh token obtained on B before the logout presented to B every 20ms.
		s := mustOpen(t, ca, "bob", false)
		r1 := mustRefreshIn(t, cb, "B", persistRealm, s.RefreshToken, s.SessionID)
		r2 := mustRefreshIn(t, cb, "B", persistRealm, r1.RefreshToken, s.SessionID)
		out, err := ca.logoutIn(persistRealm, s.RefreshToken)
		if err != nil || out.status != http.StatusNoContent {
			t.Fatalf("logout on A = %s %v, want 204", out.summary(), err)
		}
		acked := time.Now()
		took, seen, probes, last := untilSeen(acked, 5*time.Second, func() (bool, string) {
			r, err := cb.refresh(r2.RefreshToken)
			if err != nil {
				return false, err.Error()
			}
			return r.status == http.StatusBadRequest && r.Error == "invalid_grant", r.summary()
		})
		t.Logf("logout on A → refresh refused on B after %v (%d probe(s)): %s", took.Round(time.Microsecond), probes, last)
		if !seen || took >= invalidationBound {
			t.Errorf("a refresh on B of session %s was still not refused %v after the logout on A (want under %v); last answer %s", s.SessionID, took, invalidationBound, last)
		}
	})

	t.Run("rotated refresh token is not reusable on the other node", func(t *testing.T) {
		for _, dir := range []struct{ rotate, reuse string }{{"A", "B"}, {"B", "A"}} {
			rot, reu := nodes[dir.rotate], nodes[dir.reuse]
			s := mustOpenIn(t, ca, rotateRealm, "dave-"+dir.rotate)
			// Both nodes refresh once, so that each has the session cached with a lineage
			// in which the token `old` is current.
			r1 := mustRefreshIn(t, reu, dir.reuse, rotateRealm, s.RefreshToken, s.SessionID)
			r2 := mustRefreshIn(t, rot, dir.rotate, rotateRealm, r1.RefreshToken, s.SessionID)
			old := r2.RefreshToken
			// reu reads (and caches) the lineage with old current; its own copy, in which r1
			// was current, goes when the feed brings rot's rotation.
			took, seen, _, last := untilSeen(time.Now(), invalidationBound, func() (bool, string) {
				active, r, err := reu.introspectIn(rotateRealm, old)
				if err != nil {
					return false, err.Error()
				}
				return active, r.summary()
			})
			if !seen {
				t.Fatalf("the refresh token %s handed out was not active on %s within %v: %s", dir.rotate, dir.reuse, took, last)
			}
			// Rotate on one node ...
			r3 := mustRefreshIn(t, rot, dir.rotate, rotateRealm, old, s.SessionID)
			// ... and reuse the rotated token on the other at once, with no grace window.
			r, err := reu.refreshIn(rotateRealm, old)
			wantRefused(t, r, err, fmt.Sprintf("reuse on %s of a refresh token rotated on %s", dir.reuse, dir.rotate))
			t.Logf("rotated on %s, reused on %s: %s", dir.rotate, dir.reuse, r.summary())
			// Older tokens are refused as well, and the current one still works on either node.
			r, err = reu.refreshIn(rotateRealm, s.RefreshToken)
			wantRefused(t, r, err, fmt.Sprintf("reuse on %s of the first refresh token of the lineage", dir.reuse))
			r4 := mustRefreshIn(t, reu, dir.reuse, rotateRealm, r3.RefreshToken, s.SessionID)
			mustRefreshIn(t, rot, dir.rotate, rotateRealm, r4.RefreshToken, s.SessionID)
		}

		// Both nodes present the same current token at once: exactly one may rotate it.
		const races = 10
		for i := range races {
			s := mustOpenIn(t, ca, rotateRealm, fmt.Sprintf("erin-%d", i))
			r1 := mustRefreshIn(t, cb, "B", rotateRealm, s.RefreshToken, s.SessionID)
			r2 := mustRefreshIn(t, ca, "A", rotateRealm, r1.RefreshToken, s.SessionID) // both nodes have read it
			var wg sync.WaitGroup
			answers := map[string]*apiResult{}
			errs := map[string]error{}
			var mu sync.Mutex
			start := make(chan struct{})
			for n, c := range nodes {
				wg.Go(func() {
					<-start
					r, err := c.refreshIn(rotateRealm, r2.RefreshToken)
					mu.Lock()
					answers[n], errs[n] = r, err
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for n := range nodes {
				if errs[n] != nil {
					t.Fatalf("race %d: refresh on %s: %v", i, n, errs[n])
				}
				switch r := answers[n]; {
				case r.status == http.StatusOK:
					ok++
				case r.status == http.StatusBadRequest && r.Error == "invalid_grant":
				default:
					t.Errorf("race %d: refresh on %s = %s, want 200 or 400 invalid_grant", i, n, r.summary())
				}
			}
			if ok != 1 {
				t.Errorf("race %d: one refresh token presented on A and B at once rotated %d times, want exactly 1 (A: %s; B: %s)",
					i, ok, answers["A"].summary(), answers["B"].summary())
			}
		}
	})

	t.Run("offline session survives logout on either node", func(t *testing.T) {
		for _, at := range []string{"A", "B"} {
			// An offline login on A stores an online and an offline session with one id;
			// the login hands out only an offline token, so the front-end attaches the
			// client again on B, without offline_access, for an online refresh token.
			off := mustOpen(t, ca, "carol-"+at, true)
			on, err := cb.frontendIn(persistRealm, "/sessions/"+off.SessionID+"/clients", map[string]any{"client_id": persistClient, "scope": "openid"})
			if err != nil {
				t.Fatal(err)
			}
			if on.status != http.StatusCreated || on.RefreshToken == "" || tokenType(t, on.RefreshToken) != "Refresh" {
				t.Fatalf("attach to session %s on B = %s, want 201 with an online refresh token", off.SessionID, on.summary())
			}
			// Both nodes read (and cache) the offline session before the logout.
			for _, n := range []string{"A", "B"} {
				mustRefreshIn(t, nodes[n], n, persistRealm, off.RefreshToken, off.SessionID)
			}
			wantActive(t, ca, "A", persistRealm, on.AccessToken, true)

			out, err := nodes[at].logoutIn(persistRealm, on.RefreshToken)
			if err != nil || out.status != http.StatusNoContent {
				t.Fatalf("logout of the online session on %s = %s %v, want 204", at, out.summary(), err)
			}
			acked := time.Now()
			for _, n := range []string{"A", "B"} {
				c := nodes[n]
				took, seen, _, last := untilSeen(acked, 5*time.Second, func() (bool, string) {
					active, r, err := c.introspectIn(persistRealm, on.AccessToken)
					if err != nil {
						return false, err.Error()
					}
					return r.status == http.StatusOK && !active, r.summary()
				})
				if !seen || took >= invalidationBound {
					t.Errorf("logout on %s: the online access token was still not inactive on %s after %v (want under %v); last answer %s", at, n, took, invalidationBound, last)
				}
				r, err := c.refresh(on.RefreshToken)
				wantRefused(t, r, err, fmt.Sprintf("refresh on %s of the online token logged out on %s", n, at))
				r = mustRefreshIn(t, c, n, persistRealm, off.RefreshToken, off.SessionID)
				if typ := tokenType(t, r.RefreshToken); typ != "Offline" {
					t.Errorf("refresh on %s of the offline token after the logout on %s handed out a %q token, want Offline", n, at, typ)
				}
				wantActive(t, c, n, persistRealm, r.AccessToken, true)
			}
			t.Logf("logout of the online session %s on %s: offline session still refreshes on A and B", off.SessionID, at)
		}
	})
}

// startTwoNodes starts two sessiond processes, node-a and node-b, on one fresh PostgreSQL
// schema (dbURL) with the multi-node realms; one after the other, so that the second finds
// the schema migrated.
func startTwoNodes(t *testing.T) (a, b *daemon, dbURL string) {
	t.Helper()
	sessiondBinary(t)   // built before any clock starts
	dbURL = pgSchema(t) // registered first: dropped after both daemons have stopped
	realmFile := writeMultinodeRealms(t)
	nodeArgs := func(id string) []string {
		return append(persistArgs(realmFile),
			"--spi-user-sessions-provider=postgres",
			"--spi-user-sessions-postgres-url="+dbURL,
			"--node-id="+id)
	}
	return startDaemonIn(t, t.TempDir(), nodeArgs("node-a")...), startDaemonIn(t, t.TempDir(), nodeArgs("node-b")...), dbURL
}
