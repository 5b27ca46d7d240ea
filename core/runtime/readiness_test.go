package runtime

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// countedCheck is a check that counts its runs and how many run at once, and blocks while
// hold is set.
type countedCheck struct {
	runs, inFlight, maxInFlight atomic.Int64
	hold                        chan struct{} // nil: return at once
}

func (c *countedCheck) run(context.Context) httpapi.Check {
	c.runs.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if c.hold != nil {
		<-c.hold
	}
	return httpapi.Check{Name: "counted", Status: "UP"}
}

// probeAll runs n probes of c at once and returns their results.
func probeAll(ctx context.Context, c *cachedCheck, n int) []httpapi.Check {
	out := make([]httpapi.Check, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = c.get(ctx) }()
	}
	wg.Wait()
	return out
}

// A cached check runs once per TTL whatever the number of probes, concurrent ones sharing
// one run.
func TestCachedCheckRunsAtMostOncePerTTL(t *testing.T) {
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	counted := &countedCheck{}
	c := newCachedCheck("counted", time.Second, counted.run)
	c.now = clock.Now
	for _, step := range []struct {
		advance time.Duration
		runs    int64
	}{
		{0, 1}, // the first probes run it once
		{999 * time.Millisecond, 1},
		{time.Millisecond, 2}, // a TTL after the last run
		{500 * time.Millisecond, 2},
		{10 * time.Second, 3},
	} {
		clock.Advance(step.advance)
		for _, got := range probeAll(context.Background(), c, 1000) {
			if got.Status != "UP" {
				t.Fatalf("probe answered %+v", got)
			}
		}
		if got := counted.runs.Load(); got != step.runs {
			t.Errorf("after %v more: %d runs for 1000 probes each time, want %d", step.advance, got, step.runs)
		}
	}
}

// A check that hangs has one run under way however many probes come; a probe that gives up
// is answered DOWN at once, and the run's result serves the probes after it.
func TestSlowCheckDoesNotStackProbes(t *testing.T) {
	counted := &countedCheck{hold: make(chan struct{})}
	c := newCachedCheck("counted", time.Second, counted.run)
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); c.get(context.Background()) }()
	}
	for counted.runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if got := c.get(ctx); got.Status != "DOWN" || got.Name != "counted" {
		t.Errorf("a probe that gave up waiting got %+v, want DOWN", got)
	}
	close(counted.hold)
	wg.Wait()
	if runs, most := counted.runs.Load(), counted.maxInFlight.Load(); runs != 1 || most != 1 {
		t.Errorf("%d runs, %d at once, for 101 probes of a hanging check; want 1 and 1", runs, most)
	}
}

// probedStore counts the readiness probe's reads of the store, and fails them when told.
type probedStore struct {
	usersessions.Provider
	probes atomic.Int64
	down   atomic.Bool
}

func (p *probedStore) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	if len(keys) == 1 && keys[0].RealmID == "sessiond.readiness" {
		p.probes.Add(1)
		if p.down.Load() {
			return nil, fmt.Errorf("connection refused: %w", spi.ErrUnavailable)
		}
	}
	return p.Provider.Get(ctx, keys)
}

func (p *probedStore) wrap(s usersessions.Provider) usersessions.Provider {
	p.Provider = s
	return p
}

// Bursts of 1000 concurrent readiness probes, over HTTP and in process, for two and a half
// seconds cost a handful of store round trips; a store that goes down shows within about a
// second.
func TestReadinessAsksTheStoreAtMostAboutOnceASecond(t *testing.T) {
	e := newEnv(t)
	store := &probedStore{}
	rt := e.start(Options{wrapStore: store.wrap}, nil)
	waitReady(t, rt, nil)
	time.Sleep(readinessEvery) // the cached result of waitReady's probes is stale
	before, start := store.probes.Load(), time.Now()
	var failed, probes atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	defer client.CloseIdleConnections()
	for time.Since(start) < 2500*time.Millisecond {
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				probes.Add(1)
				if i%10 != 0 {
					rt.Checks(context.Background())
					return
				}
				resp, err := client.Get(managementBase(rt) + "/health/ready")
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		t.Errorf("%d probes over HTTP not answered 200", failed.Load())
	}
	calls := store.probes.Load() - before
	if limit := int64(elapsed/readinessEvery) + 2; calls < 2 || calls > limit {
		t.Errorf("%d store round trips for %d probes in %v, want 2 to %d", calls, probes.Load(), elapsed, limit)
	}
	t.Logf("%d concurrent probes in %v: %d store round trips", probes.Load(), elapsed, calls)

	store.down.Store(true)
	deadline := time.Now().Add(readinessEvery + time.Second)
	for {
		down := false
		for _, c := range rt.Checks(context.Background()) {
			if c.Name == storeCheckName && c.Status == "DOWN" {
				down = true
			}
		}
		if down {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store is down and readiness did not say so within two seconds")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
