package console_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// live reports whether the store still holds the session.
func (f *fixture) live(id string, offline bool) bool {
	f.t.Helper()
	got, err := f.store.Get(context.Background(), []usersessions.Key{{RealmID: realmName, ID: id, Offline: offline}})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(got) == 1 && got[0] != nil
}

func TestActingFormsAreRefusedWithoutTheSessionsOwnCSRFTokenOrFromAnotherSite(t *testing.T) {
	f := newFixture(t)
	ids := f.addSessions(1, "s", "alice", false, app)
	b := f.browser()
	csrf := b.signIn(adminCred)
	other := f.browser().signIn(adminCred)
	path := "/admin/console/realms/acme/sessions/" + ids[0] + "/logout"
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers map[string]string
	}{
		{"no token", url.Values{}, map[string]string{"Origin": f.srv.URL}},
		{"another session's token", url.Values{"csrf": {other}}, map[string]string{"Origin": f.srv.URL}},
		{"a wrong token", url.Values{"csrf": {csrf + "x"}}, map[string]string{"Origin": f.srv.URL}},
		{"cross-site Origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.test"}},
		{"Origin null, no Sec-Fetch-Site", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "null"}},
		{"the hostname's host over http", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://sso.example.test"}},
		{"a same-origin Sec-Fetch-Site does not make up for the token", url.Values{}, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}},
		{"Sec-Fetch-Site cross-site", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"Sec-Fetch-Site same-site", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := b.postWith(path, tc.form, tc.headers)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%d, want 403", res.StatusCode)
			}
			if !f.live(ids[0], false) {
				t.Fatal("the session was ended by a refused form")
			}
		})
	}
	// A browser on the console's own page says Sec-Fetch-Site: same-origin and, under the
	// pages' Referrer-Policy: no-referrer, Origin: null; with the token, that works.
	if res := b.postWith(path, url.Values{"csrf": {csrf}, "offline": {"false"}}, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}); res.StatusCode != http.StatusOK || f.live(ids[0], false) {
		t.Fatalf("as Chromium posts the console's form: %d, live %v; want the session ended", res.StatusCode, f.live(ids[0], false))
	}
	ids = f.addSessions(1, "t", "alice", false, app)
	path = "/admin/console/realms/acme/sessions/" + ids[0] + "/logout"
	// So does a form from behind a proxy (Origin the hostname, not the Host the request
	// reached sessiond with) from a browser that sends no Sec-Fetch-Site.
	if res := b.postWith(path, url.Values{"csrf": {csrf}, "offline": {"false"}}, map[string]string{"Origin": consoleHostname}); res.StatusCode != http.StatusOK || f.live(ids[0], false) {
		t.Errorf("with the token: %d, live %v; want the session ended", res.StatusCode, f.live(ids[0], false))
	}
}

func TestViewerSeesNoActingControlAndIsRefusedAForgedOne(t *testing.T) {
	f := newFixture(t)
	ids := f.addSessions(2, "s", "alice", false, app)
	b := f.browser()
	csrf := b.signIn(viewerCred)
	for _, page := range []string{"sessions", "users?user=alice", "actions", "logout-all", "clients/app-uuid/sessions", "limits?user=alice"} {
		res := b.get("/admin/console/realms/acme/" + page)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", page, res.StatusCode)
		}
		if forms := res.forms(); !slices.Equal(forms, []string{"/admin/console/signout"}) {
			t.Errorf("%s as the viewer: POST forms %v, want only sign out", page, forms)
		}
	}
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"sessions/" + ids[0] + "/logout", url.Values{}},
		{"users/alice/logout", url.Values{}},
		{"logout-all", url.Values{}},
		{"not-before", url.Values{"action": {"now"}}},
		{"push-revocation", url.Values{}},
		{"users/alice/consents/app/revoke", url.Values{}},
		{"clients/app-uuid/not-before", url.Values{"action": {"now"}}},
		{"clients/app-uuid/push-revocation", url.Values{}},
	} {
		tc.form.Set("csrf", csrf)
		res := b.post("/admin/console/realms/acme/"+tc.path, tc.form)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("viewer's forged POST %s: %d, want 403", tc.path, res.StatusCode)
		}
	}
	if !f.live(ids[0], false) || !f.live(ids[1], false) || !f.policies.Realm(realmName).IsZero() || !f.policies.Client(realmName, app).IsZero() || len(f.push.pushed) != 0 {
		t.Error("a viewer's forged POST changed something")
	}
	if got := f.refusals.reasons(); !slices.Contains(got, "viewer forbidden logout-session") {
		t.Errorf("refusals %v: want the viewer's refused logout-session", got)
	}
}

