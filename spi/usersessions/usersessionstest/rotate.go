package usersessionstest

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// rotate writes rotations through usersessions.Rotate: in one call for a Rotator, with the
// two calls of its fallback for a store without it.
func rotate(t *testing.T, p usersessions.Provider, rs ...usersessions.Rotation) []error {
	t.Helper()
	errs, err := usersessions.Rotate(t.Context(), p, rs)
	return batch(t, errs, err, len(rs))
}

func rotateChecks() []check {
	return []check{
		{"replaces the client session, increments its Version and moves the user session's clock", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app", "spa")
			create(t, p, s)
			c := mustGet(t, p, s.Key()).Clients["app"]
			c.PreviousRefreshToken, c.CurrentRefreshToken = c.CurrentRefreshToken, "rt-2"
			c.LastRefresh, c.RotatedAt = at(time.Minute), at(time.Minute)
			wantErr(t, "rotate", rotate(t, p, usersessions.Rotation{Client: c, LastRefresh: at(time.Minute), ExpiresAt: at(2 * time.Hour)})[0])
			want := stored(s)
			want.LastRefresh, want.ExpiresAt = at(time.Minute), at(2*time.Hour)
			wc := *c
			wc.Version = 2
			want.Clients["app"] = &wc
			same(t, "session after a rotation", want, mustGet(t, p, s.Key()))
		}},
		{"never moves the user session's LastRefresh backwards", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			touch1(t, p, usersessions.Touch{Session: s.Key(), LastRefresh: at(5 * time.Minute), ExpiresAt: at(3 * time.Hour)})
			c := mustGet(t, p, s.Key()).Clients["app"]
			c.CurrentRefreshToken = "rt-2"
			wantErr(t, "rotate", rotate(t, p, usersessions.Rotation{Client: c, LastRefresh: at(time.Minute), ExpiresAt: at(time.Hour)})[0])
			if got := mustGet(t, p, s.Key()); !got.LastRefresh.Equal(at(5*time.Minute)) || !got.ExpiresAt.Equal(at(3*time.Hour)) {
				t.Errorf("user session after an older rotation: LastRefresh %v ExpiresAt %v, want the newer touch's", got.LastRefresh, got.ExpiresAt)
			}
		}},
		{"errors are per item; the client session of a failed one is not written", func(t *testing.T, p usersessions.Provider) {
			a := session("r1", "a", "u1", false, "app")
			b := session("r1", "b", "u1", false, "app")
			create(t, p, a, b)
			good := mustGet(t, p, a.Key()).Clients["app"]
			good.CurrentRefreshToken = "winner"
			stale := mustGet(t, p, b.Key()).Clients["app"]
			stale.Version = 7
			stale.CurrentRefreshToken = "loser"
			orphan := client(session("r1", "missing", "u1", false), "app")
			orphan.Version = 1
			later := usersessions.Rotation{LastRefresh: at(time.Minute), ExpiresAt: at(2 * time.Hour)}
			rs := []usersessions.Rotation{later, later, later, {}}
			rs[0].Client, rs[1].Client, rs[2].Client = good, stale, orphan
			errs := rotate(t, p, rs...)
			wantErr(t, "rotation with the stored Version", errs[0])
			wantErr(t, "rotation with a stale Version", errs[1], spi.ErrConflict)
			wantErr(t, "rotation of a missing session", errs[2], spi.ErrNotFound, spi.ErrConflict)
			wantErr(t, "rotation without a client session", errs[3], spi.ErrInvalid)
			if got := mustGet(t, p, a.Key()); got.Clients["app"].CurrentRefreshToken != "winner" || !got.LastRefresh.Equal(at(time.Minute)) {
				t.Errorf("rotated session: token %q LastRefresh %v, want winner and the rotation's", got.Clients["app"].CurrentRefreshToken, got.LastRefresh)
			}
			gb := mustGet(t, p, b.Key())
			if gb.Clients["app"].CurrentRefreshToken == "loser" || gb.Clients["app"].Version != 1 {
				t.Errorf("refused rotation wrote the client session: %+v", gb.Clients["app"])
			}
			gb.LastRefresh, gb.ExpiresAt = b.LastRefresh, b.ExpiresAt // the touch may be applied
			same(t, "session of a refused rotation, but for its idle clock", stored(b), gb)
			if get(t, p, orphan.Key().Session) != nil {
				t.Errorf("a rotation created user session %s", keyString(orphan.Key().Session))
			}
		}},
	}
}
