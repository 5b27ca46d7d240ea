package expiry

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Seed 004: "For idle timeouts, a two-minute window of time exists that the session is
// active. For example, when you have the timeout set to 30 minutes, it will be 32 minutes
// before the session expires." and "The following logic is only applied if persistent user
// sessions are not active".
func TestIdleWindow_seed004(t *testing.T) {
	tests := []struct {
		name       string
		persistent bool
		s          Session
		t          realm.Timeouts
		expires    time.Time
		validAt    []time.Time
		invalidAt  []time.Time
	}{
		{"seed004 idle 30 min expires at 32 min when persistent sessions are off", false,
			Session{Started: t0}, realm.Timeouts{SSOSessionIdle: 30 * minute},
			at(32 * minute), []time.Time{at(30 * minute), at(31 * minute), at(32*minute - time.Nanosecond)}, []time.Time{at(32 * minute)}},
		{"seed004 idle 30 min expires at 30 min when persistent sessions are on", true,
			Session{Started: t0}, realm.Timeouts{SSOSessionIdle: 30 * minute},
			at(30 * minute), []time.Time{at(30*minute - time.Nanosecond)}, []time.Time{at(30 * minute), at(31 * minute)}},
		{"seed000 Offline Session Idle gets the window too (persistent off)", false,
			Session{Started: t0, Offline: true}, realm.Timeouts{OfflineSessionIdle: day},
			at(day + 2*minute), []time.Time{at(day + minute)}, []time.Time{at(day + 2*minute)}},
		{"REFERENCE the window is for idle only: SSO Session Max is not extended", false,
			Session{Started: t0, LastRefresh: at(9*hour + 59*minute)}, realm.Timeouts{},
			at(10 * hour), []time.Time{at(10*hour - time.Nanosecond)}, []time.Time{at(10 * hour), at(10*hour + minute)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rules(tc.t)
			r.PersistentSessions = tc.persistent
			e := r.UserSession(tc.s)
			if !e.ExpiresAt.Equal(tc.expires) || !e.StoredExpiresAt.Equal(tc.expires) {
				t.Errorf("expires %s (stored %s), want %s", e.ExpiresAt, e.StoredExpiresAt, tc.expires)
			}
			wantWindow := int64(120)
			if tc.persistent {
				wantWindow = 0
			}
			if e.IdleWindowSeconds != wantWindow {
				t.Errorf("window %ds, want %ds", e.IdleWindowSeconds, wantWindow)
			}
			for _, now := range tc.validAt {
				if !r.UserSessionValid(tc.s, now) {
					t.Errorf("invalid at %s", now)
				}
			}
			for _, now := range tc.invalidAt {
				if r.UserSessionValid(tc.s, now) {
					t.Errorf("valid at %s", now)
				}
			}
		})
	}
	// Client sessions get the same window on their idle.
	r := rules(realm.Timeouts{})
	r.PersistentSessions = false
	c := &realm.Client{ClientID: "c", SessionIdle: 10 * minute}
	s, cs := Session{Started: t0}, ClientSession{Started: t0}
	if !r.ClientSessionValid(c, s, cs, at(11*minute)) || r.ClientSessionValid(c, s, cs, at(12*minute)) {
		t.Error("seed004 window on the client session idle: want valid at 11 min, expired at 12 min")
	}
}