func TestSessionsPageWalksTheRealmThroughTheCursorAPageAtATime(t *testing.T) {
	f := newFixture(t)
	f.addSessions(250, "r", "alice", false, app)
	f.addSessions(30, "o", "bob", true, mobile)
	b := f.browser()
	b.signIn(viewerCred)
	for _, tc := range []struct {
		typ   string
		want  int
		pages int
	}{
		{"regular", 250, 5},
		{"offline", 30, 1},
		{"all", 280, 6},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			seen := map[string]bool{}
			next := "/admin/console/realms/acme/sessions?type=" + tc.typ
			pages := 0
			for next != "" {
				f.lister.reset()
				res := b.get(next)
				lists, maxLimit := f.lister.reset()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %s", next, res.StatusCode, res.textOf("error"))
				}
				// One store page (and one session more, to know whether a next page
				// has any), two where "all" passes from regular to offline sessions:
				// never the realm.
				if lists > 2 || maxLimit > 51 {
					t.Errorf("%s: %d store listings, largest page %d; want at most 2 of at most 51", next, lists, maxLimit)
				}
				rows := res.sessionIDs()
				if len(rows) > 50 {
					t.Errorf("%s: %d rows, want at most 50", next, len(rows))
				}
				for _, id := range rows {
					if seen[id] {
						t.Errorf("session %s listed twice", id)
					}
					seen[id] = true
				}
				pages++
				next = res.link("next")
				if pages > 10 {
					t.Fatal("the pages do not end")
				}
			}
			if len(seen) != tc.want || pages != tc.pages {
				t.Errorf("%d sessions over %d pages, want %d over %d", len(seen), pages, tc.want, tc.pages)
			}
		})
	}
}

func TestSessionsPageShowsEachColumn(t *testing.T) {
	f := newFixture(t)
	f.addSessions(1, "r", "alice", false, app, mobile)
	f.addSessions(1, "o", "bob", true, mobile)
	b := f.browser()
	b.signIn(adminCred)
	res := b.get("/admin/console/realms/acme/sessions")
	table := text(res.byID("sessions"))
	for _, want := range []string{"alice", "regular", "offline", "192.0.2.7", "Firefox 128 on Linux", "app, mobile", "Sign out", "Revoke", "why does it expire"} {
		if !strings.Contains(table, want) {
			t.Errorf("sessions table lacks %q:\n%s", want, table)
		}
	}
}

func TestSignOutFromARowEndsTheSessionWithItsBackChannelLogout(t *testing.T) {
	f := newFixture(t)
	reg := f.addSessions(1, "r", "alice", false, app)
	off := f.addSessions(1, "o", "alice", true, mobile)
	b := f.browser()
	csrf := b.signIn(adminCred)
	res := b.post("/admin/console/realms/acme/sessions/"+reg[0]+"/logout", url.Values{"csrf": {csrf}, "offline": {"false"}})
	if res.StatusCode != http.StatusOK || f.live(reg[0], false) {
		t.Fatalf("sign out: %d %s; live %v", res.StatusCode, res.textOf("result"), f.live(reg[0], false))
	}
	if len(f.push.logout) != 1 || !slices.Equal(f.push.logout[0], reg) {
		t.Errorf("back-channel logouts %v, want one for %v", f.push.logout, reg)
	}
	if got := text(res.byID("client-results")); !strings.Contains(got, appLogoutURL) || !strings.Contains(got, "succeeded") {
		t.Errorf("result %q: want the back-channel logout's result", got)
	}
	if !f.live(off[0], true) {
		t.Error("the offline session went with the regular one")
	}
	res = b.post("/admin/console/realms/acme/sessions/"+off[0]+"/logout", url.Values{"csrf": {csrf}, "offline": {"true"}})
	if res.StatusCode != http.StatusOK || f.live(off[0], true) || !strings.Contains(res.textOf("result"), "offline tokens no longer refresh") {
		t.Errorf("revoke: %d %q; live %v", res.StatusCode, res.textOf("result"), f.live(off[0], true))
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin logout-session success") {
		t.Errorf("audit %v: want the logout-session", got)
	}
	// Again: the session is gone, a 404 page, audited as failed.
	res = b.post("/admin/console/realms/acme/sessions/"+reg[0]+"/logout", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("signing out an ended session: %d, want 404", res.StatusCode)
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin logout-session failed") {
		t.Errorf("audit %v: want the failed logout-session", got)
	}
}

