package usersessionstest

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

func createChecks() []check {
	return []check{
		{"stores every field with its client sessions at Version 1", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app", "spa")
			create(t, p, s)
			same(t, "stored session", stored(s), mustGet(t, p, s.Key()))
		}},
		{"without client sessions stores none", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false)
			s.Clients = nil
			create(t, p, s)
			if got := mustGet(t, p, s.Key()); len(got.Clients) != 0 {
				t.Errorf("Clients = %v, want none", got.Clients)
			}
		}},
		{"a duplicate key is ErrExists per item and does not undo the others", func(t *testing.T, p usersessions.Provider) {
			first := session("r1", "dup", "u1", false, "app")
			create(t, p, first)
			again := session("r1", "dup", "someone-else", false)
			fresh := session("r1", "fresh", "u2", false)
			twice := session("r1", "twice", "u3", false)
			twiceAgain := session("r1", "twice", "u4", false)
			errs, err := p.Create(t.Context(), []*usersessions.UserSession{again, fresh, twice, twiceAgain})
			errs = batch(t, errs, err, 4)
			wantErr(t, "create of an existing key", errs[0], spi.ErrExists)
			wantErr(t, "create of a new key in the same batch", errs[1])
			wantErr(t, "first create of a key given twice", errs[2])
			wantErr(t, "second create of a key given twice", errs[3], spi.ErrExists)
			same(t, "the session first created", stored(first), mustGet(t, p, first.Key()))
			same(t, "the session created beside a duplicate", stored(fresh), mustGet(t, p, fresh.Key()))
			same(t, "a key given twice keeps the first", stored(twice), mustGet(t, p, twice.Key()))
		}},
		{"online and offline sessions with the same id are distinct", func(t *testing.T, p usersessions.Provider) {
			on := session("r1", "same-id", "u1", false, "app")
			off := session("r1", "same-id", "u1", true, "app", "cli")
			off.ExpiresAt = at(30 * 24 * time.Hour)
			create(t, p, on, off)
			same(t, "online session", stored(on), mustGet(t, p, on.Key()))
			same(t, "offline session", stored(off), mustGet(t, p, off.Key()))
		}},
		{"the same id in two realms is two sessions", func(t *testing.T, p usersessions.Provider) {
			a := session("r1", "same-id", "u1", false, "app")
			b := session("r2", "same-id", "u9", false)
			create(t, p, a, b)
			same(t, "realm r1", stored(a), mustGet(t, p, a.Key()))
			same(t, "realm r2", stored(b), mustGet(t, p, b.Key()))
		}},
		{"stores a copy: changing the caller's value afterwards changes nothing", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			want := stored(s)
			create(t, p, s)
			s.UserID, s.Notes["auth_time"], s.Clients["app"].Scope = "changed", "changed", "changed"
			s.Clients["extra"] = client(s, "extra")
			same(t, "stored session", want, mustGet(t, p, want.Key()))
		}},
		{"timestamps keep microseconds and come back in UTC", func(t *testing.T, p usersessions.Provider) {
			zone := time.FixedZone("UTC+05:30", 5*3600+1800)
			s := session("r1", "s1", "u1", false, "app")
			s.Started = time.Date(2030, 1, 2, 3, 4, 5, 123456000, zone)
			s.LastRefresh = time.Date(2030, 1, 2, 3, 4, 5, 999999000, zone)
			s.Clients["app"].RotatedAt = time.Date(2030, 1, 2, 3, 4, 5, 1000, zone)
			create(t, p, s)
			got := mustGet(t, p, s.Key())
			for _, tt := range []struct {
				name      string
				want, got time.Time
			}{
				{"Started", s.Started, got.Started},
				{"LastRefresh", s.LastRefresh, got.LastRefresh},
				{"ExpiresAt", s.ExpiresAt, got.ExpiresAt},
				{"client RotatedAt", s.Clients["app"].RotatedAt, got.Clients["app"].RotatedAt},
			} {
				if !tt.got.Equal(tt.want) {
					t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
				}
				if tt.got.Location() != time.UTC {
					t.Errorf("%s is in %v, want UTC", tt.name, tt.got.Location())
				}
			}
		}},
	}
}

