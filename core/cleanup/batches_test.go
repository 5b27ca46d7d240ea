package cleanup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// countingStore records every DeleteExpired call of a pass.
type countingStore struct {
	usersessions.Provider
	mu      sync.Mutex
	batches []int // users removed by each call
	calls   atomic.Int64
}

func (s *countingStore) DeleteExpired(ctx context.Context, before time.Time, limit int) (int, int, error) {
	u, c, err := s.Provider.DeleteExpired(ctx, before, limit)
	s.mu.Lock()
	s.batches = append(s.batches, u)
	s.mu.Unlock()
	s.calls.Add(1)
	return u, c, err
}

// stamped returns n sessions of realm "acme", stamped by core/expiry under rules, each
// with two client sessions, last refreshed at lastRefresh.
func stamped(rules expiry.Rules, prefix string, n int, lastRefresh time.Time) []*usersessions.UserSession {
	out := make([]*usersessions.UserSession, n)
	for i := range out {
		us := &usersessions.UserSession{
			ID: fmt.Sprintf("%s-%05d", prefix, i), RealmID: "acme", UserID: fmt.Sprintf("u%d", i%97),
			State: usersessions.LoggedIn, Started: lastRefresh, LastRefresh: lastRefresh, Offline: i%5 == 0,
			Clients: map[string]*usersessions.ClientSession{
				"app":   {ClientID: "app", Started: lastRefresh, LastRefresh: lastRefresh},
				"other": {ClientID: "other", Started: lastRefresh, LastRefresh: lastRefresh},
			},
		}
		rules.Stamp(us)
		out[i] = us
	}
	return out
}

// A pass removes a backlog of 5,000 expired sessions (10,000 client sessions) in
// DeleteExpired calls of at most 500 user sessions each, with pauses between them, and
// reads of live sessions keep succeeding all along, between the batches too.
func TestOnce_boundedBatchesLeaveLiveTrafficRunning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store usersessions.Provider) {
		ctx := context.Background()
		r := seed003Realm()
		rules := expiry.Rules{Realm: r, PersistentSessions: true}
		now := t0.Add(365 * day)
		expired := stamped(rules, "expired", 5000, now.Add(-200*day))
		live := stamped(rules, "live", 200, now.Add(-10*minute))
		mustCreate(t, store, append(expired, live...))

		cs := &countingStore{Provider: store}
		cl := newCleaner(t, cs, func() time.Time { return now }, Options{BatchSize: 500, Pause: 5 * time.Millisecond})

		liveKeys := make([]usersessions.Key, len(live))
		for i, us := range live {
			liveKeys[i] = us.Key()
		}
		var (
			reads      atomic.Int64
			midPass    sync.Map // batch counts seen by reads during the pass
			readErr    atomic.Value
			passDone   = make(chan struct{})
			readerDone = make(chan struct{})
		)
		go func() {
			defer close(readerDone)
			for i := 0; ; i++ {
				select {
				case <-passDone:
					return
				default:
				}
				k := liveKeys[i%len(liveKeys)]
				got, err := store.Get(ctx, []usersessions.Key{k})
				switch {
				case err != nil:
					readErr.Store(err)
					return
				case len(got) != 1 || got[0] == nil || len(got[0].Clients) != 2:
					readErr.Store(fmt.Errorf("live session %s: got %v", k.ID, got))
					return
				}
				reads.Add(1)
				if n := cs.calls.Load(); n > 0 {
					midPass.Store(n, true)
				}
			}
		}()
		res, err := cl.Once(ctx)
		close(passDone)
		<-readerDone
		if err != nil {
			t.Fatalf("Once: %v", err)
		}
		if e := readErr.Load(); e != nil {
			t.Fatalf("a read of a live session failed during the pass: %v", e)
		}
		if res.Users != 5000 {
			t.Errorf("removed %d user sessions, want 5000", res.Users)
		}
		cs.mu.Lock()
		batches := append([]int(nil), cs.batches...)
		cs.mu.Unlock()
		if len(batches) < 10 || res.Batches != len(batches) {
			t.Errorf("%d DeleteExpired calls (result says %d), want at least 10 of at most 500", len(batches), res.Batches)
		}
		for i, n := range batches {
			if n > 500 {
				t.Errorf("call %d removed %d user sessions, above the batch size 500", i, n)
			}
		}
		seen := 0
		midPass.Range(func(k, _ any) bool {
			if n := k.(int64); n >= 1 && n < int64(len(batches)) {
				seen++
			}
			return true
		})
		if seen < 3 {
			t.Errorf("reads succeeded between only %d of the %d batches (%d reads in all); the pass does not let traffic through", seen, len(batches)-1, reads.Load())
		}
		after, _ := rows(t, store, "acme")
		if len(after) != 3*len(live) {
			t.Errorf("%d rows left, want the %d rows of the live sessions", len(after), 3*len(live))
		}
		for _, us := range live {
			if !after[rowName(us, "")] || !after[rowName(us, "app")] || !after[rowName(us, "other")] {
				t.Errorf("live session %s lost a row", us.ID)
			}
		}
		t.Logf("%d batches %v, %d reads during the pass, %s", len(batches), batches, reads.Load(), res.Duration)
	})
}

// A pass with no store of its own to blame stops between batches when its context ends.
func TestOnce_stopsBetweenBatchesWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	store := &fakeStore{deleteExpired: func(int) (int, int, error) { cancel(); return 10, 0, nil }}
	cl := newCleaner(t, store, nil, Options{BatchSize: 10, Pause: time.Hour})
	start := time.Now()
	res, err := cl.Once(ctx)
	if err == nil || res.Batches != 1 || res.Users != 10 || time.Since(start) > 10*time.Second {
		t.Errorf("Once = %+v, %v after %s; want one batch and the context's error, at once", res, err, time.Since(start))
	}
}
