package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The admin API's behaviour, over PostgreSQL through the session cache as the runtime
// wires them. The not-before policies and the push are recording stand-ins here (their
// packages test them); what is checked is what the admin API does with the sessions and
// what it asks of them.

// loginAs opens a session for userID (username name) from ip with client, offline when
// asked.
func (s *stack) loginAs(tb testing.TB, userID, name, ip, client string, offline bool) tokens {
	tb.Helper()
	body := map[string]any{"client_id": client, "user_id": userID, "username": name, "ip_address": ip, "scope": "openid"}
	if offline {
		body["scope"], body["offline_access"] = "openid offline_access", true
	}
	var t tokens
	s.do(tb, jsonCall(sessionsPath(realmName), frontendToken, body)).decode(tb, http.StatusCreated, &t)
	return t
}

// get is an admin GET decoded into v.
func (s *stack) adminGet(tb testing.TB, path string, v any) reply {
	tb.Helper()
	r := s.do(tb, adminCall(http.MethodGet, realmName, path, adminToken, ""))
	r.decode(tb, http.StatusOK, v)
	return r
}

func TestAdminViews(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStore(pgStore(t)), withRealm(withUUIDs))
	started := s.clock.Now()
	alice := s.loginAs(t, user, "alice", "198.51.100.7", confidential, false)
	s.attach(t, alice.SessionID, spa, "openid")
	aliceOffline := s.loginAs(t, user, "alice", "198.51.100.8", confidential, true)
	s.loginAs(t, "u-2", "bob", "203.0.113.9", spa, false)
	s.clock.Advance(time.Minute)
	s.refresh(t, confidentialAuth, aliceOffline.RefreshToken) // moves the offline client session's clock

	t.Run("client-session-stats", func(t *testing.T) {
		var stats []admin.ClientStat
		s.adminGet(t, "/client-session-stats", &stats)
		want := []admin.ClientStat{
			{ID: confidentialUUID, ClientID: confidential, Active: "2", Offline: "1"},
			{ID: spa, ClientID: spa, Active: "2", Offline: "0"},
		}
		if !slices.Equal(stats, want) {
			t.Errorf("stats %+v, want %+v", stats, want)
		}
	})
	t.Run("a user's sessions", func(t *testing.T) {
		var got []admin.SessionRep
		s.adminGet(t, "/users/"+user+"/sessions", &got)
		if len(got) != 2 {
			t.Fatalf("alice's online sessions: %+v, want 2", got)
		}
		for _, rep := range got {
			if rep.UserID != user || rep.Username != "alice" || rep.Start != started.UnixMilli() {
				t.Errorf("session %+v: want alice's (%s), started at %d ms", rep, user, started.UnixMilli())
			}
			if rep.ID == alice.SessionID {
				if rep.IPAddress != "198.51.100.7" || rep.LastAccess != started.UnixMilli() {
					t.Errorf("session %+v: want ipAddress 198.51.100.7, lastAccess %d", rep, started.UnixMilli())
				}
				want := map[string]string{confidentialUUID: confidential, spa: spa}
				if fmt.Sprint(rep.Clients) != fmt.Sprint(want) {
					t.Errorf("clients %v, want internal id → clientId %v", rep.Clients, want)
				}
			}
		}
		var none []admin.SessionRep
		s.adminGet(t, "/users/nobody/sessions", &none)
		if len(none) != 0 {
			t.Errorf("a user with no session has sessions %+v", none)
		}
	})
	t.Run("a user's offline sessions of a client", func(t *testing.T) {
		var got []admin.SessionRep
		s.adminGet(t, "/users/"+user+"/offline-sessions/"+confidentialUUID, &got)
		stored, err := s.store.Get(s.ctx, []usersessions.Key{{RealmID: realmName, ID: aliceOffline.SessionID, Offline: true}})
		if err != nil || stored[0] == nil {
			t.Fatal(err)
		}
		lastAccess := stored[0].Clients[confidential].LastRefresh.UnixMilli()
		if len(got) != 1 || got[0].ID != aliceOffline.SessionID || got[0].LastAccess != lastAccess || lastAccess != s.clock.Now().UnixMilli() {
			t.Errorf("offline sessions %+v, want %s with the client session's lastAccess %d", got, aliceOffline.SessionID, lastAccess)
		}
		s.adminGet(t, "/users/"+user+"/offline-sessions/"+spa, &got)
		if len(got) != 0 {
			t.Errorf("offline sessions of spa %+v, want none", got)
		}
	})
	t.Run("a client's sessions and counts", func(t *testing.T) {
		var online, offline []admin.SessionRep
		s.adminGet(t, "/clients/"+confidentialUUID+"/user-sessions", &online)
		s.adminGet(t, "/clients/"+confidentialUUID+"/offline-sessions", &offline)
		if got, want := sessionIDs(online), sortedCopy([]string{alice.SessionID, aliceOffline.SessionID}); !slices.Equal(got, want) {
			t.Errorf("online sessions of confidential %v, want %v", got, want)
		}
		if got := sessionIDs(offline); !slices.Equal(got, []string{aliceOffline.SessionID}) {
			t.Errorf("offline sessions of confidential %v, want %s", got, aliceOffline.SessionID)
		}
		for path, want := range map[string]int64{
			"/clients/" + confidentialUUID + "/session-count":         2,
			"/clients/" + confidentialUUID + "/offline-session-count": 1,
			"/clients/" + spa + "/session-count":                      2,
			"/clients/" + spa + "/offline-session-count":              0,
		} {
			var c struct {
				Count *int64 `json:"count"`
			}
			s.adminGet(t, path, &c)
			if c.Count == nil || *c.Count != want {
				t.Errorf("%s = %v, want {\"count\": %d}", path, c.Count, want)
			}
		}
	})
	t.Run("clients by clientId, without secrets", func(t *testing.T) {
		var got []admin.ClientRep
		r := s.adminGet(t, "/clients?clientId="+confidential, &got)
		if len(got) != 1 || got[0].ID != confidentialUUID || got[0].ClientID != confidential {
			t.Errorf("clients?clientId=%s = %+v, want its internal id %s", confidential, got, confidentialUUID)
		}
		var all []admin.ClientRep
		r2 := s.adminGet(t, "/clients", &all)
		if want := len(testRealms(nil)[0].Clients); len(all) != want {
			t.Errorf("%d clients, want the realm's %d", len(all), want)
		}
		for _, body := range [][]byte{r.body, r2.body} {
			if strings.Contains(string(body), confidentialSecret) || strings.Contains(string(body), otherSecret) || strings.Contains(strings.ToLower(string(body)), "secret") {
				t.Errorf("a client listing shows a secret: %s", body)
			}
		}
	})
	t.Run("unknown realm, client and bad parameters", func(t *testing.T) {
		for _, tc := range []struct {
			realm, path string
			status      int
			code, desc  string
		}{
			{unknownRealm, "/client-session-stats", 404, "not_found", "realm"},
			{unknownRealm, "/users/" + user + "/sessions", 404, "not_found", "realm"},
			{realmName, "/clients/nosuch/user-sessions", 404, "not_found", "client"},
			// The path takes the internal id, as Keycloak's does, not the clientId.
			{realmName, "/clients/" + confidential + "/session-count", 404, "not_found", "client"},
			{realmName, "/users/" + user + "/offline-sessions/nosuch", 404, "not_found", "client"},
			{realmName, "/sessions?offline=perhaps", 400, "invalid_request", "offline"},
			{realmName, "/clients/" + spa + "/user-sessions?max=1001", 400, "invalid_request", "at most 1000"},
			{realmName, "/clients/" + spa + "/user-sessions?max=0", 400, "invalid_request", "max"},
			{realmName, "/clients/" + spa + "/user-sessions?max=-5", 400, "invalid_request", "max"},
			{realmName, "/clients/" + spa + "/user-sessions?first=-1", 400, "invalid_request", "first"},
			{realmName, "/clients/" + spa + "/user-sessions?first=two", 400, "invalid_request", "first"},
		} {
			r := s.do(t, adminCall(http.MethodGet, tc.realm, tc.path, adminToken, ""))
			r.refused(t, tc.status, tc.code, tc.desc)
		}
	})
}

