package console_test

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sessiond/sessiond/spi/usersessions"
)

func TestClientsPageCountsEachClientsSessionsAndListsItsTabs(t *testing.T) {
	f := newFixture(t)
	f.addSessions(3, "r", "alice", false, app)
	f.addSessions(2, "o", "bob", true, mobile)
	b := f.browser()
	b.signIn(viewerCred)
	res := b.get("/admin/console/realms/acme/clients")
	counts := map[string]string{}
	for _, tr := range find(res.doc, func(n *nodeT) bool { return isElem(n, "tr") && attr(n, "class") == "client" }) {
		cells := find(tr, func(n *nodeT) bool { return isElem(n, "td") })
		counts[attr(tr, "data-client")] = text(cells[1]) + "/" + text(cells[2])
	}
	if counts[app] != "3/0" || counts[mobile] != "0/2" {
		t.Errorf("active/offline counts %v, want app 3/0 and mobile 0/2", counts)
	}
	tab := b.get("/admin/console/realms/acme/clients/app-uuid/sessions?type=regular&max=2")
	if tab.StatusCode != http.StatusOK || len(tab.sessionIDs()) != 2 || tab.link("next") == "" || tab.textOf("tab") != "Sessions" {
		t.Fatalf("app's Sessions tab: %d, rows %v, next %q", tab.StatusCode, tab.sessionIDs(), tab.link("next"))
	}
	if rest := b.get(tab.link("next")); len(rest.sessionIDs()) != 1 || rest.link("next") != "" {
		t.Errorf("app's Sessions tab, page 2: rows %v, next %q; want the last one", rest.sessionIDs(), rest.link("next"))
	}
	off := b.get("/admin/console/realms/acme/clients/mobile/sessions?type=offline")
	if got := off.sessionIDs(); len(got) != 2 || off.textOf("tab") != "Offline Access" {
		t.Errorf("mobile's Offline Access tab: %v (%q)", got, off.textOf("tab"))
	}
}

func TestUserPageListsAUsersSessionsAndLogsThemAllOut(t *testing.T) {
	f := newFixture(t)
	reg := f.addSessions(2, "r", "alice", false, app)
	off := f.addSessions(1, "o", "alice", true, mobile)
	other := f.addSessions(1, "x", "bob", false, app)
	b := f.browser()
	csrf := b.signIn(adminCred)
	res := b.get("/admin/console/realms/acme/users?user=alice")
	if got, want := res.sessionIDs(), append(slices.Clone(reg), off...); !slices.Equal(got, want) {
		t.Fatalf("alice's sessions %v, want %v", got, want)
	}
	if !slices.Contains(res.forms(), "/admin/console/realms/acme/users/alice/logout") {
		t.Fatalf("no Logout all sessions form: %v", res.forms())
	}
	done := b.post("/admin/console/realms/acme/users/alice/logout", url.Values{"csrf": {csrf}})
	if done.StatusCode != http.StatusOK || !strings.Contains(done.textOf("result"), "2 regular sessions") {
		t.Fatalf("logout all: %d %q", done.StatusCode, done.textOf("result"))
	}
	if f.live(reg[0], false) || f.live(reg[1], false) || !f.live(off[0], true) || !f.live(other[0], false) {
		t.Error("want alice's regular sessions ended, her offline one and bob's kept")
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin logout-user success") {
		t.Errorf("audit %v", got)
	}
}

func TestSignOutAllSaysWhatItDoesNotRevokeThenEndsTheActiveSessions(t *testing.T) {
	f := newFixture(t)
	reg := f.addSessions(3, "r", "alice", false, app)
	off := f.addSessions(1, "o", "bob", true, mobile)
	b := f.browser()
	csrf := b.signIn(adminCred)
	confirm := b.get("/admin/console/realms/acme/logout-all")
	what := confirm.textOf("what")
	for _, want := range []string{"all SSO cookies become invalid", "It does not revoke outstanding access tokens", "outstanding tokens must expire naturally", "not-before", "Offline sessions and their offline tokens are not revoked"} {
		if !strings.Contains(what, want) {
			t.Errorf("confirmation lacks %q:\n%s", want, what)
		}
	}
	for _, id := range reg {
		if !f.live(id, false) {
			t.Fatal("the confirmation page ended a session")
		}
	}
	done := b.post("/admin/console/realms/acme/logout-all", url.Values{"csrf": {csrf}})
	if done.StatusCode != http.StatusOK || !strings.Contains(done.textOf("result"), "3 active sessions have ended") ||
		!strings.Contains(done.textOf("result"), "Outstanding access tokens were not revoked") {
		t.Fatalf("sign out all: %d %q", done.StatusCode, done.textOf("result"))
	}
	for _, id := range reg {
		if f.live(id, false) {
			t.Errorf("session %s survived sign out all", id)
		}
	}
	if !f.live(off[0], true) {
		t.Error("sign out all ended an offline session")
	}
	if got := text(done.byID("client-results")); !strings.Contains(got, appAdminURL) {
		t.Errorf("client results %q: want the admin URL's", got)
	}
}