// Seed 003: with SSO Session Idle 1 hour and SSO Session Idle Remember Me 120 days,
// Keycloak's cleanup kept expired ordinary sessions for 120 days. Here each row carries its
// own expiry, so cleanup removes the ordinary session and keeps the remember-me one.
func TestCleanup_seed003_rememberMeDoesNotKeepExpiredOrdinarySession(t *testing.T) {
	tm := realm.Timeouts{SSOSessionIdle: hour, SSOSessionIdleRememberMe: 120 * day, SSOSessionMaxRememberMe: 120 * day}
	for _, persistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			r := rules(tm, &realm.Client{ClientID: "app"})
			r.PersistentSessions = persistent
			ordinary := row("ordinary", false)
			remembered := row("remembered", true)
			now := at(2 * hour) // idle for 2 hours

			if r.UserSessionValid(SessionOf(ordinary), now) {
				t.Error("the ordinary session idle for 2 h under a 1 h SSO Session Idle is valid")
			}
			if !r.UserSessionValid(SessionOf(remembered), now) {
				t.Error("the remember-me session is expired")
			}
			r.Stamp(ordinary)
			r.Stamp(remembered)
			window := map[bool]time.Duration{true: 0, false: IdleWindow}[persistent]
			if want := at(hour + window); !ordinary.ExpiresAt.Equal(want) || !ordinary.Clients["app"].ExpiresAt.Equal(want) {
				t.Errorf("ordinary row expires %s (client %s), want %s", ordinary.ExpiresAt, ordinary.Clients["app"].ExpiresAt, want)
			}
			// 120 days of idle reach the 120-day remember-me max first, window or not.
			if want := at(120 * day); !remembered.ExpiresAt.Equal(want) || !remembered.Clients["app"].ExpiresAt.Equal(want) {
				t.Errorf("remember-me row expires %s (client %s), want %s", remembered.ExpiresAt, remembered.Clients["app"].ExpiresAt, want)
			}
			kept := cleanup([]*usersessions.UserSession{ordinary, remembered}, now)
			if len(kept) != 1 || kept[0].ID != "remembered" {
				t.Errorf("cleanup kept %v, want only the remember-me session", ids(kept))
			}
			// Keycloak before 26.5: one cutoff per realm, now − max(idle, idle remember-me),
			// which keeps the ordinary row. The stored expiry is what makes the difference.
			kcCutoff := now.Add(-max(hour, 120*day))
			if !ordinary.LastRefresh.After(kcCutoff) {
				t.Fatal("test premise: Keycloak's single cutoff would have deleted the ordinary session")
			}
		})
	}
}

// Cleanup deletes a session exactly when it is expired by its own rules (DESIGN "Rules that
// must hold", seed 003): over a grid of settings, sessions and times, a row stamped with
// Stamp is removed by a DeleteExpired(before = now) pass iff the session (or, for a client
// session, it or its user session) is not valid at now. At the very instant of ExpiresAt the
// session is already invalid and the row goes at the next pass.
func TestCleanup_seed003_deletesExactlyTheExpired(t *testing.T) {
	realms := map[string]realm.Timeouts{
		"defaults":            {},
		"remember-me longer":  {SSOSessionIdle: hour, SSOSessionMax: 8 * hour, SSOSessionIdleRememberMe: 3 * day, SSOSessionMaxRememberMe: 5 * day},
		"client pair shorter": {ClientSessionIdle: 10 * minute, ClientSessionMax: 2 * hour, ClientOfflineSessionIdle: day},
		"offline limited":     {OfflineSessionMaxLimited: true, OfflineSessionMax: 3 * day, OfflineSessionIdle: 2 * day, ClientOfflineSessionMax: day},
	}
	clients := []*realm.Client{
		{ClientID: "plain"},
		{ClientID: "long-idle", SessionIdle: 2 * hour, OfflineSessionIdle: 40 * day},
		{ClientID: "short", SessionIdle: 5 * minute, SessionMax: 30 * minute, OfflineSessionIdle: hour, OfflineSessionMax: 12 * hour},
	}
	var lastRefreshes = []time.Duration{0, 20 * minute, 50 * minute, 7 * hour, 2 * day}
	var nows = []time.Duration{0, 4 * minute, 11 * minute, 31 * minute, 33 * minute, 61 * minute, 2 * hour, 9 * hour, 10*hour + time.Second, 3 * day, 6 * day, 31 * day, 61 * day}
	checked := 0
	for name, tm := range realms {
		for _, persistent := range []bool{true, false} {
			r := rules(tm, clients...)
			r.PersistentSessions = persistent
			for _, rememberMe := range []bool{false, true} {
				for _, offline := range []bool{false, true} {
					for _, lr := range lastRefreshes {
						for _, clientLR := range []time.Duration{0, lr / 2, lr} {
							us := &usersessions.UserSession{ID: "s", Started: t0, LastRefresh: at(lr), RememberMe: rememberMe, Offline: offline, Clients: map[string]*usersessions.ClientSession{}}
							for _, c := range clients {
								us.Clients[c.ClientID] = &usersessions.ClientSession{ClientID: c.ClientID, Started: t0, LastRefresh: at(clientLR)}
							}
							r.Stamp(us)
							for _, n := range nows {
								now := at(n)
								where := fmt.Sprintf("%s persistent=%v rm=%v offline=%v lr=%s clientLR=%s now=%s", name, persistent, rememberMe, offline, lr, clientLR, n)
								userGone := us.ExpiresAt.Before(now)
								if valid := r.UserSessionValid(SessionOf(us), now); valid == userGone && !now.Equal(us.ExpiresAt) {
									t.Fatalf("%s: user session valid=%v but deleted=%v", where, valid, userGone)
								}
								for id, cs := range us.Clients {
									c, _ := r.Realm.Client(id)
									e := r.ClientSession(c, SessionOf(us), ClientSessionOf(cs))
									if !cs.ExpiresAt.Equal(e.StoredExpiresAt) {
										t.Fatalf("%s client %s: stamped %s, ClientSession stores %s", where, id, cs.ExpiresAt, e.StoredExpiresAt)
									}
									if ends := r.ClientSessionEnds(c, SessionOf(us), ClientSessionOf(cs)); !ends.Equal(e.ExpiresAt) {
										t.Fatalf("%s client %s: ClientSessionEnds %s, ClientSession ends %s", where, id, ends, e.ExpiresAt)
									}
									if ends, full := r.UserSessionEnds(SessionOf(us)), r.UserSession(SessionOf(us)).ExpiresAt; !ends.Equal(full) {
										t.Fatalf("%s: UserSessionEnds %s, UserSession ends %s", where, ends, full)
									}
									gone := userGone || cs.ExpiresAt.Before(now)
									boundary := now.Equal(us.ExpiresAt) || now.Equal(cs.ExpiresAt)
									if valid := e.Valid(now); valid == gone && !boundary {
										t.Fatalf("%s client %s: valid=%v (expires %s by %s) but deleted=%v (row %s, user row %s)", where, id, valid, e.ExpiresAt, e.EndsBy, gone, cs.ExpiresAt, us.ExpiresAt)
									}
									checked++
								}
							}
						}
					}
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d checks", checked)
	}
}

func row(id string, rememberMe bool) *usersessions.UserSession {
	return &usersessions.UserSession{
		ID: id, RealmID: "acme", Started: t0, LastRefresh: t0, RememberMe: rememberMe,
		Clients: map[string]*usersessions.ClientSession{"app": {ClientID: "app", Started: t0, LastRefresh: t0}},
	}
}

// cleanup does what a store's DeleteExpired(before) does to user sessions.
func cleanup(rows []*usersessions.UserSession, before time.Time) []*usersessions.UserSession {
	var kept []*usersessions.UserSession
	for _, r := range rows {
		if !r.ExpiresAt.Before(before) {
			kept = append(kept, r)
		}
	}
	return kept
}

func ids(rows []*usersessions.UserSession) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

// Another client's refresh moves the user session's idle clock without rewriting this
// client's row. The row must not carry the user session's old idle end, or cleanup would
// delete a client session that is still valid (DESIGN: cleanup deletes exactly the expired).
func TestCleanup_clientRowNotCutAtUserIdle(t *testing.T) {
	r := rules(realm.Timeouts{}, &realm.Client{ClientID: "a", SessionIdle: 2 * hour}, &realm.Client{ClientID: "b"})
	us := &usersessions.UserSession{ID: "s", Started: t0, LastRefresh: t0, Clients: map[string]*usersessions.ClientSession{
		"a": {ClientID: "a", Started: t0, LastRefresh: t0},
		"b": {ClientID: "b", Started: t0, LastRefresh: t0},
	}}
	r.Stamp(us)
	// Client b refreshes at 20 min: the user session and b's row are touched, a's row is not.
	us.LastRefresh = at(20 * minute)
	us.Clients["b"].LastRefresh = at(20 * minute)
	us.ExpiresAt = r.UserSession(SessionOf(us)).StoredExpiresAt
	now := at(40 * minute) // past the user session's first idle end (30 min)
	a := us.Clients["a"]
	if !r.ClientSessionValid(&realm.Client{ClientID: "a", SessionIdle: 2 * hour}, SessionOf(us), ClientSessionOf(a), now) {
		t.Fatal("client a should be valid: its own idle is 2 h and its user session is alive")
	}
	if a.ExpiresAt.Before(now) {
		t.Errorf("client a's row (expires %s) would be deleted at %s while valid", a.ExpiresAt, now)
	}
}
