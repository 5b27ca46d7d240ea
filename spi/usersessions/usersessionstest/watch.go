package usersessionstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// How long the suite waits for a change to arrive: generous, because a provider may poll
// a shared store.
const watchPatience = 15 * time.Second

// feed is one running Watch.
type feed struct {
	changes chan usersessions.Change
	done    chan error
	cancel  context.CancelFunc
}

func watch(t *testing.T, p usersessions.Provider) *feed {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &feed{changes: make(chan usersessions.Change, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- p.Watch(ctx, func(c usersessions.Change) error {
			select {
			case f.changes <- c:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	// The first change of every Watch says it has subscribed; the checks' writes follow it.
	select {
	case c := <-f.changes:
		if c.Kind != usersessions.Subscribed {
			t.Fatalf("Watch's first change is %+v, want Kind Subscribed", c)
		}
	case err := <-f.done:
		t.Fatalf("Watch returned before ctx ended: %v", err)
	case <-time.After(watchPatience):
		t.Fatalf("Watch sent no Subscribed change within %v", watchPatience)
	}
	return f
}

// wait reads changes until one satisfies want or patience runs out.
func (f *feed) wait(patience time.Duration, want func(usersessions.Change) bool) (usersessions.Change, bool) {
	timeout := time.After(patience)
	for {
		select {
		case c := <-f.changes:
			if want(c) {
				return c, true
			}
		case <-timeout:
			return usersessions.Change{}, false
		}
	}
}

func (f *feed) expect(t *testing.T, what string, want func(usersessions.Change) bool) {
	t.Helper()
	if _, ok := f.wait(watchPatience, want); !ok {
		t.Fatalf("Watch did not report %s within %v", what, watchPatience)
	}
}

func kindIs(kind usersessions.ChangeKind, k usersessions.Key) func(usersessions.Change) bool {
	return func(c usersessions.Change) bool { return c.Kind == kind && c.Session == k }
}

func watchChecks() []check {
	return []check{
		{"reports Upserted, Removed and Flushed for writes through the same provider", func(t *testing.T, p usersessions.Provider) {
			f := watch(t, p)
			s := session("r1", "s1", "u1", false, "app")
			off := session("r1", "s1", "u1", true)
			other := session("r1", "s2", "u2", false)
			create(t, p, s, off, other)
			f.expect(t, "Upserted for Create", kindIs(usersessions.Upserted, s.Key()))

			u := mustGet(t, p, s.Key())
			u.State = usersessions.LoggingOut
			errs, err := p.Update(t.Context(), []*usersessions.UserSession{u})
			wantErr(t, "update", batch(t, errs, err, 1)[0])
			f.expect(t, "Upserted for Update", kindIs(usersessions.Upserted, s.Key()))

			errs, err = p.Touch(t.Context(), []usersessions.Touch{{Session: off.Key(), LastRefresh: at(time.Minute), ExpiresAt: at(time.Hour)}})
			wantErr(t, "touch", batch(t, errs, err, 1)[0])
			f.expect(t, "Upserted for Touch of the offline session", kindIs(usersessions.Upserted, off.Key()))

			wantErr(t, "put client", putClients(t, p, client(s, "spa"))[0])
			f.expect(t, "Upserted for PutClientSessions", kindIs(usersessions.Upserted, s.Key()))

			wantErr(t, "delete client", p.DeleteClientSessions(t.Context(), []usersessions.ClientKey{{Session: s.Key(), ClientID: "app"}}))
			f.expect(t, "Removed with ClientID for DeleteClientSessions", func(c usersessions.Change) bool {
				return c.Kind == usersessions.Removed && c.Session == s.Key() && c.ClientID == "app"
			})

			if _, err := p.Delete(t.Context(), []usersessions.Key{off.Key()}); err != nil {
				t.Fatal(err)
			}
			f.expect(t, "Removed for Delete", func(c usersessions.Change) bool {
				return c.Kind == usersessions.Removed && c.Session == off.Key() && c.ClientID == ""
			})

			byUser := usersessions.Filter{RealmID: "r1", UserID: "u2", Offline: usersessions.Both}
			if _, err := p.DeleteMatching(t.Context(), byUser); err != nil {
				t.Fatal(err)
			}
			f.expect(t, "Flushed with the filter for DeleteMatching", func(c usersessions.Change) bool {
				return c.Kind == usersessions.Flushed && c.Filter.RealmID == byUser.RealmID && c.Filter.UserID == byUser.UserID
			})

			u = mustGet(t, p, s.Key())
			expired := *u
			expired.ExpiresAt = at(-time.Hour)
			errs, err = p.Update(t.Context(), []*usersessions.UserSession{&expired})
			wantErr(t, "update", batch(t, errs, err, 1)[0])
			expireAll(t, p, at(0), 10)
			f.expect(t, "Removed for DeleteExpired", kindIs(usersessions.Removed, s.Key()))
		}},
		{"reports RecordChanged naming the record for PutRecord and DeleteRecord", func(t *testing.T, p usersessions.Provider) {
			f := watch(t, p)
			rk := usersessions.RecordKey{Kind: "not-before", Key: "r1"}
			recordChanged := func(c usersessions.Change) bool { return c.Kind == usersessions.RecordChanged && c.Record == rk }
			cur := putRecord(t, p, &usersessions.Record{Kind: rk.Kind, Key: rk.Key, Value: []byte("1")})
			f.expect(t, "RecordChanged for PutRecord that creates", recordChanged)
			putRecord(t, p, &usersessions.Record{Kind: rk.Kind, Key: rk.Key, Value: []byte("2"), Version: cur.Version})
			f.expect(t, "RecordChanged for PutRecord that replaces", recordChanged)
			if err := p.DeleteRecord(t.Context(), rk.Kind, rk.Key); err != nil {
				t.Fatal(err)
			}
			f.expect(t, "RecordChanged for DeleteRecord", recordChanged)
			// A session change after them carries no record: watchers of sessions can
			// tell the two apart by Kind alone.
			s := session("r1", "s1", "u1", false)
			create(t, p, s)
			c, ok := f.wait(watchPatience, func(c usersessions.Change) bool { return c.Kind != usersessions.RecordChanged })
			if !ok || c.Kind != usersessions.Upserted || c.Session != s.Key() || c.Record != (usersessions.RecordKey{}) {
				t.Errorf("after the record changes Watch reported %+v (found %v), want Upserted of %v with no Record", c, ok, s.Key())
			}
		}},
		{"every active watcher receives each change", func(t *testing.T, p usersessions.Provider) {
			feeds := []*feed{watch(t, p), watch(t, p), watch(t, p)}
			s := session("r1", "s1", "u1", false)
			create(t, p, s)
			for i, f := range feeds {
				f.expect(t, fmt.Sprintf("Upserted to watcher %d", i), kindIs(usersessions.Upserted, s.Key()))
			}
		}},
		{"returns nil when ctx ends", func(t *testing.T, p usersessions.Provider) {
			f := watch(t, p)
			f.cancel()
			select {
			case err := <-f.done:
				if err != nil {
					t.Errorf("Watch returned %v after ctx ended, want nil", err)
				}
				f.done <- err // for the cleanup registered by watch
			case <-time.After(watchPatience):
				t.Fatalf("Watch did not return within %v of ctx ending", watchPatience)
			}
		}},
	}
}