func TestNotBeforeSetClearAndPushShowTheirResults(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	csrf := b.signIn(adminCred)
	if got := b.get("/admin/console/realms/acme/actions").textOf("not-before"); got != "none" {
		t.Errorf("not-before before: %q", got)
	}
	set := b.post("/admin/console/realms/acme/not-before", url.Values{"csrf": {csrf}, "action": {"now"}})
	stamp := f.now.Format("2006-01-02 15:04:05 UTC")
	if set.StatusCode != http.StatusOK || !strings.Contains(set.textOf("result"), stamp) || !f.policies.Realm(realmName).Equal(f.now) {
		t.Fatalf("set to now: %d %q, policy %s", set.StatusCode, set.textOf("result"), f.policies.Realm(realmName))
	}
	if got := b.get("/admin/console/realms/acme/actions").textOf("not-before"); got != stamp {
		t.Errorf("not-before shown %q, want %q", got, stamp)
	}
	f.push.down = []string{appAdminURL}
	push := b.post("/admin/console/realms/acme/push-revocation", url.Values{"csrf": {csrf}})
	results := text(push.byID("client-results"))
	if push.StatusCode != http.StatusOK || !strings.Contains(results, "app "+appAdminURL+" failed") || !slices.Equal(f.push.pushed, []string{"acme/"}) {
		t.Errorf("push: %d, results %q, pushed %v", push.StatusCode, results, f.push.pushed)
	}
	f.now = f.now.Add(time.Minute)
	clear := b.post("/admin/console/realms/acme/not-before", url.Values{"csrf": {csrf}, "action": {"clear"}})
	if clear.StatusCode != http.StatusOK || !strings.Contains(clear.textOf("result"), "cleared") || !f.policies.Realm(realmName).IsZero() {
		t.Errorf("clear: %d %q", clear.StatusCode, clear.textOf("result"))
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin set-not-before success") || !slices.Contains(got, "admin push-revocation success") {
		t.Errorf("audit %v", got)
	}
}

func TestOutboxAndSettingsPagesShowWhatTheyRead(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.signIn(viewerCred)
	out := b.get("/admin/console/realms/acme/deliveries?state=failed")
	if got := text(out.byID("deliveries")); !strings.Contains(got, "connection refused") || !strings.Contains(got, "failed") {
		t.Errorf("outbox: %q", got)
	}
	set := b.get("/admin/console/realms/acme/settings")
	sessions := set.textOf("session-settings")
	for _, want := range []string{"SSO Session Idle ssoSessionIdleTimeout 30m0s default", "Client Session Idle clientSessionIdleTimeout not set uses SSO Session Idle",
		"Offline Session Max offlineSessionMaxLifespan 1440h0m0s default (ignored: Offline Session Max Limited is off)"} {
		if !strings.Contains(sessions, want) {
			t.Errorf("session settings lack %q:\n%s", want, sessions)
		}
	}
	if got := set.textOf("token-settings"); !strings.Contains(got, "Access Token Lifespan accessTokenLifespan 5m0s default") {
		t.Errorf("token settings: %s", got)
	}
	if got := set.textOf("warnings"); !strings.Contains(got, "spi-x-y-z is set but provider y is not selected") {
		t.Errorf("warnings: %s", got)
	}
}

func TestUserPageLooksUpAUsernameWhenNoSessionIsUnderThatID(t *testing.T) {
	f := newFixture(t)
	f.usernames = map[string]string{"u-2": "carol", "u-3": "shared", "u-4": "shared"}
	carol := f.addSessions(2, "c", "u-2", false, app)
	f.addSessions(1, "s", "u-3", false, app)
	f.addSessions(1, "t", "u-4", true, mobile)
	b := f.browser()
	b.signIn(viewerCred)
	res := b.get("/admin/console/realms/acme/users?user=carol")
	if got := res.sessionIDs(); !slices.Equal(got, carol) || !strings.Contains(res.textOf("resolved"), "username carol is user id u-2") {
		t.Errorf("username carol: sessions %v (%q), want u-2's %v", got, res.textOf("resolved"), carol)
	}
	res = b.get("/admin/console/realms/acme/users?user=shared")
	if got := res.textOf("candidates"); !strings.Contains(got, "u-3 , u-4") || len(res.sessionIDs()) != 0 {
		t.Errorf("username of two users: %q, rows %v; want both ids and no rows", got, res.sessionIDs())
	}
	res = b.get("/admin/console/realms/acme/users?user=nobody")
	if res.StatusCode != http.StatusOK || len(res.sessionIDs()) != 0 || res.textOf("resolved") != "" {
		t.Errorf("unknown user: %d, rows %v", res.StatusCode, res.sessionIDs())
	}
}

