package usersessionstest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// survivors returns the sorted keys of those of ss that are still stored.
func survivors(t *testing.T, p usersessions.Provider, ss []*usersessions.UserSession) []string {
	t.Helper()
	got, err := p.Get(t.Context(), keysOf(ss...))
	if err != nil {
		t.Fatal(err)
	}
	return sortedKeys(slices.DeleteFunc(got, func(s *usersessions.UserSession) bool { return s == nil }))
}

func deleteChecks() []check {
	return []check{
		{"removes sessions with their client sessions and counts only those removed", func(t *testing.T, p usersessions.Provider) {
			a := session("r1", "a", "u1", false, "app", "spa")
			b := session("r1", "b", "u1", false, "app")
			keep := session("r1", "keep", "u1", false, "app")
			create(t, p, a, b, keep)
			n, err := p.Delete(t.Context(), []usersessions.Key{a.Key(), {RealmID: "r1", ID: "missing"}, b.Key()})
			if err != nil || n != 2 {
				t.Fatalf("Delete = %d, %v; want 2, nil", n, err)
			}
			if got := survivors(t, p, []*usersessions.UserSession{a, b, keep}); !slices.Equal(got, []string{keyString(keep.Key())}) {
				t.Errorf("left %v, want only %s", got, keyString(keep.Key()))
			}
			// A session created again under a deleted key starts without client sessions:
			// none were left behind.
			fresh := session("r1", "a", "u2", false)
			create(t, p, fresh)
			same(t, "session re-created under a deleted key", stored(fresh), mustGet(t, p, fresh.Key()))
		}},
		{"of missing sessions removes nothing and is not an error", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "a", "u1", false)
			create(t, p, s)
			n, err := p.Delete(t.Context(), []usersessions.Key{{RealmID: "r1", ID: "b"}, {RealmID: "r2", ID: "a"}, {RealmID: "r1", ID: "a", Offline: true}})
			if err != nil || n != 0 {
				t.Errorf("Delete = %d, %v; want 0, nil", n, err)
			}
			mustGet(t, p, s.Key())
		}},
		{"of the online session keeps the offline one with the same id", func(t *testing.T, p usersessions.Provider) {
			on := session("r1", "a", "u1", false, "app")
			off := session("r1", "a", "u1", true, "app")
			create(t, p, on, off)
			if n, err := p.Delete(t.Context(), []usersessions.Key{on.Key()}); err != nil || n != 1 {
				t.Fatalf("Delete = %d, %v; want 1, nil", n, err)
			}
			same(t, "offline session", stored(off), mustGet(t, p, off.Key()))
		}},
	}
}

// matchingFixture is two realms with online and offline sessions of two users and
// three clients.
func matchingFixture() []*usersessions.UserSession {
	return []*usersessions.UserSession{
		session("r1", "s1", "u1", false, "c1", "c2"),
		session("r1", "s1", "u1", true, "c1"),
		session("r1", "s2", "u2", false, "c2"),
		session("r1", "s3", "u2", true, "c1", "c3"),
		session("r1", "s4", "u1", false),
		session("r2", "s1", "u1", false, "c1"),
		session("r2", "s5", "u1", true, "c1"),
	}
}

// selects is the contract's Filter rule, applied to the fixture to know what a provider
// should select.
func selects(f usersessions.Filter, s *usersessions.UserSession) bool {
	_, hasClient := s.Clients[f.ClientID]
	return s.RealmID == f.RealmID && f.Offline.Matches(s.Offline) &&
		(f.UserID == "" || s.UserID == f.UserID) &&
		(f.ClientID == "" || hasClient && usersessions.Live(s.Clients[f.ClientID].ExpiresAt, f.LiveAt)) &&
		usersessions.Live(s.ExpiresAt, f.LiveAt) &&
		(f.ActiveSince.IsZero() || !s.LastRefresh.Before(f.ActiveSince))
}

