package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// setRealm changes acme while the stack runs, as the admin API would.
func (s *stack) setRealm(tb testing.TB, change func(*realm.Realm)) {
	tb.Helper()
	r, ok := s.realms.Realm(realmName)
	if !ok {
		tb.Fatal("no realm acme")
	}
	r = r.Clone()
	change(r)
	if _, err := s.realms.Put(r); err != nil {
		tb.Fatal(err)
	}
}

// TestLogoutRefusesRetiredTokens: issue 15, "the logout endpoint accepts a refresh token that
// rotation retired or a not-before policy revoked". Through the endpoint, on PostgreSQL: such
// a token is refused with refresh's invalid_grant and the session goes on; the current token
// logs out.
func TestLogoutRefusesRetiredTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		retire func(s *stack, login tokens) (retired, current string)
		want   string
	}{
		{"rotated out beyond max reuse", func(s *stack, login tokens) (string, string) {
			next := s.refresh(t, confidentialAuth, login.RefreshToken)
			s.clock.Advance(time.Minute)
			return login.RefreshToken, next.RefreshToken
		}, "Maximum allowed refresh token reuse exceeded"},
		{"two rotations back", func(s *stack, login tokens) (string, string) {
			next := s.refresh(t, confidentialAuth, login.RefreshToken)
			s.clock.Advance(time.Minute)
			return login.RefreshToken, s.refresh(t, confidentialAuth, next.RefreshToken).RefreshToken
		}, "Stale token"},
		{"realm not-before set after it", func(s *stack, login tokens) (string, string) {
			s.clock.Advance(2 * time.Second)
			s.setRealm(t, func(r *realm.Realm) { r.NotBefore = s.clock.Now() })
			return login.RefreshToken, ""
		}, "realm's not-before policy"},
		{"client not-before set after it", func(s *stack, login tokens) (string, string) {
			s.clock.Advance(2 * time.Second)
			s.setRealm(t, func(r *realm.Realm) {
				c, _ := r.Client(confidential)
				c.NotBefore = s.clock.Now()
			})
			return login.RefreshToken, ""
		}, "client's not-before policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, withStore(pgStore(t)), withRotation(0))
			login := s.open(t, login{})
			retired, current := tc.retire(s, login)
			before := s.snapshot(t)
			s.do(t, form(logoutPath(realmName), confidentialAuth, "refresh_token", retired)).
				refused(t, http.StatusBadRequest, "invalid_grant", tc.want)
			s.unchanged(t, before)
			if current == "" {
				return
			}
			if got := s.do(t, form(logoutPath(realmName), confidentialAuth, "refresh_token", current)); got.status != http.StatusNoContent {
				t.Fatalf("logout with the current token: %d %s", got.status, got.body)
			}
			if len(s.storedIDs(t, usersessions.Filter{Offline: usersessions.Both})) != 0 {
				t.Error("the session is still stored after logout")
			}
		})
	}
}
