package cleanup

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// ends records what it is told.
type ends struct {
	mu  sync.Mutex
	got []session.Ended
}

func (e *ends) SessionsEnded(_ context.Context, es []session.Ended) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, es...)
	return nil
}

// With Ends set (the operator's SSF session-expired option), two nodes cleaning one store
// at once tell of each expired user session exactly once between them, as the system's
// doing, and of no live one; every expired session is gone after the passes.
func TestOnce_signalsEachExpiredSessionOnceAcrossNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store usersessions.Provider) {
		r := seed003Realm()
		rules := expiry.Rules{Realm: r, PersistentSessions: true}
		now := t0.Add(365 * day)
		expired := stamped(rules, "expired", 300, now.Add(-200*day))
		live := stamped(rules, "live", 50, now.Add(-10*minute))
		mustCreate(t, store, append(expired, live...))

		told := &ends{}
		var cleaners []*Cleaner
		for range 2 {
			c, err := New(Deps{Store: store, Log: hclog.NewNullLogger(), Now: func() time.Time { return now },
				Ends: told, Realms: func() []string { return []string{"acme"} }}, Options{BatchSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			cleaners = append(cleaners, c)
		}
		var wg sync.WaitGroup
		for _, c := range cleaners {
			wg.Go(func() {
				if _, err := c.Once(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()

		count := map[usersessions.Key]int{}
		for _, e := range told.got {
			if e.Initiator != session.InitiatorSystem || e.Realm != "acme" || e.Reason != "expired" {
				t.Errorf("told %+v", e)
			}
			count[usersessions.Key{RealmID: e.Realm, ID: e.SessionID, Offline: e.Offline}]++
		}
		for _, us := range expired {
			if count[us.Key()] != 1 {
				t.Errorf("expired session %s told %d times, want once", us.ID, count[us.Key()])
			}
		}
		if len(told.got) != len(expired) {
			t.Errorf("told of %d sessions, want the %d expired", len(told.got), len(expired))
		}
		left, _ := rows(t, store, "acme")
		for _, us := range expired {
			if left[us.ID+"/"+map[bool]string{false: "online", true: "offline"}[us.Offline]] {
				t.Errorf("expired session %s is still stored", us.ID)
			}
		}
	})
	if _, err := New(Deps{Store: &fakeStore{}, Ends: &ends{}}, Options{}); err == nil {
		t.Error("New with Ends and no Realms succeeded")
	}
}