func getChecks() []check {
	return []check{
		{"returns sessions in the order asked with nil for missing", func(t *testing.T, p usersessions.Provider) {
			a := session("r1", "a", "u1", false, "app")
			b := session("r1", "b", "u2", true, "app")
			c := session("r2", "c", "u3", false)
			create(t, p, a, b, c)
			keys := []usersessions.Key{
				c.Key(), {RealmID: "r1", ID: "missing"}, a.Key(),
				{RealmID: "r1", ID: "b"}, // b is offline only
				b.Key(), {RealmID: "r2", ID: "a"}, a.Key(),
			}
			want := []*usersessions.UserSession{stored(c), nil, stored(a), nil, stored(b), nil, stored(a)}
			got, err := p.Get(t.Context(), keys)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Get returned %v for %d keys", keyStrings(got), len(keys))
			}
			for i := range want {
				if (want[i] == nil) != (got[i] == nil) {
					t.Errorf("entry %d (%s): got %v", i, keyString(keys[i]), keyStrings(got[i:i+1]))
					continue
				}
				if want[i] != nil {
					same(t, "entry "+keyString(keys[i]), want[i], got[i])
				}
			}
		}},
		{"of no keys returns nothing", func(t *testing.T, p usersessions.Provider) {
			create(t, p, session("r1", "a", "u1", false))
			got, err := p.Get(t.Context(), nil)
			if err != nil || len(got) != 0 {
				t.Errorf("Get(nil) = %v, %v; want empty, nil", keyStrings(got), err)
			}
		}},
		{"returns a copy: changing it changes nothing stored", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "a", "u1", false, "app")
			create(t, p, s)
			got := mustGet(t, p, s.Key())
			got.UserID, got.Notes["auth_time"], got.Clients["app"].Scope = "changed", "changed", "changed"
			delete(got.Clients, "app")
			same(t, "stored session", stored(s), mustGet(t, p, s.Key()))
		}},
	}
}

