package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// `sessiond admin …` against a running sessiond on PostgreSQL, with the real not-before
// policies and the Keycloak adapter push to a test receiver.

const adminViewer = "viewer-persist-token"

// adminRealmJSON is the persist realm with a second client whose admin URL is the test's
// receiver (%s), so that pushes have somewhere to go.
const adminRealmJSON = `{
  "realm": "persist",
  "clients": [
    {"clientId": "app", "secret": "app-secret", "redirectUris": ["http://127.0.0.1:3000/*"],
     "optionalClientScopes": ["offline_access"]},
    {"id": "9d0c3c4e-portal", "clientId": "portal", "secret": "portal-secret", "adminUrl": "%s"}
  ]
}
`

// receiver is a relying party's admin endpoint: it takes adapter actions and counts them.
type receiver struct {
	mu    sync.Mutex
	paths []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.paths = append(rc.paths, r.URL.Path)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) got(path string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, p := range rc.paths {
		if strings.HasSuffix(p, path) {
			n++
		}
	}
	return n
}

// adminCLI runs `sessiond admin args…` with the credential in SESSIOND_ADMIN_TOKEN ("" for
// none) and returns its exit code, standard output and standard error.
func adminCLI(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(sessiondBinary(t), append([]string{"admin"}, args...)...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if token != "" {
		cmd.Env = append(cmd.Env, "SESSIOND_ADMIN_TOKEN="+token)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

func TestAdminCLI(t *testing.T) {
	t.Parallel()
	dbURL := pgSchema(t)
	rc := &receiver{}
	portal := httptest.NewServer(rc)
	t.Cleanup(portal.Close)
	realmFile := filepath.Join(t.TempDir(), "admin-realm.json")
	if err := os.WriteFile(realmFile, []byte(strings.Replace(adminRealmJSON, "%s", portal.URL, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonIn(t, t.TempDir(), append(persistArgs(realmFile),
		"--admin-viewer-token="+adminViewer,
		"--spi-user-sessions-provider=postgres", "--spi-user-sessions-postgres-url="+dbURL,
		"--spi-revocation-push-provider=adapter")...)
	c := newAPIClient(d.base, 10*time.Second)
	defer c.close()
	url := "--url=" + d.base
	admin := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out, errOut := adminCLI(t, persistAdmin, append(args, url, "--realm="+persistRealm)...)
		if code != 0 {
			t.Fatalf("sessiond admin %v exited %d: %s%s", args, code, errOut, out)
		}
		return out
	}

	alice1 := mustOpen(t, c, "alice", false)
	alice2 := mustOpen(t, c, "alice", false)
	bob := mustOpen(t, c, "bob", false)
	carol := mustOpen(t, c, "carol", true) // an online and an offline session

	t.Run("stats", func(t *testing.T) {
		out := admin(t, "stats")
		if !regexpMatch(`(?m)^app\s+app\s+4\s+1\s*$`, out) {
			t.Errorf("stats table:\n%s\nwant a row: app app 4 1", out)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		out := admin(t, "sessions", "--user=alice-id")
		for _, id := range []string{alice1.SessionID, alice2.SessionID} {
			if !strings.Contains(out, id) {
				t.Errorf("alice's sessions table lacks %s:\n%s", id, out)
			}
		}
		if strings.Contains(out, bob.SessionID) || !strings.Contains(out, "2 sessions") {
			t.Errorf("alice's sessions table:\n%s", out)
		}
		// Issue 19, point 8: --user takes a username too, looked up in the realm's sessions.
		code, out, errOut := adminCLI(t, persistAdmin, "sessions", "--user=alice", url, "--realm="+persistRealm)
		if code != 0 || !strings.Contains(out, alice1.SessionID) || !strings.Contains(out, alice2.SessionID) || !strings.Contains(out, "2 sessions") {
			t.Errorf("sessions --user=alice (a username) exited %d:\n%s%s\nwant alice's two sessions", code, out, errOut)
		}
		if !strings.Contains(errOut, `username "alice" is user id alice-id`) {
			t.Errorf("sessions --user=alice said %q on stderr, want which user id it took", errOut)
		}
		var reps []struct {
			ID, UserID string
			Clients    map[string]string
		}
		if err := json.Unmarshal([]byte(admin(t, "sessions", "--client=app", "--offline", "--json")), &reps); err != nil {
			t.Fatal(err)
		}
		if len(reps) != 1 || reps[0].ID != carol.SessionID || reps[0].UserID != "carol-id" || reps[0].Clients["app"] != "app" {
			t.Errorf("offline sessions of app: %+v, want carol's", reps)
		}
		// The realm's sessions, two to a page: the CLI follows the next links.
		out = admin(t, "sessions", "--max=2")
		for _, g := range []*apiResult{alice1, alice2, bob, carol} {
			if !strings.Contains(out, g.SessionID) {
				t.Errorf("the realm's sessions lack %s:\n%s", g.SessionID, out)
			}
		}
		if !strings.Contains(out, "4 sessions") {
			t.Errorf("the realm's sessions:\n%s\nwant 4", out)
		}
	})
	t.Run("logout", func(t *testing.T) {
		admin(t, "logout", "--session="+alice1.SessionID)
		wantRefresh(t, c, alice1, false)
		wantRefresh(t, c, alice2, true)
		admin(t, "logout", "--user=bob") // a username, as for sessions
		wantRefresh(t, c, bob, false)
	})
	t.Run("logout-all keeps offline sessions", func(t *testing.T) {
		out := admin(t, "logout-all")
		if !strings.Contains(out, "signed out") || !regexpMatch(regexpQuote(portal.URL)+`\s+ok`, out) {
			t.Errorf("logout-all printed:\n%s\nwant the portal's admin URL ok", out)
		}
		wantRefresh(t, c, alice2, false)
		carol = wantRefresh(t, c, carol, true)
		if rc.got("/k_logout") == 0 {
			t.Error("the portal received no k_logout")
		}
		if out := admin(t, "stats"); !regexpMatch(`(?m)^app\s+app\s+0\s+1\s*$`, out) {
			t.Errorf("stats after logout-all:\n%s\nwant app 0 1", out)
		}
	})
	t.Run("revoke --now --push", func(t *testing.T) {
		// Not-before has a resolution of a second: let the token carol holds be older.
		time.Sleep(1100 * time.Millisecond)
		out := admin(t, "revoke", "--now", "--push")
		if !strings.Contains(out, "not-before of realm persist set to") || !regexpMatch(regexpQuote(portal.URL)+`\s+ok`, out) {
			t.Errorf("revoke --now --push printed:\n%s", out)
		}
		if rc.got("/k_push_not_before") == 0 {
			t.Error("the portal received no k_push_not_before")
		}
		wantRefresh(t, c, carol, false)
		fresh := mustOpen(t, c, "dave", true)
		wantRefresh(t, c, fresh, true)

		var nb struct{ NotBefore int64 }
		if err := json.Unmarshal([]byte(admin(t, "revoke", "--clear", "--json")), &nb); err != nil || nb.NotBefore != 0 {
			t.Errorf("revoke --clear --json: %+v %v, want notBefore 0", nb, err)
		}
		if out := admin(t, "revoke", "--client=portal", "--at=2025-01-02T03:04:05Z"); !strings.Contains(out, "not-before of client portal set to 2025-01-02T03:04:05Z") {
			t.Errorf("revoke --client --at printed:\n%s", out)
		}
	})
	t.Run("deliveries", func(t *testing.T) {
		var ds []struct{ ID, ClientID, Kind, State string }
		if err := json.Unmarshal([]byte(admin(t, "deliveries", "--json")), &ds); err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		for _, d := range ds {
			if d.ClientID != "portal" || d.State != "delivered" {
				t.Errorf("delivery %+v, want the portal's, delivered", d)
			}
			kinds[d.Kind] = true
		}
		if !kinds["PUSH_NOT_BEFORE"] || !kinds["LOGOUT"] {
			t.Errorf("deliveries %+v, want a not-before push and a logout", ds)
		}
		if out := admin(t, "deliveries", "--state=pending"); !strings.HasPrefix(out, "ID") || strings.Count(out, "\n") != 2 ||
			!strings.HasSuffix(out, "\n0 deliveries\n") {
			t.Errorf("pending deliveries:\n%s\nwant the header and 0 deliveries", out)
		}
	})
	t.Run("keys rotate", func(t *testing.T) {
		dave := mustOpen(t, c, "dave", false)
		before := admin(t, "keys")
		if !regexpMatch(`(?m)^\S+\s+ES256\s+EC\s+ACTIVE\s`, before) || !regexpMatch(`(?m)^\S+\s+HS512\s+OCT\s+ACTIVE\s`, before) ||
			!strings.HasSuffix(before, "\n2 keys\n") {
			t.Errorf("keys:\n%s\nwant an active ES256 and an active HS512 key", before)
		}
		after := admin(t, "keys", "rotate")
		if strings.Count(after, "PASSIVE") != 2 || strings.Count(after, " ACTIVE ") != 2 || !strings.HasSuffix(after, "\n4 keys\n") {
			t.Errorf("keys after rotation:\n%s\nwant two active and two passive", after)
		}
		// Sessions from before the rotation go on.
		mustRefreshIn(t, c, "the node", persistRealm, dave.RefreshToken, dave.SessionID)
	})
	t.Run("action-token", func(t *testing.T) {
		out := admin(t, "action-token", "--user=erin-id", "--action=execute-actions", "--lifespan=2h", "--required-actions=UPDATE_PASSWORD,VERIFY_EMAIL")
		tok, rest, _ := strings.Cut(out, "\n")
		if !strings.Contains(rest, "execute-actions token for user erin-id") || !strings.Contains(rest, "lifespan 2h0m0s, request") {
			t.Errorf("action-token printed:\n%s", out)
		}
		r, err := c.frontendIn(persistRealm, "/action-tokens/consume", map[string]any{"token": tok})
		if err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"required_actions":["UPDATE_PASSWORD","VERIFY_EMAIL"]`) {
			t.Errorf("redeem the CLI's token: %v %s", err, r.summary())
		}
		var m struct {
			ExpiresIn      int64  `json:"expires_in"`
			LifespanSource string `json:"lifespan_source"`
		}
		if err := json.Unmarshal([]byte(admin(t, "action-token", "--user=erin-id", "--action=verify-email", "--json")), &m); err != nil ||
			m.ExpiresIn != 43200 || m.LifespanSource != "admin-initiated-default" {
			t.Errorf("action-token --json: %+v %v, want Default Admin-Initiated Action Lifespan", m, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		free := freeAddr(t)
		for _, tc := range []struct {
			name  string
			token string
			args  []string
			code  int
			want  string
		}{
			{"wrong credential", "not-it", []string{"stats", url}, 1, "refused the credential (401)"},
			{"viewer acting", adminViewer, []string{"logout-all", url}, 1, "may not do that (403)"},
			{"viewer rotating keys", adminViewer, []string{"keys", "rotate", url}, 1, "may not do that (403)"},
			{"viewer minting an action token", adminViewer, []string{"action-token", "--user=u", "--action=verify-email", url}, 1, "may not do that (403)"},
			{"action token without a user", persistAdmin, []string{"action-token", "--action=verify-email", url}, 2, "--user and --action are required"},
			{"action token beyond 30 days", persistAdmin, []string{"action-token", "--user=u", "--action=verify-email", "--lifespan=721h", url}, 1, "from 1 to 2592000"},
			{"front-end credential", persistFrontend, []string{"stats", url}, 1, "(403)"},
			{"unknown realm", persistAdmin, []string{"stats", url, "--realm=nowhere"}, 1, "not found (404)"},
			{"unknown session", persistAdmin, []string{"logout", "--session=nosuch", url}, 1, "not found (404)"},
			{"unknown client", persistAdmin, []string{"sessions", "--client=nosuch", url}, 1, `no client "nosuch"`},
			{"nobody listening", persistAdmin, []string{"stats", "--url=http://" + free}, 1, "connection refused"},
			{"no credential", "", []string{"stats", url}, 2, "SESSIOND_ADMIN_TOKEN"},
			{"no realm", persistAdmin, []string{"stats"}, 2, "--realm is required"},
			{"two policies", persistAdmin, []string{"revoke", "--now", "--clear", url}, 2, "exactly one of"},
			{"bad time", persistAdmin, []string{"revoke", "--at=yesterday", url}, 2, "RFC 3339"},
			{"unknown command", persistAdmin, []string{"reboot"}, 2, "unknown command"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := tc.args
				if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--realm") }) && tc.name != "no realm" && tc.name != "unknown command" {
					args = append(args, "--realm="+persistRealm)
				}
				code, out, errOut := adminCLI(t, tc.token, args...)
				if code != tc.code || !strings.Contains(errOut, tc.want) {
					t.Errorf("exit %d, stderr %q (stdout %q); want exit %d and %q", code, errOut, out, tc.code, tc.want)
				}
				for _, secret := range []string{persistAdmin, adminViewer, persistFrontend} {
					if strings.Contains(errOut+out, secret) {
						t.Errorf("the output shows a credential: %s%s", errOut, out)
					}
				}
			})
		}
	})
	if strings.Contains(d.log(), persistAdmin) || strings.Contains(d.log(), adminViewer) {
		t.Error("sessiond's log shows an admin credential")
	}
	if !d.waitLog(`action=logout-all.*outcome=failure|outcome=failure.*action=logout-all`, time.Second) {
		t.Errorf("no audit event of the viewer's refused logout-all in the log")
	}
}

// wantRefresh refreshes g's token and checks it is accepted (returning the new tokens) or
// refused with invalid_grant.
func wantRefresh(t *testing.T, c *apiClient, g *apiResult, ok bool) *apiResult {
	t.Helper()
	r, err := c.refresh(g.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case ok && r.status != http.StatusOK:
		t.Fatalf("refresh of session %s = %s, want 200", g.SessionID, r.summary())
	case !ok && (r.status != http.StatusBadRequest || r.Error != "invalid_grant"):
		t.Fatalf("refresh of session %s = %s, want 400 invalid_grant", g.SessionID, r.summary())
	}
	if ok {
		r.SessionID = g.SessionID
		return r
	}
	return g
}

// freeAddr is a local address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }
