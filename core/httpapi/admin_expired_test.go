package httpapi_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Issue 19, point 7: with persistent sessions, a session (or client session) that has ended
// by its own rules never shows in a listing or a count, even before cleanup has removed it.
// No cleanup runs in these stacks: the expired rows stay in the store throughout.
func TestExpiredSessionsNeverShowBeforeCleanup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		store func(testing.TB) usersessions.Provider
	}{
		{"memory", func(tb testing.TB) usersessions.Provider { return memoryStore(tb) }},
		{"postgres", func(tb testing.TB) usersessions.Provider { return pgStore(tb) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, withStore(tc.store(t)), withRealm(withUUIDs))
			alice := s.loginAs(t, user, "alice", "198.51.100.7", confidential, false)
			s.attach(t, alice.SessionID, short, "openid") // short's client sessions idle out after shortIdle
			s.loginAs(t, "u-2", "bob", "203.0.113.9", spa, false)

			s.clock.Advance(shortIdle + time.Second)
			t.Run("a client session past its own idle timeout", func(t *testing.T) {
				stats := s.stats(t)
				if want := []string{confidential, spa}; !slices.Equal(stats, want) {
					t.Errorf("client-session-stats lists %v, want %v (short's client session has ended)", stats, want)
				}
				if n := s.count(t, "/clients/"+short+"/session-count"); n != 0 {
					t.Errorf("short's session-count = %d, want 0", n)
				}
				var listed []admin.SessionRep
				s.adminGet(t, "/clients/"+short+"/user-sessions", &listed)
				if len(listed) != 0 {
					t.Errorf("short's user-sessions lists %v, want none", sessionIDs(listed))
				}
				var mine []admin.SessionRep
				s.adminGet(t, "/users/"+user+"/sessions", &mine)
				if len(mine) != 1 || mine[0].Clients[short] != "" || mine[0].Clients[confidentialUUID] != confidential {
					t.Errorf("alice's sessions %+v, want one, with confidential and without short", mine)
				}
			})

			s.clock.Advance(31 * time.Minute) // past the realm's default SSO idle timeout (30 min)
			t.Run("user sessions past the realm's idle timeout", func(t *testing.T) {
				if stats := s.stats(t); len(stats) != 0 {
					t.Errorf("client-session-stats lists %v, want none", stats)
				}
				for _, path := range []string{"/users/" + user + "/sessions", "/users/u-2/sessions", "/clients/" + spa + "/user-sessions", "/sessions"} {
					var got []admin.SessionRep
					s.adminGet(t, path, &got)
					if len(got) != 0 {
						t.Errorf("%s lists %v, want none", path, sessionIDs(got))
					}
				}
				for _, path := range []string{"/clients/" + confidentialUUID + "/session-count", "/clients/" + spa + "/session-count"} {
					if n := s.count(t, path); n != 0 {
						t.Errorf("%s = %d, want 0", path, n)
					}
				}
				n, err := s.store.Count(s.ctx, usersessions.Filter{RealmID: realmName})
				if err != nil || n != 2 {
					t.Errorf("the store holds %d sessions (%v), want both expired ones still there (no cleanup ran)", n, err)
				}
			})
		})
	}
}

// stats is the clientIds client-session-stats lists.
func (s *stack) stats(tb testing.TB) []string {
	tb.Helper()
	var stats []admin.ClientStat
	s.adminGet(tb, "/client-session-stats", &stats)
	var ids []string
	for _, st := range stats {
		ids = append(ids, st.ClientID)
	}
	return ids
}

// count is the count a session-count route answers.
func (s *stack) count(tb testing.TB, path string) int64 {
	tb.Helper()
	var c struct {
		Count *int64 `json:"count"`
	}
	s.adminGet(tb, path, &c)
	if c.Count == nil {
		tb.Fatalf("%s answered no count", path)
	}
	return *c.Count
}