func updateChecks() []check {
	return []check{
		{"with the stored Version replaces the fields and increments Version", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			for v := int64(1); v <= 3; v++ {
				u := mustGet(t, p, s.Key())
				u.State = usersessions.LoggingOut
				u.IPAddress = "198.51.100.1"
				u.RememberMe = false
				u.ExpiresAt = at(time.Duration(v) * time.Minute)
				u.Notes = map[string]string{"round": string(rune('0' + v))}
				errs, err := p.Update(t.Context(), []*usersessions.UserSession{u})
				wantErr(t, "update", batch(t, errs, err, 1)[0])
				want := *u
				want.Version = v + 1
				same(t, "updated session", &want, mustGet(t, p, s.Key()))
			}
		}},
		{"with a stale Version is ErrConflict and changes nothing", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			first := mustGet(t, p, s.Key())
			first.State = usersessions.LoggedOut
			errs, err := p.Update(t.Context(), []*usersessions.UserSession{first})
			wantErr(t, "first update", batch(t, errs, err, 1)[0])
			before := mustGet(t, p, s.Key())
			for _, v := range []int64{0, 1, 3} {
				stale := *before
				stale.Version = v
				stale.UserID = "intruder"
				errs, err = p.Update(t.Context(), []*usersessions.UserSession{&stale})
				wantErr(t, "update with a wrong Version", batch(t, errs, err, 1)[0], spi.ErrConflict)
			}
			same(t, "session after refused updates", before, mustGet(t, p, s.Key()))
		}},
		{"of a missing session is ErrNotFound per item and does not stop the batch", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false)
			create(t, p, s)
			missing := session("r1", "missing", "u1", false)
			missing.Version = 1
			offline := session("r1", "s1", "u1", true) // only the online one exists
			offline.Version = 1
			u := mustGet(t, p, s.Key())
			u.UserAgent = "updated"
			errs, err := p.Update(t.Context(), []*usersessions.UserSession{missing, u, offline})
			errs = batch(t, errs, err, 3)
			wantErr(t, "update of a missing session", errs[0], spi.ErrNotFound)
			wantErr(t, "update beside a missing one", errs[1])
			wantErr(t, "update of the offline twin of an online session", errs[2], spi.ErrNotFound)
			if got := mustGet(t, p, s.Key()); got.UserAgent != "updated" || got.Version != 2 {
				t.Errorf("session after update: UserAgent %q Version %d, want updated 2", got.UserAgent, got.Version)
			}
			if get(t, p, missing.Key()) != nil || get(t, p, offline.Key()) != nil {
				t.Error("Update created a session")
			}
		}},
		{"leaves client sessions alone", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app", "spa")
			create(t, p, s)
			want := stored(s)
			for _, clients := range []map[string]*usersessions.ClientSession{
				nil,
				{"app": client(s, "app"), "new": client(s, "new")},
			} {
				u := mustGet(t, p, s.Key())
				u.Clients = clients
				if clients != nil {
					u.Clients["app"].Scope = "changed"
				}
				errs, err := p.Update(t.Context(), []*usersessions.UserSession{u})
				wantErr(t, "update", batch(t, errs, err, 1)[0])
				want.Version++
			}
			same(t, "session after updates", want, mustGet(t, p, s.Key()))
		}},
		{"of UserID moves the session between users' listings", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			u := mustGet(t, p, s.Key())
			u.UserID = "u2"
			errs, err := p.Update(t.Context(), []*usersessions.UserSession{u})
			wantErr(t, "update", batch(t, errs, err, 1)[0])
			for user, want := range map[string]int{"u1": 0, "u2": 1} {
				if got := listAll(t, p, usersessions.Filter{RealmID: "r1", UserID: user}, 10); len(got) != want {
					t.Errorf("sessions of %s: %v, want %d", user, keyStrings(got), want)
				}
			}
		}},
	}
}

// touch1 applies one touch that must succeed.
func touch1(t *testing.T, p usersessions.Provider, tc usersessions.Touch) {
	t.Helper()
	errs, err := p.Touch(t.Context(), []usersessions.Touch{tc})
	wantErr(t, "touch", batch(t, errs, err, 1)[0])
}

// touched returns what a provider should hold after created session s took touch tc.
func touched(s *usersessions.UserSession, tc usersessions.Touch) *usersessions.UserSession {
	want := stored(s)
	want.LastRefresh, want.ExpiresAt = tc.LastRefresh, tc.ExpiresAt
	if c := want.Clients[tc.ClientID]; c != nil {
		c.LastRefresh, c.ExpiresAt = tc.LastRefresh, tc.ClientExpiresAt
	}
	return want
}