func TestUserConsentsTabRevokesOneClientsOfflineTokens(t *testing.T) {
	f := newFixture(t)
	off := f.addSessions(1, "o", "alice", true, mobile, app)
	b := f.browser()
	csrf := b.signIn(adminCred)
	res := b.get("/admin/console/realms/acme/users?user=alice")
	if got := text(res.byID("consents")); !strings.Contains(got, app) || !strings.Contains(got, mobile) {
		t.Fatalf("consents %q, want app and mobile", got)
	}
	done := b.post("/admin/console/realms/acme/users/alice/consents/mobile/revoke", url.Values{"csrf": {csrf}})
	if done.StatusCode != http.StatusOK || !strings.Contains(done.textOf("result"), "offline tokens of client mobile are revoked") {
		t.Fatalf("revoke: %d %q", done.StatusCode, done.textOf("result"))
	}
	got, err := f.store.Get(context.Background(), []usersessions.Key{{RealmID: realmName, ID: off[0], Offline: true}})
	if err != nil || len(got) != 1 || got[0] == nil || got[0].Clients[mobile] != nil || got[0].Clients[app] == nil {
		t.Errorf("after revoking mobile: %+v, %v; want the session with app's offline token only", got, err)
	}
	if again := b.post("/admin/console/realms/acme/users/alice/consents/mobile/revoke", url.Values{"csrf": {csrf}}); again.StatusCode != http.StatusNotFound {
		t.Errorf("revoking again: %d, want 404", again.StatusCode)
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin revoke-offline-token success") {
		t.Errorf("audit %v", got)
	}
}

func TestClientPageSetsClearsAndPushesTheClientsOwnNotBefore(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	csrf := b.signIn(adminCred)
	const page = "/admin/console/realms/acme/clients/app-uuid/sessions"
	if got := b.get(page).textOf("client-not-before"); got != "none" {
		t.Errorf("client not-before before: %q", got)
	}
	set := b.post("/admin/console/realms/acme/clients/app-uuid/not-before", url.Values{"csrf": {csrf}, "action": {"now"}})
	if set.StatusCode != http.StatusOK || !strings.Contains(set.textOf("result"), "Client app's not-before policy is") ||
		!f.policies.Client(realmName, app).Equal(f.now) || !f.policies.Realm(realmName).IsZero() {
		t.Fatalf("set to now: %d %q; client policy %s, realm policy %s", set.StatusCode, set.textOf("result"),
			f.policies.Client(realmName, app), f.policies.Realm(realmName))
	}
	if got := b.get(page).textOf("client-not-before"); got != f.now.Format("2006-01-02 15:04:05 UTC") {
		t.Errorf("client not-before shown %q", got)
	}
	push := b.post("/admin/console/realms/acme/clients/app-uuid/push-revocation", url.Values{"csrf": {csrf}})
	if results := text(push.byID("client-results")); push.StatusCode != http.StatusOK || !strings.Contains(results, "app "+appAdminURL+" succeeded") ||
		!slices.Equal(f.push.pushed, []string{"acme/app"}) {
		t.Errorf("push: %d, results %q, pushed %v", push.StatusCode, results, f.push.pushed)
	}
	clear := b.post("/admin/console/realms/acme/clients/app-uuid/not-before", url.Values{"csrf": {csrf}, "action": {"clear"}})
	if clear.StatusCode != http.StatusOK || !f.policies.Client(realmName, app).IsZero() {
		t.Errorf("clear: %d %q", clear.StatusCode, clear.textOf("result"))
	}
	if res := b.post("/admin/console/realms/acme/clients/nobody/not-before", url.Values{"csrf": {csrf}, "action": {"now"}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown client: %d, want 404", res.StatusCode)
	}
	got := f.audit.actions()
	for _, want := range []string{"admin set-client-not-before success", "admin push-client-revocation success", "admin set-client-not-before failed"} {
		if !slices.Contains(got, want) {
			t.Errorf("audit %v lacks %q", got, want)
		}
	}
}

func TestSessionLimitsPageShowsEachLimitAgainstItsCount(t *testing.T) {
	f := newFixture(t)
	f.addSessions(2, "a", "alice", false, app)
	f.addSessions(1, "b", "bob", false, app, mobile)
	f.addSessions(1, "o", "alice", true, mobile)
	b := f.browser()
	b.signIn(viewerCred)
	rows := func(res *response) map[string]string {
		out := map[string]string{}
		for _, n := range find(res.doc, func(n *html.Node) bool { return isElem(n, "tr") && strings.HasPrefix(attr(n, "class"), "limit") }) {
			out[text(n)] = attr(n, "class")
		}
		return out
	}
	page := b.get("/admin/console/realms/acme/limits")
	want := map[string]string{
		"realmLimit the realm, all users none 3 1":                                "limit",
		"clientLimit client app, all users 2 terminate the oldest session 3 0":    "limit reached",
		"clientLimit client mobile, all users 2 terminate the oldest session 1 1": "limit",
	}
	if got := rows(page); !maps.Equal(got, want) {
		t.Errorf("limits:\n%v\nwant\n%v", got, want)
	}
	user := rows(b.get("/admin/console/realms/acme/limits?user=alice"))
	for row, class := range map[string]string{
		"userRealmLimit user alice in the realm 3 deny the new session 2 1": "limit",
		"userClientLimit user alice on client app none 2 0":                 "limit",
	} {
		if user[row] != class {
			t.Errorf("with user alice, rows %v lack %q (%s)", user, row, class)
		}
	}
}