func deleteMatchingChecks() []check {
	tests := []struct {
		name string
		f    usersessions.Filter
	}{
		{"by realm removes that realm's online sessions only", usersessions.Filter{RealmID: "r1"}},
		{"by realm with Both removes the whole realm", usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}},
		{"by realm with OfflineOnly removes offline sessions only", usersessions.Filter{RealmID: "r1", Offline: usersessions.OfflineOnly}},
		{"by user removes that user's sessions in that realm only", usersessions.Filter{RealmID: "r1", UserID: "u1", Offline: usersessions.Both}},
		{"by user and OfflineOnly keeps the user's online sessions", usersessions.Filter{RealmID: "r1", UserID: "u2", Offline: usersessions.OfflineOnly}},
		{"of a realm with no sessions removes nothing", usersessions.Filter{RealmID: "r9", Offline: usersessions.Both}},
	}
	var checks []check
	for _, tt := range tests {
		checks = append(checks, check{tt.name, func(t *testing.T, p usersessions.Provider) {
			all := matchingFixture()
			create(t, p, all...)
			var want []*usersessions.UserSession
			removed := 0
			for _, s := range all {
				if selects(tt.f, s) {
					removed++
				} else {
					want = append(want, s)
				}
			}
			n, err := p.DeleteMatching(t.Context(), tt.f)
			if err != nil || n != removed {
				t.Errorf("DeleteMatching = %d, %v; want %d, nil", n, err, removed)
			}
			if got := survivors(t, p, all); !slices.Equal(got, sortedKeys(want)) {
				t.Errorf("left %v, want %v", got, sortedKeys(want))
			}
		}})
	}
	clientCases := []struct {
		name string
		f    usersessions.Filter
	}{
		{"with ClientID removes only that client's client sessions, not the user sessions", usersessions.Filter{RealmID: "r1", ClientID: "c1", Offline: usersessions.Both}},
		{"with ClientID and OfflineOnly keeps that client's online client sessions", usersessions.Filter{RealmID: "r1", ClientID: "c1", Offline: usersessions.OfflineOnly}},
	}
	for _, tt := range clientCases {
		checks = append(checks, check{tt.name, func(t *testing.T, p usersessions.Provider) {
			all := matchingFixture()
			create(t, p, all...)
			// How many it reports is not checked: the contract counts user sessions, and
			// none go here.
			if _, err := p.DeleteMatching(t.Context(), tt.f); err != nil {
				t.Fatal(err)
			}
			for _, s := range all {
				want := stored(s)
				if selects(tt.f, s) {
					delete(want.Clients, tt.f.ClientID)
				}
				same(t, keyString(s.Key()), want, mustGet(t, p, s.Key()))
			}
		}})
	}
	return append(checks,
		check{"without a RealmID is ErrInvalid and removes nothing", func(t *testing.T, p usersessions.Provider) {
			all := matchingFixture()
			create(t, p, all...)
			for _, f := range []usersessions.Filter{{Offline: usersessions.Both}, {UserID: "u1", Offline: usersessions.Both}, {ClientID: "c1"}} {
				_, err := p.DeleteMatching(t.Context(), f)
				wantErr(t, fmt.Sprintf("DeleteMatching(%+v)", f), err, spi.ErrInvalid)
			}
			if got := survivors(t, p, all); len(got) != len(all) {
				t.Errorf("left %v, want all %d sessions", got, len(all))
			}
		}},
	)
}

// expireAll calls DeleteExpired until both counts are below limit, as callers do, and
// returns the totals.
func expireAll(t *testing.T, p usersessions.Provider, before time.Time, limit int) (users, clients int) {
	t.Helper()
	for range 1000 {
		u, c, err := p.DeleteExpired(t.Context(), before, limit)
		if err != nil {
			t.Fatalf("DeleteExpired: %v", err)
		}
		if u > limit {
			t.Fatalf("DeleteExpired removed %d user sessions with limit %d", u, limit)
		}
		users, clients = users+u, clients+c
		if u < limit && c < limit {
			return users, clients
		}
	}
	t.Fatal("DeleteExpired never reported fewer than limit")
	return 0, 0
}

