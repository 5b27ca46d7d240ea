package cleanup

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// fakeStore answers DeleteExpired from a function and fails everything else.
type fakeStore struct {
	mu            sync.Mutex
	deleteExpired func(limit int) (int, int, error)
	cutoffs       []time.Time
}

func (f *fakeStore) DeleteExpired(_ context.Context, before time.Time, limit int) (int, int, error) {
	f.mu.Lock()
	f.cutoffs = append(f.cutoffs, before)
	f.mu.Unlock()
	return f.deleteExpired(limit)
}

var errFake = errors.New("fake store: not implemented")

func (f *fakeStore) Stream(context.Context, usersessions.StreamRequest, func([]*usersessions.UserSession) error) error {
	return errFake
}
func (f *fakeStore) Delete(context.Context, []usersessions.Key) (int, error) { return 0, errFake }
func (f *fakeStore) Get(context.Context, []usersessions.Key) ([]*usersessions.UserSession, error) {
	return nil, errFake
}
func (f *fakeStore) Update(context.Context, []*usersessions.UserSession) ([]error, error) {
	return nil, errFake
}
func (f *fakeStore) Touch(context.Context, []usersessions.Touch) ([]error, error) {
	return nil, errFake
}
func (f *fakeStore) PutClientSessions(context.Context, []*usersessions.ClientSession) ([]error, error) {
	return nil, errFake
}
func (f *fakeStore) GetRecords(context.Context, string, []string) ([]*usersessions.Record, error) {
	return nil, errFake
}
func (f *fakeStore) PutRecord(context.Context, *usersessions.Record) (*usersessions.Record, error) {
	return nil, errFake
}

// answers returns a deleteExpired that gives the answers in turn, then (0, 0).
func answers(a ...[3]any) func(int) (int, int, error) {
	var mu sync.Mutex
	return func(int) (int, int, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(a) == 0 {
			return 0, 0, nil
		}
		next := a[0]
		a = a[1:]
		err, _ := next[2].(error)
		return next[0].(int), next[1].(int), err
	}
}

func TestNew(t *testing.T) {
	c, err := New(Deps{Store: &fakeStore{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Options(); o.Interval != 15*time.Minute || o.BatchSize != 1000 || o.Pause != DefaultPause {
		t.Errorf("defaults = %+v; want Keycloak's 15 min interval, batches of 1000", o)
	}
	for _, bad := range []struct {
		d Deps
		o Options
	}{
		{Deps{}, Options{}},
		{Deps{Store: &fakeStore{}}, Options{Interval: -time.Second}},
		{Deps{Store: &fakeStore{}}, Options{BatchSize: -1}},
	} {
		if _, err := New(bad.d, bad.o); !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("New(%+v, %+v) = %v; want spi.ErrInvalid", bad.d, bad.o, err)
		}
	}
}

// A pass calls DeleteExpired with the clock's time until both counts are below the batch
// size: a full batch of either user or client sessions means there may be more.
func TestOnce_repeatsUntilBothCountsAreBelowTheBatchSize(t *testing.T) {
	now := t0.Add(time.Hour)
	store := &fakeStore{deleteExpired: answers([3]any{10, 25, nil}, [3]any{4, 10, nil}, [3]any{0, 9, nil}, [3]any{7, 0, nil})}
	c := newCleaner(t, store, func() time.Time { return now }, Options{BatchSize: 10, Pause: -1})
	res, err := c.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Batches != 3 || res.Users != 14 || res.Clients != 44 || !res.Cutoff.Equal(now) {
		t.Errorf("pass = %+v; want 3 batches, 14 users, 44 clients, cutoff %s", res, now)
	}
	for _, c := range store.cutoffs {
		if !c.Equal(now) {
			t.Errorf("DeleteExpired before %s, want the pass's cutoff %s", c, now)
		}
	}
}

func TestOnce_pausesBetweenBatches(t *testing.T) {
	store := &fakeStore{deleteExpired: answers([3]any{5, 0, nil}, [3]any{5, 0, nil}, [3]any{1, 0, nil})}
	c := newCleaner(t, store, nil, Options{BatchSize: 5, Pause: 30 * time.Millisecond})
	res, err := c.Once(context.Background())
	if err != nil || res.Batches != 3 {
		t.Fatalf("Once = %+v, %v", res, err)
	}
	if res.Duration < 60*time.Millisecond {
		t.Errorf("3 batches with 30 ms pauses took %s; want two pauses", res.Duration)
	}
}

// A store error fails the pass, is logged and counted, and Run carries on: the next pass
// comes at the next interval and succeeds once the store is back.
func TestRun_logsStoreErrorsAndCarriesOn(t *testing.T) {
	var mu sync.Mutex
	failures := 2
	store := &fakeStore{deleteExpired: func(int) (int, int, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return 3, 0, spi.ErrUnavailable
		}
		return 1, 2, nil
	}}
	var logs testlog.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	c, err := New(Deps{Store: store, Log: log, Now: func() time.Time { return t0 }}, Options{Interval: 10 * time.Millisecond, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Passes < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("Run made only %d passes in 10 s", c.Stats().Passes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	st := c.Stats()
	if st.FailedPasses != 2 || st.LastError != "" || !st.LastSuccess.Equal(t0) || st.UsersRemoved < 2 || st.ClientsRemoved < 4 {
		t.Errorf("stats = %+v; want 2 failed passes, then successes", st)
	}
	out := logs.String()
	for _, want := range []string{"session cleanup started", "interval=10ms", "batch_size=100",
		"[ERROR]", "session cleanup pass failed; retrying at the next interval", "provider unavailable",
		"expired sessions removed: users=1 clients=2 batches=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// Run makes its first pass at once, not one interval later.
func TestRun_firstPassAtStart(t *testing.T) {
	store := &fakeStore{deleteExpired: answers()}
	c := newCleaner(t, store, nil, Options{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Passes == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no pass at start")
		}
		time.Sleep(time.Millisecond)
	}
}

// Stats keeps the last error until a pass succeeds.
func TestStats_lastErrorAndTotals(t *testing.T) {
	store := &fakeStore{deleteExpired: answers([3]any{2, 1, nil}, [3]any{0, 0, errors.New("disk on fire")}, [3]any{3, 0, nil})}
	now := t0
	c := newCleaner(t, store, func() time.Time { return now }, Options{BatchSize: 10, Pause: -1})
	ctx := context.Background()
	c.Once(ctx)
	now = now.Add(time.Minute)
	if _, err := c.Once(ctx); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("second pass: %v", err)
	}
	st := c.Stats()
	if st.LastError == "" || !st.LastSuccess.Equal(t0) || !st.LastRun.Equal(t0.Add(time.Minute)) || st.FailedPasses != 1 {
		t.Errorf("after a failure: %+v", st)
	}
	now = now.Add(time.Minute)
	c.Once(ctx)
	st = c.Stats()
	want := Stats{Passes: 3, FailedPasses: 1, Batches: 2, UsersRemoved: 5, ClientsRemoved: 1,
		LastRun: t0.Add(2 * time.Minute), LastDuration: st.LastDuration, LastUsers: 3, LastSuccess: t0.Add(2 * time.Minute)}
	if st.LastError != "" || st.Passes != want.Passes || st.FailedPasses != want.FailedPasses || st.Batches != want.Batches ||
		st.UsersRemoved != want.UsersRemoved || st.ClientsRemoved != want.ClientsRemoved || !st.LastRun.Equal(want.LastRun) ||
		st.LastUsers != want.LastUsers || !st.LastSuccess.Equal(want.LastSuccess) {
		t.Errorf("stats = %+v\nwant %+v", st, want)
	}
}
