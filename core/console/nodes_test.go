package console_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
)

// pgStore opens the PostgreSQL store of dbURL as node id.
func pgStore(t *testing.T, dbURL, id string) *postgres.Provider {
	t.Helper()
	store := postgres.New(hclog.NewNullLogger())
	if err := store.Configure(context.Background(), spi.Config{postgres.OptURL: dbURL, spi.HostNodeID: id}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	return store
}

// on is the same browser (its cookie jar) talking to another node.
func (b *browser) on(f *fixture) *browser { return &browser{f: f, client: b.client} }

// Two nodes behind a load balancer, sharing PostgreSQL: an operator signed in on one is
// signed in on the other, with the same CSRF token; a node started later (a restart) keeps
// the session; a sign-out on one node holds on every node, even for the old cookie replayed.
func TestTwoNodesSharingPostgreSQLServeOneConsoleSession(t *testing.T) {
	dbURL := testpg.Schema(t, "console_nodes")
	a := newFixtureOn(t, pgStore(t, dbURL, "node-a"))
	b := newFixtureOn(t, pgStore(t, dbURL, "node-b"))
	b.now = a.now
	ids := a.addSessions(3, "s", "alice", false, app)

	onA := a.browser()
	csrf := onA.signIn(adminCred)
	onB := onA.on(b)
	page := onB.get("/admin/console/realms/acme/sessions?type=regular")
	if page.StatusCode != http.StatusOK || page.textOf("actor") != "admin" || page.inputValue("csrf") != csrf {
		t.Fatalf("node B after signing in on node A: %d, actor %q; want the same session and CSRF token", page.StatusCode, page.textOf("actor"))
	}
	if got := page.sessionIDs(); !slices.Equal(got, ids) {
		t.Errorf("node B lists %v, want %v", got, ids)
	}
	// An acting form of node A's page, posted to node B.
	if res := onB.post("/admin/console/realms/acme/sessions/"+ids[0]+"/logout", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusOK {
		t.Fatalf("sign a session out on node B with node A's form: %d %s", res.StatusCode, res.textOf("error"))
	}
	if a.live(ids[0], false) {
		t.Errorf("session %s still live after node B signed it out", ids[0])
	}

	restarted := newFixtureOn(t, pgStore(t, dbURL, "node-a-restarted"))
	restarted.now = a.now
	if res := onA.on(restarted).get("/admin/console/realms/"); res.StatusCode != http.StatusOK || res.textOf("actor") != "admin" {
		t.Fatalf("node A restarted: %d, want still signed in", res.StatusCode)
	}

	u, _ := url.Parse(a.srv.URL + "/admin/console/")
	old := onA.client.Jar.Cookies(u)
	if res := onB.post("/admin/console/signout", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out on node B: %d", res.StatusCode)
	}
	for name, f := range map[string]*fixture{"node A": a, "node B": b, "restarted node": restarted} {
		replay := f.browser()
		replay.client.Jar.SetCookies(u, old)
		if res := replay.get("/admin/console/realms/"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/console/" {
			t.Errorf("%s, the old cookie after signing out on node B: %d to %q, want the sign-in page", name, res.StatusCode, res.Header.Get("Location"))
		}
		if res := replay.post("/admin/console/realms/acme/sessions/"+ids[1]+"/logout", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s, an acting form with the old cookie: %d, want 401", name, res.StatusCode)
		}
	}
	if !a.live(ids[1], false) {
		t.Errorf("session %s ended by a signed-out console session", ids[1])
	}
}
