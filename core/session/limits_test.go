package session

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// recorded keeps strings; safe for concurrent use.
type recorded struct {
	mu    sync.Mutex
	items []string
}

func (r *recorded) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, s)
}

func (r *recorded) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.items)
}

// endForLimit stands in for the admin API's EndForLimit: it removes the session and
// records it.
func (f *fixture) endForLimit(ctx context.Context, realmName, id string, offline bool, limit string) error {
	if _, err := f.store.Delete(ctx, []usersessions.Key{{RealmID: realmName, ID: id, Offline: offline}}); err != nil {
		return err
	}
	name := id
	if offline {
		name += " offline"
	}
	f.ended.add(name + " " + limit)
	return nil
}

func withLimits(l realm.SessionLimits) func(*config) {
	return func(c *config) {
		c.limits = true
		c.realm.SessionLimits = l
	}
}

// liveIDs are the ids of the realm's live sessions of one kind.
func (f *fixture) liveIDs(offline bool) []string {
	f.t.Helper()
	sel := usersessions.OnlineOnly
	if offline {
		sel = usersessions.OfflineOnly
	}
	got, err := f.store.List(f.ctx, usersessions.Filter{RealmID: realmName, Offline: sel, LiveAt: f.clock.Now()}, usersessions.Page{Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, us := range got {
		ids = append(ids, us.ID)
	}
	slices.Sort(ids)
	return ids
}

// Each limit (of 2) with each behaviour: two logins the limit selects, a minute apart, the
// first then used again, and a third. Deny refuses the third and changes nothing; Terminate
// oldest ends the least recently used (the second) to make room. A login the limit does
// not select (another user, client or realm) is neither counted nor ended.
func TestOpen_sessionLimits_eachLimitWithEachBehaviour(t *testing.T) {
	limits := []struct {
		name string
		set  func(realm.Limit) realm.SessionLimits
		// selected is the i-th login the limit counts; other is one it does not.
		selected func(i int) OpenRequest
		other    OpenRequest
	}{
		{sessionlimit.UserRealm, func(l realm.Limit) realm.SessionLimits { return realm.SessionLimits{UserRealm: l} },
			func(i int) OpenRequest { return OpenRequest{ClientID: []string{"app", "other"}[i%2]} }, OpenRequest{UserID: "u-2"}},
		{sessionlimit.UserClient, func(l realm.Limit) realm.SessionLimits { return realm.SessionLimits{UserClient: l} },
			func(int) OpenRequest { return OpenRequest{} }, OpenRequest{ClientID: "other"}},
		{sessionlimit.Client, func(l realm.Limit) realm.SessionLimits { return realm.SessionLimits{Client: l} },
			func(i int) OpenRequest { return OpenRequest{UserID: []string{"u-1", "u-2", "u-3", "u-4"}[i]} }, OpenRequest{ClientID: "other"}},
		{sessionlimit.Realm, func(l realm.Limit) realm.SessionLimits { return realm.SessionLimits{Realm: l} },
			func(i int) OpenRequest {
				return OpenRequest{UserID: []string{"u-1", "u-2", "u-3", "u-4"}[i], ClientID: []string{"app", "other"}[i%2]}
			}, OpenRequest{Realm: "zeta"}},
	}
	for _, lim := range limits {
		for _, terminate := range []bool{false, true} {
			name := lim.name + "/" + realm.DenyNewSession
			if terminate {
				name = lim.name + "/" + realm.TerminateOldestSession
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t, withLimits(lim.set(realm.Limit{Max: 2, Terminate: terminate})))
				f.setRealm(func(r *realm.Realm) { r.SessionLimits.ErrorMessage = "Too many" })
				f.open(lim.other)
				first := f.open(lim.selected(0))
				f.clock.Advance(time.Minute)
				second := f.open(lim.selected(1))
				f.clock.Advance(time.Minute)
				f.mustRefresh(first.refreshClient(f), first.RefreshToken) // the first is now used last
				f.clock.Advance(time.Minute)
				before := f.liveIDs(false)
				req := lim.selected(2)
				req.Realm, req.ClientID, req.UserID, req.Username, req.Scope =
					realmName, orDefault(req.ClientID, "app"), orDefault(req.UserID, user), "x", "openid"
				g, err := f.svc.Open(f.ctx, req)
				if !terminate {
					var ex *sessionlimit.ExceededError
					if !errors.As(err, &ex) || ex.Limit != lim.name || ex.Max != 2 || ex.Message != "Too many" {
						t.Fatalf("third login: %v, want an ExceededError of %s", err, lim.name)
					}
					if e, ok := f.events.last(EventLoginRefused); !ok || e.Refusal != RefusedSessionLimit {
						t.Errorf("refusal event %+v", e)
					}
					if after := f.liveIDs(false); !slices.Equal(after, before) {
						t.Errorf("live sessions %v after a refusal, want those there were: %v", after, before)
					}
					return
				}
				if err != nil {
					t.Fatalf("third login: %v", err)
				}
				if got, want := f.ended.all(), []string{second.SessionID + " " + lim.name}; !slices.Equal(got, want) {
					t.Errorf("ended %v, want the least recently used: %v", got, want)
				}
				live := f.liveIDs(false)
				if !slices.Contains(live, first.SessionID) || !slices.Contains(live, g.SessionID) || slices.Contains(live, second.SessionID) {
					t.Errorf("live %v; want the first and the new one, not the second", live)
				}
			})
		}
	}
}

