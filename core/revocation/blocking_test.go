package revocation_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// stalling is a store whose first PutRecord of one key, and first ListRecords, wait until
// the test releases them, as a slow store call does. ListRecords reads before it waits, so
// what it returns is as old as the wait is long.
type stalling struct {
	revocation.Store
	putKey string

	putOnce, listOnce       sync.Once
	putEntered, listEntered chan struct{}
	putRelease, listRelease chan struct{}
}

func newStalling(s revocation.Store, putKey string) *stalling {
	return &stalling{Store: s, putKey: putKey,
		putEntered: make(chan struct{}), listEntered: make(chan struct{}),
		putRelease: make(chan struct{}), listRelease: make(chan struct{})}
}

func (s *stalling) PutRecord(ctx context.Context, rec *usersessions.Record) (*usersessions.Record, error) {
	if rec.Key == s.putKey {
		stall := false
		s.putOnce.Do(func() { stall = true })
		if stall {
			close(s.putEntered)
			select {
			case <-s.putRelease:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return s.Store.PutRecord(ctx, rec)
}

func (s *stalling) ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error) {
	recs, err := s.Store.ListRecords(ctx, kind)
	stall := false
	s.listOnce.Do(func() { stall = true })
	if stall {
		close(s.listEntered)
		select {
		case <-s.listRelease:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return recs, err
}

// within runs fn and fails the test unless it returns within patience.
func within(t *testing.T, patience time.Duration, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(patience):
		t.Fatalf("%s: still waiting after %v, held up by another store call", what, patience)
	}
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

// TestSlowPutHoldsNoOneUp: while one Set waits on the store, this node's other Sets, its
// reads and its change-feed applies go on.
func TestSlowPutHoldsNoOneUp(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	slow := newStalling(store, realmName)
	close(slow.listRelease)
	p := newPolicies(slow, newRealms(t, statics{}), clock)
	running(t, p)
	other := newPolicies(store, newRealms(t, statics{}), clock)

	stuck := make(chan error, 1)
	go func() { stuck <- p.SetRealm(context.Background(), realmName, t0.Add(-time.Hour)) }()
	wait(t, slow.putEntered, "the realm's put reaches the store")

	within(t, 2*time.Second, "another Set", func() error { return p.SetClient(t.Context(), realmName, "app", t0) })
	within(t, 2*time.Second, "a read", func() error { p.Realm(realmName); p.Client(realmName, "app"); return nil })
	if err := other.SetClient(t.Context(), realmName, "web", t0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the feed applies another node's policy", func() bool { return p.Client(realmName, "web").Equal(t0) })

	close(slow.putRelease)
	if err := <-stuck; err != nil {
		t.Fatal(err)
	}
	if got := p.Realm(realmName); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("realm policy %v once the slow put landed, want %v", got, t0.Add(-time.Hour))
	}
	if got := p.Client(realmName, "app"); !got.Equal(t0) {
		t.Errorf("client policy %v, want %v", got, t0)
	}
}

// TestSlowLoadHoldsNoOneUp: while the feed's load waits on the store, Sets and reads go on,
// and the load, older than they are, takes none of them back when it lands.
func TestSlowLoadHoldsNoOneUp(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	other := newPolicies(store, newRealms(t, statics{}), clock)
	if err := other.SetRealm(t.Context(), realmName, t0.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	slow := newStalling(store, "")
	close(slow.putRelease)
	p := newPolicies(slow, newRealms(t, statics{}), clock)
	run(t, p)
	wait(t, slow.listEntered, "the load reaches the store")

	within(t, 2*time.Second, "a Set of the realm", func() error { return p.SetRealm(t.Context(), realmName, t0.Add(-time.Hour)) })
	within(t, 2*time.Second, "a Set of a client", func() error { return p.SetClient(t.Context(), realmName, "app", t0) })
	if got := p.Realm(realmName); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("realm policy %v during the load, want the one just set, %v", got, t0.Add(-time.Hour))
	}

	close(slow.listRelease)
	eventually(t, 10*time.Second, "the policies are loaded", p.Ready)
	if got := p.Realm(realmName); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("realm policy %v after the older load landed, want the later set %v", got, t0.Add(-time.Hour))
	}
	if got := p.Client(realmName, "app"); !got.Equal(t0) {
		t.Errorf("client policy %v after a load that predates it, want %v", got, t0)
	}
}