func touchChecks() []check {
	return []check{
		{"moves LastRefresh and ExpiresAt forward and keeps Version", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			touch := usersessions.Touch{Session: s.Key(), LastRefresh: at(time.Minute), ExpiresAt: at(2 * time.Hour)}
			touch1(t, p, touch)
			same(t, "touched session", touched(s, touch), mustGet(t, p, s.Key()))
		}},
		{"never moves LastRefresh backwards", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			newer := usersessions.Touch{Session: s.Key(), LastRefresh: at(5 * time.Minute), ExpiresAt: at(2 * time.Hour),
				ClientID: "app", ClientExpiresAt: at(90 * time.Minute)}
			older := usersessions.Touch{Session: s.Key(), LastRefresh: at(time.Minute), ExpiresAt: at(time.Hour + time.Minute),
				ClientID: "app", ClientExpiresAt: at(31 * time.Minute)}
			touch1(t, p, newer)
			touch1(t, p, older)
			same(t, "session after a newer then an older touch", touched(s, newer), mustGet(t, p, s.Key()))
		}},
		{"commutes: the same touches in either order give the same session", func(t *testing.T, p usersessions.Provider) {
			a := session("r1", "a", "u1", false, "app")
			b := session("r1", "b", "u1", false, "app")
			create(t, p, a, b)
			mk := func(k usersessions.Key, m time.Duration) usersessions.Touch {
				return usersessions.Touch{Session: k, LastRefresh: at(m), ExpiresAt: at(time.Hour + m), ClientID: "app", ClientExpiresAt: at(30*time.Minute + m)}
			}
			for _, order := range [][]usersessions.Touch{
				{mk(a.Key(), time.Minute), mk(a.Key(), 3*time.Minute), mk(a.Key(), 2*time.Minute)},
				{mk(b.Key(), 2*time.Minute), mk(b.Key(), time.Minute), mk(b.Key(), 3*time.Minute)},
			} {
				errs, err := p.Touch(t.Context(), order)
				for i, e := range batch(t, errs, err, len(order)) {
					wantErr(t, "touch "+string(rune('1'+i)), e)
				}
			}
			ga, gb := mustGet(t, p, a.Key()), mustGet(t, p, b.Key())
			last := at(3 * time.Minute)
			for _, g := range []*usersessions.UserSession{ga, gb} {
				if !g.LastRefresh.Equal(last) || !g.ExpiresAt.Equal(at(time.Hour+3*time.Minute)) ||
					!g.Clients["app"].LastRefresh.Equal(last) || !g.Clients["app"].ExpiresAt.Equal(at(33*time.Minute)) {
					t.Errorf("%s after touches: LastRefresh %v ExpiresAt %v, client %v %v; want the latest touch's",
						keyString(g.Key()), g.LastRefresh, g.ExpiresAt, g.Clients["app"].LastRefresh, g.Clients["app"].ExpiresAt)
				}
				if g.Version != 1 || g.Clients["app"].Version != 1 {
					t.Errorf("%s: Versions %d/%d after touches, want 1/1", keyString(g.Key()), g.Version, g.Clients["app"].Version)
				}
			}
		}},
		{"with ClientID moves that client session's clock too and no other", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app", "spa")
			create(t, p, s)
			touch := usersessions.Touch{Session: s.Key(), LastRefresh: at(time.Minute), ExpiresAt: at(2 * time.Hour),
				ClientID: "app", ClientExpiresAt: at(45 * time.Minute)}
			touch1(t, p, touch)
			same(t, "session after a client touch", touched(s, touch), mustGet(t, p, s.Key()))
		}},
		{"of a missing session or client session is ErrNotFound per item", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			offline := s.Key()
			offline.Offline = true
			touches := []usersessions.Touch{
				{Session: usersessions.Key{RealmID: "r1", ID: "missing"}, LastRefresh: at(time.Minute), ExpiresAt: at(time.Hour)},
				{Session: s.Key(), LastRefresh: at(time.Minute), ExpiresAt: at(2 * time.Hour)},
				{Session: offline, LastRefresh: at(time.Minute), ExpiresAt: at(time.Hour)},
				{Session: s.Key(), LastRefresh: at(2 * time.Minute), ExpiresAt: at(time.Hour), ClientID: "no-such-client", ClientExpiresAt: at(time.Hour)},
			}
			errs, err := p.Touch(t.Context(), touches)
			errs = batch(t, errs, err, len(touches))
			wantErr(t, "touch of a missing session", errs[0], spi.ErrNotFound)
			wantErr(t, "touch beside missing ones", errs[1])
			wantErr(t, "touch of the offline twin of an online session", errs[2], spi.ErrNotFound)
			wantErr(t, "touch of a missing client session", errs[3], spi.ErrNotFound)
			if got := mustGet(t, p, s.Key()); !got.LastRefresh.Equal(at(time.Minute)) {
				t.Errorf("LastRefresh = %v, want %v: only the touch that succeeded applies, not part of a failed one", got.LastRefresh, at(time.Minute))
			}
			if get(t, p, offline) != nil {
				t.Error("Touch created a session")
			}
		}},
	}
}