func deleteExpiredChecks() []check {
	return []check{
		{"removes exactly the sessions whose ExpiresAt is strictly before the cutoff", func(t *testing.T, p usersessions.Provider) {
			cutoff := at(0)
			expired := session("r1", "expired", "u1", false, "app", "spa")
			expired.ExpiresAt = cutoff.Add(-time.Microsecond)
			expiredOffline := session("r2", "expired-offline", "u1", true, "app")
			expiredOffline.ExpiresAt = cutoff.Add(-24 * time.Hour)
			atCutoff := session("r1", "at-cutoff", "u1", false, "app")
			atCutoff.ExpiresAt = cutoff
			live := session("r1", "live", "u1", true, "app")
			live.ExpiresAt = cutoff.Add(time.Microsecond)
			create(t, p, expired, expiredOffline, atCutoff, live)

			users, clients := expireAll(t, p, cutoff, 100)
			if users != 2 || clients < 0 {
				t.Errorf("DeleteExpired removed %d user and %d client sessions, want 2 user sessions", users, clients)
			}
			for _, s := range []*usersessions.UserSession{atCutoff, live} {
				same(t, "unexpired "+keyString(s.Key()), stored(s), mustGet(t, p, s.Key()))
			}
			for _, s := range []*usersessions.UserSession{expired, expiredOffline} {
				if get(t, p, s.Key()) != nil {
					t.Errorf("expired %s is still stored", keyString(s.Key()))
				}
				// Its client sessions went with it: re-creating the key brings none back.
				fresh := session(s.RealmID, s.ID, "u2", s.Offline)
				create(t, p, fresh)
				same(t, "re-created "+keyString(s.Key()), stored(fresh), mustGet(t, p, s.Key()))
			}
		}},
		{"removes client sessions that expired on their own and keeps their user session", func(t *testing.T, p usersessions.Provider) {
			cutoff := at(0)
			s := session("r1", "s1", "u1", false, "gone", "at-cutoff", "live")
			s.Clients["gone"].ExpiresAt = cutoff.Add(-time.Second)
			s.Clients["at-cutoff"].ExpiresAt = cutoff
			off := session("r1", "s1", "u1", true, "gone")
			off.Clients["gone"].ExpiresAt = cutoff.Add(-time.Microsecond)
			create(t, p, s, off)
			users, clients := expireAll(t, p, cutoff, 100)
			if users != 0 || clients != 2 {
				t.Errorf("DeleteExpired removed %d user and %d client sessions, want 0 and 2", users, clients)
			}
			want := stored(s)
			delete(want.Clients, "gone")
			same(t, "online session", want, mustGet(t, p, s.Key()))
			want = stored(off)
			delete(want.Clients, "gone")
			same(t, "offline session", want, mustGet(t, p, off.Key()))
		}},
		{"removes at most limit user sessions per call and repeating finishes the job", func(t *testing.T, p usersessions.Provider) {
			var all []*usersessions.UserSession
			for i := range 7 {
				s := session("r1", fmt.Sprintf("expired-%d", i), "u1", i%2 == 0, "app")
				s.ExpiresAt = at(-time.Duration(i+1) * time.Minute)
				all = append(all, s)
			}
			live := session("r1", "live", "u1", false, "app")
			create(t, p, append(all, live)...)
			u, _, err := p.DeleteExpired(t.Context(), at(0), 3)
			if err != nil || u != 3 {
				t.Fatalf("first DeleteExpired removed %d user sessions, %v; want 3 of 7", u, err)
			}
			users, _ := expireAll(t, p, at(0), 3)
			if users+u != 7 {
				t.Errorf("removed %d user sessions in all, want 7", users+u)
			}
			if got := survivors(t, p, append(all, live)); !slices.Equal(got, []string{keyString(live.Key())}) {
				t.Errorf("left %v, want only the live session", got)
			}
		}},
		{"removes at most limit client sessions per call when no user session expires", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "c1", "c2", "c3", "c4", "c5", "live")
			for _, c := range []string{"c1", "c2", "c3", "c4", "c5"} {
				s.Clients[c].ExpiresAt = at(-time.Minute)
			}
			create(t, p, s)
			u, c, err := p.DeleteExpired(t.Context(), at(0), 2)
			if err != nil || u != 0 || c != 2 {
				t.Fatalf("first DeleteExpired = %d, %d, %v; want 0, 2, nil", u, c, err)
			}
			_, clients := expireAll(t, p, at(0), 2)
			if clients+c != 5 {
				t.Errorf("removed %d client sessions in all, want 5", clients+c)
			}
			if got := mustGet(t, p, s.Key()); len(got.Clients) != 1 || got.Clients["live"] == nil {
				t.Errorf("client sessions left: %v, want only live", got.Clients)
			}
		}},
		{"with nothing expired removes nothing", func(t *testing.T, p usersessions.Provider) {
			all := matchingFixture()
			create(t, p, all...)
			u, c, err := p.DeleteExpired(t.Context(), at(0), 10)
			if err != nil || u != 0 || c != 0 {
				t.Errorf("DeleteExpired = %d, %d, %v; want 0, 0, nil", u, c, err)
			}
			if got := survivors(t, p, all); len(got) != len(all) {
				t.Errorf("left %v, want all %d", got, len(all))
			}
		}},
	}
}