// TestAdminClientSessionsPaging: first/max walks to an offset; the Link header's after=
// cursor pages through every session once, in id order.
func TestAdminClientSessionsPaging(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStore(pgStore(t)), withRealm(withUUIDs))
	var all []string
	for i := range 25 {
		all = append(all, s.loginAs(t, fmt.Sprintf("user-%d", i), "", "", confidential, false).SessionID)
	}
	slices.Sort(all)
	base := "/clients/" + confidentialUUID + "/user-sessions"

	var seen []string
	next := "/admin/realms/" + realmName + base + "?max=10"
	pages := 0
	for next != "" {
		var page []admin.SessionRep
		r := s.do(t, call{method: http.MethodGet, path: next, header: http.Header{"Authorization": {"Bearer " + adminToken}}})
		r.decode(t, http.StatusOK, &page)
		if len(page) > 10 {
			t.Fatalf("a page of %d sessions, asked for 10", len(page))
		}
		for _, rep := range page {
			seen = append(seen, rep.ID)
		}
		next = linkNext(t, r)
		pages++
		if pages > 10 {
			t.Fatal("the Link header never ends")
		}
	}
	if !slices.Equal(seen, all) {
		t.Errorf("paging with the Link header saw %v, want every session once in id order %v", seen, all)
	}

	for _, tc := range []struct {
		query string
		want  []string
		link  bool
	}{
		{"?first=0&max=10", all[:10], true},
		{"?first=20&max=10", all[20:], false},
		{"?first=7&max=5", all[7:12], true},
		{"?first=30", nil, false},
		{"?after=" + all[4] + "&max=3", all[5:8], true},
		{"", all, false}, // 25 < Keycloak's default max of 100
	} {
		var page []admin.SessionRep
		r := s.adminGet(t, base+tc.query, &page)
		var got []string
		for _, rep := range page {
			got = append(got, rep.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
		if has := r.header.Get("Link") != ""; has != tc.link {
			t.Errorf("%s: Link %q, want one: %v", tc.query, r.header.Get("Link"), tc.link)
		}
	}
}

// linkNext is the path of a Link rel="next", or "".
func linkNext(tb testing.TB, r reply) string {
	tb.Helper()
	l := r.header.Get("Link")
	if l == "" {
		return ""
	}
	target, rel, ok := strings.Cut(l, ">; ")
	if !ok || rel != `rel="next"` || !strings.HasPrefix(target, "<") {
		tb.Fatalf("Link %q, want <…>; rel=\"next\"", l)
	}
	u, err := url.Parse(strings.TrimPrefix(target, "<"))
	if err != nil || u.Query().Get("after") == "" || u.Query().Has("first") {
		tb.Fatalf("Link %q: want a path with after= and without first=", l)
	}
	return u.String()
}

func TestAdminLogout(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStore(pgStore(t)), withRealm(withUUIDs))
	one := s.loginAs(t, user, "alice", "", confidential, false)
	two := s.loginAs(t, user, "alice", "", spa, false)
	off := s.loginAs(t, user, "alice", "", confidential, true) // an online and an offline session
	bob := s.loginAs(t, "u-2", "bob", "", confidential, false)
	onlyOffline := s.loginAs(t, "u-3", "carol", "", confidential, true)
	if _, err := s.cache.Delete(s.ctx, []usersessions.Key{{RealmID: realmName, ID: onlyOffline.SessionID}}); err != nil {
		t.Fatal(err)
	}

	t.Run("one session", func(t *testing.T) {
		r := s.do(t, adminCall(http.MethodDelete, realmName, "/sessions/"+one.SessionID, adminToken, ""))
		if r.status != http.StatusNoContent {
			t.Fatalf("DELETE sessions/%s = %d %s, want 204", one.SessionID, r.status, r.body)
		}
		s.do(t, refreshCall(realmName, confidentialAuth, one.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
		if !slices.Contains(s.adm.push.loggedOut(), one.SessionID) {
			t.Errorf("no back-channel logout for %s: %v", one.SessionID, s.adm.push.loggedOut())
		}
		e := s.adm.audit.last(t)
		if e.Action != "logout-session" || e.Actor != admin.ActorAdmin || e.Outcome != admin.OutcomeSuccess || e.Target != "session/"+one.SessionID || e.Status != 204 {
			t.Errorf("audit event %+v", e)
		}
		r = s.do(t, adminCall(http.MethodDelete, realmName, "/sessions/"+one.SessionID, adminToken, ""))
		r.refused(t, http.StatusNotFound, "not_found", "session not found")
		if e := s.adm.audit.last(t); e.Outcome != admin.OutcomeFailed || e.Status != 404 {
			t.Errorf("audit event of a logout of an unknown session %+v, want failed 404", e)
		}
		s.do(t, adminCall(http.MethodDelete, realmName, "/sessions/"+off.SessionID+"?isOffline=maybe", adminToken, "")).
			refused(t, http.StatusBadRequest, "invalid_request", "isOffline")
	})
	t.Run("one offline session", func(t *testing.T) {
		r := s.do(t, adminCall(http.MethodDelete, realmName, "/sessions/"+off.SessionID+"?isOffline=true", adminToken, ""))
		if r.status != http.StatusNoContent {
			t.Fatalf("DELETE offline session = %d %s", r.status, r.body)
		}
		if ids := s.storedIDs(t, usersessions.Filter{Offline: usersessions.OfflineOnly}); slices.Contains(ids, off.SessionID) {
			t.Error("the offline session is still stored")
		}
		if ids := s.storedIDs(t, usersessions.Filter{}); !slices.Contains(ids, off.SessionID) {
			t.Error("the online session with the same id went too")
		}
		s.do(t, refreshCall(realmName, confidentialAuth, off.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
	})
	t.Run("a user", func(t *testing.T) {
		offline := s.loginAs(t, user, "alice", "", confidential, true)
		r := s.do(t, adminCall(http.MethodPost, realmName, "/users/"+user+"/logout", adminToken, ""))
		if r.status != http.StatusNoContent {
			t.Fatalf("POST users/%s/logout = %d %s", user, r.status, r.body)
		}
		if ids := s.storedIDs(t, usersessions.Filter{UserID: user}); len(ids) != 0 {
			t.Errorf("alice still has online sessions %v", ids)
		}
		if ids := s.storedIDs(t, usersessions.Filter{UserID: user, Offline: usersessions.OfflineOnly}); !slices.Equal(ids, []string{offline.SessionID}) {
			t.Errorf("alice's offline sessions %v, want %s kept (Keycloak keeps offline tokens on logout)", ids, offline.SessionID)
		}
		s.refresh(t, confidentialAuth, offline.RefreshToken)
		s.do(t, refreshCall(realmName, basic(spa, ""), two.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
		for _, id := range []string{two.SessionID, offline.SessionID} {
			if !slices.Contains(s.adm.push.loggedOut(), id) {
				t.Errorf("no back-channel logout for alice's session %s", id)
			}
		}
		if ids := s.storedIDs(t, usersessions.Filter{UserID: "u-2"}); !slices.Equal(ids, []string{bob.SessionID}) {
			t.Errorf("bob's sessions %v, want his untouched", ids)
		}
		s.do(t, adminCall(http.MethodPost, realmName, "/users/nobody/logout", adminToken, "")).refused(t, http.StatusNotFound, "not_found", "no sessions")
		// Only offline sessions: the user is known, nothing online to end.
		if r := s.do(t, adminCall(http.MethodPost, realmName, "/users/u-3/logout", adminToken, "")); r.status != http.StatusNoContent {
			t.Errorf("logout of a user with only offline sessions = %d %s, want 204", r.status, r.body)
		}
	})
}

// TestAdminSignOutAll: every online session of the realm ends, in pages, each page's
// sessions' back-channel logouts queued for the outbox (not attempted in the request); offline sessions stay and their tokens still refresh;
// the other realm is untouched; the answer is Keycloak's GlobalRequestResult.
func TestAdminSignOutAll(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStore(pgStore(t)), withRealm(withUUIDs))
	var online []tokens
	for i := range 10 {
		g := s.loginAs(t, fmt.Sprintf("user-%d", i), "", "", confidential, false)
		if i%3 == 0 {
			s.attach(t, g.SessionID, adminApp, "openid")
		}
		online = append(online, g)
	}
	var offline []tokens
	for i := range 3 {
		offline = append(offline, s.loginAs(t, fmt.Sprintf("keeper-%d", i), "", "", confidential, true))
	}
	other := s.openIn(t, otherRealm, login{})
	onlineIDs := s.storedIDs(t, usersessions.Filter{})
	if len(onlineIDs) != 13 {
		t.Fatalf("%d online sessions before, want 13", len(onlineIDs))
	}
	s.clock.Advance(time.Second)

	r := s.do(t, adminCall(http.MethodPost, realmName, "/logout-all", adminToken, ""))
	var res struct {
		Success []string `json:"successRequests"`
		Failed  []string `json:"failedRequests"`
	}
	r.decode(t, http.StatusOK, &res)
	if !slices.Equal(res.Success, []string{"https://app.test/admin"}) || res.Failed == nil || len(res.Failed) != 0 {
		t.Errorf("logout-all answered %s, want the admin URL of admin-app in successRequests and an empty failedRequests", r.body)
	}
	if ids := s.storedIDs(t, usersessions.Filter{}); len(ids) != 0 {
		t.Errorf("online sessions left after sign out all: %v", ids)
	}
	if ids := s.storedIDs(t, usersessions.Filter{Offline: usersessions.OfflineOnly}); len(ids) != 3 {
		t.Errorf("offline sessions after sign out all: %v, want the 3 kept", ids)
	}
	for _, g := range offline {
		s.refresh(t, confidentialAuth, g.RefreshToken)
	}
	for _, g := range online {
		s.do(t, refreshCall(realmName, confidentialAuth, g.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
	}
	s.do(t, refreshCall(otherRealm, confidentialAuth, other.RefreshToken)).decode(t, http.StatusOK, &tokens{})

	s.adm.push.mu.Lock()
	logouts, all := slices.Clone(s.adm.push.logouts), slices.Clone(s.adm.push.logoutAll)
	deferred := slices.Clone(s.adm.push.deferred)
	s.adm.push.mu.Unlock()
	if slices.Contains(deferred, false) {
		t.Errorf("back-channel logouts attempted during the request (%v per call), want them all queued for the outbox", deferred)
	}
	var told []string
	for _, page := range logouts {
		if len(page) > adminPageSize {
			t.Errorf("a back-channel logout of %d sessions; the walk reads pages of %d", len(page), adminPageSize)
		}
		told = append(told, page...)
	}
	if !slices.Equal(sortedCopy(told), sortedCopy(onlineIDs)) || len(logouts) < 13/adminPageSize {
		t.Errorf("back-channel logouts %v, want each online session once, in pages: %v", logouts, onlineIDs)
	}
	if len(all) != 1 || !all[0].Equal(s.clock.Now().UTC()) {
		t.Errorf("LogoutAll notices %v, want one with the time of the sign-out %v", all, s.clock.Now())
	}
	if !s.adm.policies.Realm(realmName).IsZero() {
		t.Errorf("sign out all set the realm's not-before (%v): offline tokens would stop working", s.adm.policies.Realm(realmName))
	}
	e := s.adm.audit.last(t)
	if e.Action != "logout-all" || e.Outcome != admin.OutcomeSuccess || e.Status != 200 {
		t.Errorf("audit event %+v", e)
	}

	// A client that is down is reported, as Keycloak's failedRequests.
	s.adm.push.mu.Lock()
	s.adm.push.down = []string{"https://app.test/admin"}
	s.adm.push.mu.Unlock()
	s.do(t, adminCall(http.MethodPost, realmName, "/logout-all", adminToken, "")).decode(t, http.StatusOK, &res)
	if len(res.Success) != 0 || !slices.Equal(res.Failed, []string{"https://app.test/admin"}) {
		t.Errorf("with admin-app down, logout-all answered %+v", res)
	}
}

// TestAdminRevokeOfflineToken: DELETE users/{id}/consents/{clientId} removes that client's
// offline client sessions of the user and the offline sessions left without a client.
func TestAdminRevokeOfflineToken(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStore(pgStore(t)), withRealm(withUUIDs))
	first := s.loginAs(t, user, "alice", "", confidential, true)
	second := s.loginAs(t, user, "alice", "", confidential, true)
	bobs := s.loginAs(t, "u-2", "bob", "", confidential, true)
	// An offline session of alice that another client shares: it stays, with that client.
	shared := &usersessions.UserSession{
		ID: "shared-offline", RealmID: realmName, UserID: user, Offline: true, State: usersessions.LoggedIn,
		Started: s.clock.Now(), LastRefresh: s.clock.Now(), ExpiresAt: s.clock.Now().Add(time.Hour),
	}
	shared.Clients = map[string]*usersessions.ClientSession{}
	for _, c := range []string{confidential, spa} {
		shared.Clients[c] = &usersessions.ClientSession{UserSessionID: shared.ID, RealmID: realmName, ClientID: c, Offline: true,
			Started: s.clock.Now(), LastRefresh: s.clock.Now(), ExpiresAt: s.clock.Now().Add(time.Hour)}
	}
	if errs, err := s.cache.Create(s.ctx, []*usersessions.UserSession{shared}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}

	r := s.do(t, adminCall(http.MethodDelete, realmName, "/users/"+user+"/consents/"+confidential, adminToken, ""))
	if r.status != http.StatusNoContent {
		t.Fatalf("DELETE consents = %d %s", r.status, r.body)
	}
	offline := s.storedIDs(t, usersessions.Filter{Offline: usersessions.OfflineOnly})
	if !slices.Equal(offline, sortedCopy([]string{bobs.SessionID, shared.ID})) {
		t.Errorf("offline sessions %v, want bob's and the shared one", offline)
	}
	got, err := s.store.Get(s.ctx, []usersessions.Key{shared.Key()})
	if err != nil || got[0] == nil || len(got[0].Clients) != 1 || got[0].Clients[spa] == nil {
		t.Errorf("the shared offline session %+v, want it with spa only", got)
	}
	for _, g := range []tokens{first, second} {
		s.do(t, refreshCall(realmName, confidentialAuth, g.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
	}
	s.refresh(t, confidentialAuth, bobs.RefreshToken)
	if online := s.storedIDs(t, usersessions.Filter{UserID: user}); len(online) != 2 {
		t.Errorf("alice's online sessions %v, want both kept", online)
	}
	s.do(t, adminCall(http.MethodDelete, realmName, "/users/"+user+"/consents/"+confidential, adminToken, "")).
		refused(t, http.StatusNotFound, "not_found", "offline token not found")
	s.do(t, adminCall(http.MethodDelete, realmName, "/users/"+user+"/consents/nosuch", adminToken, "")).
		refused(t, http.StatusNotFound, "not_found", "client")
}

func TestAdminNotBefore(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withUUIDs))
	type nb struct {
		NotBefore *int64 `json:"notBefore"`
	}
	put := func(path, body string) reply {
		return s.do(t, adminCall(http.MethodPut, realmName, path, adminToken, body))
	}
	for _, target := range []struct {
		path   string
		stored func() time.Time
	}{
		{"/not-before", func() time.Time { return s.adm.policies.Realm(realmName) }},
		{"/clients/" + confidentialUUID + "/not-before", func() time.Time { return s.adm.policies.Client(realmName, confidential) }},
	} {
		t.Run(target.path, func(t *testing.T) {
			var got nb
			s.adminGet(t, target.path, &got)
			if got.NotBefore == nil || *got.NotBefore != 0 {
				t.Fatalf("GET %s = %v, want {\"notBefore\": 0}", target.path, got.NotBefore)
			}
			now := s.clock.Now().Unix()
			for _, tc := range []struct {
				body string
				want int64
			}{
				{`{"action":"now"}`, now},
				{`{"notBefore":1700000000}`, 1700000000},
				{`{"action":"clear"}`, 0},
				{`{"notBefore":1700000001}`, 1700000001},
				{`{"notBefore":0}`, 0},
			} {
				put(target.path, tc.body).decode(t, http.StatusOK, &got)
				if *got.NotBefore != tc.want || epoch(target.stored()) != tc.want {
					t.Errorf("PUT %s: answered %d, stored %v; want %d", tc.body, *got.NotBefore, target.stored(), tc.want)
				}
				s.adminGet(t, target.path, &got)
				if *got.NotBefore != tc.want {
					t.Errorf("GET after PUT %s = %d, want %d", tc.body, *got.NotBefore, tc.want)
				}
			}
			before := target.stored()
			for _, bad := range []struct{ body, desc string }{
				{`{"action":"now","notBefore":5}`, "not both"},
				{`{"notBefore":-1}`, "seconds since the epoch"},
				{`{"action":"later"}`, `"now" or "clear"`},
				{`{}`, "give"},
				{`{"notbefore":5,"when":"now"}`, "malformed"},
				{`now`, "malformed"},
			} {
				put(target.path, bad.body).refused(t, http.StatusBadRequest, "invalid_request", bad.desc)
			}
			r := s.do(t, call{method: http.MethodPut, path: "/admin/realms/" + realmName + target.path,
				header: http.Header{"Authorization": {"Bearer " + adminToken}}, body: `{"action":"now"}`})
			r.refused(t, http.StatusBadRequest, "invalid_request", "application/json")
			if !target.stored().Equal(before) {
				t.Errorf("a refused PUT changed the policy to %v", target.stored())
			}
		})
	}
	s.do(t, adminCall(http.MethodPut, realmName, "/clients/nosuch/not-before", adminToken, `{"action":"now"}`)).refused(t, http.StatusNotFound, "not_found", "client")
	s.do(t, adminCall(http.MethodGet, unknownRealm, "/not-before", adminToken, "")).refused(t, http.StatusNotFound, "not_found", "realm")
	e := s.adm.audit.last(t)
	if e.Action != "set-client-not-before" || e.Outcome != admin.OutcomeFailed || e.Target != "client/nosuch" {
		t.Errorf("audit event %+v", e)
	}
}

func epoch(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func TestAdminPushRevocation(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withUUIDs))
	var res struct {
		Success []string `json:"successRequests"`
		Failed  []string `json:"failedRequests"`
	}
	s.do(t, adminCall(http.MethodPost, realmName, "/push-revocation", adminToken, "")).decode(t, http.StatusOK, &res)
	if !slices.Equal(res.Success, []string{"https://app.test/admin"}) || res.Failed == nil || len(res.Failed) != 0 {
		t.Errorf("push-revocation answered %+v", res)
	}
	s.adm.push.mu.Lock()
	s.adm.push.down = []string{"https://app.test/admin"}
	s.adm.push.mu.Unlock()
	s.do(t, adminCall(http.MethodPost, realmName, "/clients/"+adminApp+"/push-revocation", adminToken, "")).decode(t, http.StatusOK, &res)
	if len(res.Success) != 0 || !slices.Equal(res.Failed, []string{"https://app.test/admin"}) {
		t.Errorf("push of admin-app's not-before while it is down answered %+v", res)
	}
	s.do(t, adminCall(http.MethodPost, realmName, "/clients/"+confidentialUUID+"/push-revocation", adminToken, "")).decode(t, http.StatusOK, &res)
	s.adm.push.mu.Lock()
	pushed := slices.Clone(s.adm.push.notBefore)
	s.adm.push.mu.Unlock()
	if want := []string{realmName + "/", realmName + "/" + adminApp, realmName + "/" + confidential}; !slices.Equal(pushed, want) {
		t.Errorf("pushes %v, want %v (the realm's, then each client's by clientId)", pushed, want)
	}
	s.do(t, adminCall(http.MethodPost, realmName, "/clients/nosuch/push-revocation", adminToken, "")).refused(t, http.StatusNotFound, "not_found", "client")
}

func TestAdminDeliveries(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	now := s.clock.Now()
	var fixture []*usersessions.Delivery
	for i, st := range []usersessions.DeliveryState{usersessions.Failed, usersessions.Pending, usersessions.Failed, usersessions.Delivered, usersessions.Failed} {
		fixture = append(fixture, &usersessions.Delivery{
			ID: fmt.Sprintf("d-%d", i), RealmID: realmName, ClientID: adminApp, Kind: "PUSH_NOT_BEFORE",
			Target: "https://user:hunter2@app.test/admin/k_push_not_before", Payload: []byte("eyJhbGciOi.signed.token"),
			State: st, Attempts: i + 1, NextAttempt: now.Add(time.Minute), LastError: "connection refused", Created: now, Updated: now,
		})
	}
	s.adm.push.mu.Lock()
	s.adm.push.deliveries = fixture
	s.adm.push.mu.Unlock()
	var page []admin.DeliveryRep
	r := s.adminGet(t, "/push-deliveries?state=failed&max=2", &page)
	if len(page) != 2 || page[0].ID != "d-0" || page[1].ID != "d-2" || page[0].State != "failed" || page[0].NextAttempt != 0 {
		t.Errorf("failed deliveries, first page: %+v", page)
	}
	if strings.Contains(string(r.body), "hunter2") || strings.Contains(string(r.body), "eyJ") {
		t.Errorf("the deliveries listing shows a credential or a payload: %s", r.body)
	}
	if page[0].Target != "https://app.test/admin/k_push_not_before" {
		t.Errorf("target %q, want the URL without its user information", page[0].Target)
	}
	next := linkNext(t, r)
	s.do(t, call{method: http.MethodGet, path: next, header: http.Header{"Authorization": {"Bearer " + adminToken}}}).decode(t, http.StatusOK, &page)
	if len(page) != 1 || page[0].ID != "d-4" {
		t.Errorf("failed deliveries, second page: %+v", page)
	}
	s.adminGet(t, "/push-deliveries?state=pending", &page)
	if len(page) != 1 || page[0].ID != "d-1" || page[0].NextAttempt != now.Add(time.Minute).UnixMilli() {
		t.Errorf("pending deliveries %+v", page)
	}
	s.adminGet(t, "/push-deliveries", &page)
	if len(page) != 5 {
		t.Errorf("%d deliveries in all, want 5", len(page))
	}
	s.do(t, adminCall(http.MethodGet, realmName, "/push-deliveries?state=lost", adminToken, "")).refused(t, http.StatusBadRequest, "invalid_request", "state")
	s.do(t, adminCall(http.MethodGet, realmName, "/push-deliveries?first=2", adminToken, "")).refused(t, http.StatusBadRequest, "invalid_request", "after")
}

// TestAdminWithoutPolicyOrPush: a runtime without not-before policies or a push answers
// what needs them with 501 and a reason, and still ends sessions.
func TestAdminWithoutPolicyOrPush(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withUUIDs))
	bare := admin.New(admin.Deps{Store: s.store, Sessions: s.cache, Realms: s.realms})
	srv := newAdminServer(t, bare)
	g := s.open(t, login{})
	for _, c := range []call{
		adminCall(http.MethodGet, realmName, "/not-before", adminToken, ""),
		adminCall(http.MethodPut, realmName, "/not-before", adminToken, `{"action":"now"}`),
		adminCall(http.MethodPost, realmName, "/push-revocation", adminToken, ""),
		adminCall(http.MethodGet, realmName, "/push-deliveries", adminToken, ""),
	} {
		srv.do(t, c).refused(t, http.StatusNotImplemented, "not_implemented", "not configured")
	}
	var res map[string][]string
	srv.do(t, adminCall(http.MethodPost, realmName, "/logout-all", adminToken, "")).decode(t, http.StatusOK, &res)
	if ids := s.storedIDs(t, usersessions.Filter{}); len(ids) != 0 {
		t.Errorf("sign out all without a push left %v", ids)
	}
	s.do(t, refreshCall(realmName, confidentialAuth, g.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
	raw, _ := json.Marshal(res)
	if string(raw) != `{"failedRequests":[],"successRequests":[]}` {
		t.Errorf("logout-all without a push answered %s", raw)
	}
}

// newAdminServer serves the admin API of svc alone, with the stack's credentials.
func newAdminServer(tb testing.TB, svc httpapi.Admin) *stack {
	tb.Helper()
	api := httpapi.New(hclog.NewNullLogger(), httpapi.Deps{
		Ready: ready{}, FrontendToken: frontendToken, AdminToken: adminToken, AdminViewerToken: viewerToken, Admin: svc,
	})
	srv := httptest.NewServer(api)
	tb.Cleanup(srv.Close)
	return &stack{ctx: context.Background(), srv: srv, client: srv.Client()}
}