func TestBadInputIsAnsweredWithAPageNeverA500(t *testing.T) {
	f := newFixture(t)
	f.addSessions(3, "r", "alice", false, app)
	b := f.browser()
	csrf := b.signIn(adminCred)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/admin/console/realms/nowhere/sessions", http.StatusNotFound},
		{"/admin/console/realms/nowhere/settings", http.StatusNotFound},
		{"/admin/console/realms/acme/sessions?type=all&after=garbage", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?type=all&after=x.y", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?type=regular&after=%00", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?type=weird", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?max=0", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?max=100000", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?max=%ff", http.StatusBadRequest},
		{"/admin/console/realms/acme/users?user=a%00b", http.StatusBadRequest},
		{"/admin/console/realms/acme/users?user=%ff%fe", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions/nope/explain", http.StatusNotFound},
		{"/admin/console/realms/closed/sessions/nope/explain", http.StatusBadRequest}, // a disabled realm's
		{"/admin/console/realms/closed/sessions", http.StatusOK},                      // administered, as in Keycloak
		{"/admin/console/realms/acme/clients/nope/sessions", http.StatusNotFound},
		{"/admin/console/realms/acme/deliveries?state=lost", http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions?%zz", http.StatusBadRequest},
		{"/admin/console/realms/a%00b/sessions", http.StatusBadRequest},
		// A cursor past the end, or that names no session, is an empty page.
		{"/admin/console/realms/acme/sessions?type=regular&after=zzzz", http.StatusOK},
	} {
		res := b.get(tc.path)
		if res.StatusCode != tc.want {
			t.Errorf("GET %s: %d (%s), want %d", tc.path, res.StatusCode, res.textOf("error"), tc.want)
		}
	}
	for _, tc := range []struct {
		path string
		form url.Values
		want int
	}{
		{"/admin/console/realms/acme/not-before", url.Values{"action": {"sometime"}}, http.StatusBadRequest},
		{"/admin/console/realms/acme/sessions/r-0000/logout", url.Values{"offline": {"maybe"}}, http.StatusBadRequest},
		{"/admin/console/realms/acme/users/a%00b/logout", url.Values{}, http.StatusBadRequest},
		{"/admin/console/realms/acme/users/nobody/logout", url.Values{}, http.StatusNotFound},
		{"/admin/console/realms/nowhere/logout-all", url.Values{}, http.StatusNotFound},
		{"/admin/console/realms/acme/push-revocation", url.Values{"x": {"\x00"}}, http.StatusBadRequest},
	} {
		tc.form.Set("csrf", csrf)
		res := b.post(tc.path, tc.form)
		if res.StatusCode != tc.want {
			t.Errorf("POST %s: %d (%s), want %d", tc.path, res.StatusCode, res.textOf("error"), tc.want)
		}
	}
	if !f.live("r-0000", false) {
		t.Error("bad input ended a session")
	}
}

func TestExplainPageSaysWhyASessionExpires(t *testing.T) {
	f := newFixture(t)
	ids := f.addSessions(1, "r", "alice", false, app)
	b := f.browser()
	b.signIn(viewerCred)
	res := b.get("/admin/console/realms/acme/sessions/" + ids[0] + "/explain")
	got := res.textOf("explanation")
	if res.StatusCode != http.StatusOK || !strings.Contains(got, "ssoSessionIdleTimeout") || !strings.Contains(got, "Client app") {
		t.Errorf("explain page: %d\n%s", res.StatusCode, got)
	}
}

func TestWhatUsersWroteIsShownAsTextNeverAsMarkup(t *testing.T) {
	f := newFixture(t)
	f.usernames = map[string]string{`"><script>alert(1)</script>`: `<img src=x onerror=alert(1)>`}
	f.addSessions(1, "r", `"><script>alert(1)</script>`, false, app)
	b := f.browser()
	b.signIn(adminCred)
	for _, page := range []string{"sessions", "users?user=" + url.QueryEscape(`"><script>alert(1)</script>`)} {
		res := b.get("/admin/console/realms/acme/" + page)
		if n := len(find(res.doc, func(n *nodeT) bool { return isElem(n, "script") || isElem(n, "img") })); n != 0 || res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d script or img elements (status %d), want none:\n%s", page, n, res.StatusCode, res.body)
		}
		if !strings.Contains(text(res.byID("sessions")), `<img src=x onerror=alert(1)>`) {
			t.Errorf("%s: the username is not shown as text", page)
		}
	}
}
