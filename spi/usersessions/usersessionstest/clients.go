package usersessionstest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

func putClients(t *testing.T, p usersessions.Provider, cs ...*usersessions.ClientSession) []error {
	t.Helper()
	errs, err := p.PutClientSessions(t.Context(), cs)
	return batch(t, errs, err, len(cs))
}

func putClientChecks() []check {
	return []check{
		{"Version 0 creates the client session at Version 1", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			c := client(s, "spa")
			wantErr(t, "create client session", putClients(t, p, c)[0])
			want := stored(s)
			want.Clients["spa"] = client(s, "spa")
			want.Clients["spa"].Version = 1
			same(t, "session after adding a client session", want, mustGet(t, p, s.Key()))
		}},
		{"Version 0 on an existing client session is ErrExists and changes nothing", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			c := client(s, "app")
			c.Scope = "intruder"
			wantErr(t, "create of an existing client session", putClients(t, p, c)[0], spi.ErrExists)
			same(t, "session", stored(s), mustGet(t, p, s.Key()))
		}},
		{"with the stored Version replaces it and increments Version", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app", "spa")
			create(t, p, s)
			want := stored(s)
			for v := int64(1); v <= 3; v++ {
				c := mustGet(t, p, s.Key()).Clients["app"]
				c.PreviousRefreshToken, c.CurrentRefreshToken = c.CurrentRefreshToken, fmt.Sprintf("rt-%d", v)
				c.CurrentRefreshTokenUseCount = 0
				c.RotatedAt = at(time.Duration(v) * time.Second)
				wantErr(t, "rotate", putClients(t, p, c)[0])
				wc := *c
				wc.Version = v + 1
				want.Clients["app"] = &wc
			}
			same(t, "session after three rotations", want, mustGet(t, p, s.Key()))
		}},
		{"with a stale Version is ErrConflict and changes nothing", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			c := mustGet(t, p, s.Key()).Clients["app"]
			c.CurrentRefreshToken = "winner"
			wantErr(t, "first rotation", putClients(t, p, c)[0])
			before := mustGet(t, p, s.Key())
			for _, v := range []int64{1, 3} {
				stale := *c
				stale.Version = v
				stale.CurrentRefreshToken = "loser"
				wantErr(t, fmt.Sprintf("rotation with Version %d", v), putClients(t, p, &stale)[0], spi.ErrConflict)
			}
			same(t, "session after refused rotations", before, mustGet(t, p, s.Key()))
		}},
		{"with a Version for a client session that does not exist is refused", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false)
			create(t, p, s)
			c := client(s, "app")
			c.Version = 1
			wantErr(t, "replace of a missing client session", putClients(t, p, c)[0], spi.ErrNotFound, spi.ErrConflict)
			if got := mustGet(t, p, s.Key()); len(got.Clients) != 0 {
				t.Errorf("Clients = %v, want none", got.Clients)
			}
		}},
		{"without its user session is ErrNotFound", func(t *testing.T, p usersessions.Provider) {
			online := session("r1", "s1", "u1", false)
			create(t, p, online)
			orphan := client(session("r1", "missing", "u1", false), "app")
			offlineTwin := client(session("r1", "s1", "u1", true), "app") // only the online session exists
			otherRealm := client(session("r2", "s1", "u1", false), "app")
			errs := putClients(t, p, orphan, offlineTwin, otherRealm)
			for i, what := range []string{"missing session", "offline twin of an online session", "same id in another realm"} {
				wantErr(t, "client session of a "+what, errs[i], spi.ErrNotFound)
			}
			for _, k := range []usersessions.Key{orphan.Key().Session, offlineTwin.Key().Session, otherRealm.Key().Session} {
				if get(t, p, k) != nil {
					t.Errorf("PutClientSessions created user session %s", keyString(k))
				}
			}
			if got := mustGet(t, p, online.Key()); len(got.Clients) != 0 {
				t.Errorf("online session gained client sessions %v", got.Clients)
			}
		}},
		{"on the offline session leaves the online one with the same id alone", func(t *testing.T, p usersessions.Provider) {
			on := session("r1", "s1", "u1", false, "app")
			off := session("r1", "s1", "u1", true, "app")
			create(t, p, on, off)
			c := mustGet(t, p, off.Key()).Clients["app"]
			c.CurrentRefreshToken = "offline-token"
			wantErr(t, "offline rotation", putClients(t, p, c)[0])
			same(t, "online session", stored(on), mustGet(t, p, on.Key()))
			if got := mustGet(t, p, off.Key()).Clients["app"]; got.CurrentRefreshToken != "offline-token" || got.Version != 2 {
				t.Errorf("offline client session: token %q Version %d, want offline-token 2", got.CurrentRefreshToken, got.Version)
			}
		}},
		{"errors are per item and do not undo the others", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			stale := client(s, "app")
			stale.Version = 7
			errs := putClients(t, p, client(s, "a"), stale, client(s, "app"), client(s, "b"))
			wantErr(t, "create a", errs[0])
			wantErr(t, "stale replace", errs[1], spi.ErrConflict)
			wantErr(t, "create of existing", errs[2], spi.ErrExists)
			wantErr(t, "create b", errs[3])
			if got := mustGet(t, p, s.Key()); len(got.Clients) != 3 {
				t.Errorf("client sessions %v, want app, a and b", got.Clients)
			}
		}},
		{"two writers racing on one Version: exactly one wins, the other gets ErrConflict", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			for round := range 25 {
				base := mustGet(t, p, s.Key()).Clients["app"]
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					errs  [2]error
				)
				for i := range errs {
					c := *base
					c.CurrentRefreshToken = fmt.Sprintf("round-%d-writer-%d", round, i)
					wg.Go(func() {
						<-start
						got, err := p.PutClientSessions(t.Context(), []*usersessions.ClientSession{&c})
						switch {
						case err != nil:
							errs[i] = err
						case len(got) != 1:
							errs[i] = fmt.Errorf("%d item errors for 1 item", len(got))
						default:
							errs[i] = got[0]
						}
					})
				}
				close(start)
				wg.Wait()
				winner := -1
				for i, err := range errs {
					switch {
					case err == nil && winner < 0:
						winner = i
					case err == nil:
						t.Fatalf("round %d: both writers won with Version %d", round, base.Version)
					default:
						wantErr(t, fmt.Sprintf("round %d: losing writer", round), err, spi.ErrConflict)
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: neither writer won: %v", round, errs)
				}
				got := mustGet(t, p, s.Key()).Clients["app"]
				if want := fmt.Sprintf("round-%d-writer-%d", round, winner); got.CurrentRefreshToken != want || got.Version != base.Version+1 {
					t.Fatalf("round %d: stored token %q Version %d, want the winner's %q at %d",
						round, got.CurrentRefreshToken, got.Version, want, base.Version+1)
				}
			}
		}},
		{"DeleteClientSessions removes only the named ones; missing ones are not an error", func(t *testing.T, p usersessions.Provider) {
			on := session("r1", "s1", "u1", false, "app", "spa", "cli")
			off := session("r1", "s1", "u1", true, "app")
			create(t, p, on, off)
			err := p.DeleteClientSessions(t.Context(), []usersessions.ClientKey{
				{Session: on.Key(), ClientID: "app"},
				{Session: on.Key(), ClientID: "cli"},
				{Session: on.Key(), ClientID: "never-there"},
				{Session: usersessions.Key{RealmID: "r1", ID: "missing"}, ClientID: "app"},
			})
			wantErr(t, "DeleteClientSessions", err)
			want := stored(on)
			delete(want.Clients, "app")
			delete(want.Clients, "cli")
			same(t, "online session", want, mustGet(t, p, on.Key()))
			same(t, "offline session with the same id", stored(off), mustGet(t, p, off.Key()))
		}},
		{"a deleted client session can be created again at Version 1", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			wantErr(t, "DeleteClientSessions", p.DeleteClientSessions(t.Context(), []usersessions.ClientKey{{Session: s.Key(), ClientID: "app"}}))
			wantErr(t, "create again", putClients(t, p, client(s, "app"))[0])
			same(t, "session", stored(s), mustGet(t, p, s.Key()))
		}},
	}
}