// refreshClient is the client a grant's refresh token belongs to.
func (g *Grant) refreshClient(f *fixture) string {
	f.t.Helper()
	us := f.session(g.SessionID, g.Offline)
	for id := range us.Clients {
		return id
	}
	f.t.Fatal("no client session")
	return ""
}

// Offline sessions are limited only when the realm says so, and then counted apart from
// online ones: an online login does not end an offline session, nor the other way round.
func TestOpen_sessionLimits_offlineCountedOnlyWhenAskedAndApart(t *testing.T) {
	offline := OpenRequest{Scope: "openid offline_access", OfflineAccess: true}
	t.Run("not counted", func(t *testing.T) {
		f := newFixture(t, withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1, Terminate: true}}))
		a := f.open(offline)
		f.clock.Advance(time.Minute)
		b := f.open(offline)
		if got := f.liveIDs(true); len(got) != 2 {
			t.Errorf("live offline %v, want both: offline sessions are not limited", got)
		}
		if got := f.liveIDs(false); !slices.Equal(got, []string{b.SessionID}) {
			t.Errorf("live online %v, want the second's only (the first's online session %s made room)", got, a.SessionID)
		}
	})
	t.Run("counted, deny", func(t *testing.T) {
		f := newFixture(t, withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}, CountOffline: true}))
		first := f.open(offline)
		if err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, SessionID: first.SessionID}); err != nil {
			t.Fatal(err) // the online session goes; the offline one stays
		}
		_, err := f.svc.Open(f.ctx, OpenRequest{Realm: realmName, ClientID: "app", UserID: user, Scope: "openid offline_access", OfflineAccess: true})
		var ex *sessionlimit.ExceededError
		if !errors.As(err, &ex) || !ex.Offline {
			t.Fatalf("second offline login: %v, want refused for the offline sessions", err)
		}
		f.open(OpenRequest{}) // an online login is not counted against offline sessions
	})
	t.Run("counted, terminate", func(t *testing.T) {
		f := newFixture(t, withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1, Terminate: true}, CountOffline: true}))
		a := f.open(offline)
		f.clock.Advance(time.Minute)
		b := f.open(offline)
		if got, want := f.ended.all(), []string{a.SessionID + " " + sessionlimit.UserRealm, a.SessionID + " offline " + sessionlimit.UserRealm}; !slices.Equal(got, want) {
			t.Errorf("ended %v, want %v", got, want)
		}
		if got := f.liveIDs(true); !slices.Equal(got, []string{b.SessionID}) {
			t.Errorf("live offline %v, want %s", got, b.SessionID)
		}
	})
}

// Transient sessions are never stored, so never counted nor limited.
func TestOpen_sessionLimits_transientNotCounted(t *testing.T) {
	f := newFixture(t, withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}}))
	f.open(OpenRequest{})
	f.open(OpenRequest{Transient: true})
}

// A realm with limits and no enforcer wired fails loudly rather than not limiting.
func TestOpen_sessionLimitsWithoutAnEnforcerFail(t *testing.T) {
	f := newFixture(t, withRealm(func(r *realm.Realm) { r.SessionLimits.UserRealm.Max = 1 }))
	if _, err := f.svc.Open(f.ctx, OpenRequest{Realm: realmName, ClientID: "app", UserID: user}); err == nil {
		t.Fatal("opened with a limit and no enforcer")
	}
}

// Single sign-on into another client adds no user session: only the limits of a client
// count it, and the code of a login redeemed (the same client attached again) is not
// counted twice.
func TestAttach_sessionLimits_onlyAClientsLimitsCountAJoin(t *testing.T) {
	f := newFixture(t, withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}, UserClient: realm.Limit{Max: 1}}))
	onApp := f.open(OpenRequest{})
	attach := func(id, client string) error {
		_, err := f.svc.Attach(f.ctx, AttachRequest{Realm: realmName, SessionID: id, ClientID: client, Scope: "openid"})
		return err
	}
	if err := attach(onApp.SessionID, "app"); err != nil {
		t.Fatalf("the same client again (a code redeemed): %v", err)
	}
	if err := attach(onApp.SessionID, "other"); err != nil {
		t.Fatalf("SSO into another client, under the user's realm limit of 1: %v", err)
	}
	f.setRealm(func(r *realm.Realm) { r.SessionLimits.UserRealm.Max = 0 })
	onOther := f.open(OpenRequest{ClientID: "plain"})
	var ex *sessionlimit.ExceededError
	if err := attach(onOther.SessionID, "app"); !errors.As(err, &ex) || ex.Limit != sessionlimit.UserClient {
		t.Fatalf("SSO into app from a second session, the user on app already: %v, want %s refused", err, sessionlimit.UserClient)
	}
	if e, ok := f.events.last(EventLoginRefused); !ok || e.SessionID != onOther.SessionID {
		t.Errorf("refusal event %+v, want the session it would have joined", e)
	}
}
