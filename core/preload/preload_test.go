package preload_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/core/preload"
	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/providers/preload/database"
	"github.com/sessiond/sessiond/providers/preload/lazy"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/usersessions"
)

var t0 = time.Now().UTC().Truncate(time.Microsecond)

// store is a memory provider whose reads are counted and whose stream a test can hold up
// or break.
type store struct {
	*memory.Provider
	gets    atomic.Int64 // sessions read by Get
	streams atomic.Int64 // pages streamed
	// page, when set, runs before each streamed page reaches the preload; an error
	// ends the stream with it.
	page func(n int64, p []*usersessions.UserSession) error
}

func (s *store) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	s.gets.Add(int64(len(keys)))
	return s.Provider.Get(ctx, keys)
}

func (s *store) Stream(ctx context.Context, req usersessions.StreamRequest, fn func([]*usersessions.UserSession) error) error {
	return s.Provider.Stream(ctx, req, func(p []*usersessions.UserSession) error {
		n := s.streams.Add(1)
		if s.page != nil {
			if err := s.page(n, p); err != nil {
				return err
			}
		}
		return fn(p)
	})
}

// newStore returns a memory store whose changes carry origin, so that with a cache of
// another node id they arrive on the feed as another node's changes.
func newStore(t *testing.T, origin string) *store {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{spi.HostNodeID: origin}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return &store{Provider: p}
}

func session(realm, id string, offline bool, lastRefresh time.Time) *usersessions.UserSession {
	s := &usersessions.UserSession{RealmID: realm, ID: id, UserID: "u-" + id, Offline: offline, State: usersessions.LoggedIn,
		Started: t0, LastRefresh: lastRefresh, ExpiresAt: lastRefresh.Add(30 * 24 * time.Hour),
		Clients: map[string]*usersessions.ClientSession{}}
	s.Clients["app"] = &usersessions.ClientSession{RealmID: realm, UserSessionID: id, ClientID: "app", Offline: offline,
		Started: t0, LastRefresh: lastRefresh, ExpiresAt: lastRefresh.Add(30 * 24 * time.Hour), CurrentRefreshToken: "rt-" + id}
	return s
}

// fill stores n offline sessions in each realm, and as many online ones.
func fill(t *testing.T, s *store, n int, realms ...string) []usersessions.Key {
	t.Helper()
	var keys []usersessions.Key
	for _, realm := range realms {
		var batch []*usersessions.UserSession
		for i := range n {
			id := fmt.Sprintf("s-%05d", i)
			batch = append(batch, session(realm, id, true, t0), session(realm, id, false, t0))
			keys = append(keys, usersessions.Key{RealmID: realm, ID: id, Offline: true})
		}
		errs, err := s.Create(t.Context(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range errs {
			if e != nil {
				t.Fatal(e)
			}
		}
	}
	return keys
}

func newCache(t *testing.T, s *store, max int) *cache.Cache {
	t.Helper()
	c := cache.New(s, cache.Options{NodeID: "this-node", MaxEntries: max, Now: func() time.Time { return t0 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Follow(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// planner answers a fixed plan, or fails.
type planner struct {
	lazy.Provider
	plan offlinepreload.Plan
	err  error
	got  offlinepreload.Situation
}

func (p *planner) Plan(_ context.Context, s offlinepreload.Situation) (offlinepreload.Plan, error) {
	p.got = s
	return p.plan, p.err
}

func eager(workers, pageSize int) *planner {
	return &planner{plan: offlinepreload.Plan{Mode: offlinepreload.Eager, Workers: workers, PageSize: pageSize,
		Timeout: 10 * time.Second, ProgressEvery: time.Hour}}
}

func runner(s *store, c *cache.Cache, p offlinepreload.Provider, log *testlog.Buffer, realms ...string) *preload.Runner {
	logger := hclog.NewNullLogger()
	if log != nil {
		logger = hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Debug})
	}
	return preload.New(preload.Deps{Store: s, Cache: c, Planner: p, Realms: func() []string { return realms },
		Now: func() time.Time { return t0 }, Log: logger})
}

func run(t *testing.T, r *preload.Runner) preload.Status {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); r.Run(t.Context()) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the preload did not end; status %s", r.Status())
	}
	return r.Status()
}

func getAll(t *testing.T, c *cache.Cache, keys []usersessions.Key) []*usersessions.UserSession {
	t.Helper()
	got, err := c.Get(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestEagerPreloadServesOfflineSessionsWithoutStoreReads(t *testing.T) {
	s := newStore(t, "this-node")
	keys := fill(t, s, 250, "a", "b")
	c := newCache(t, s, 10000)
	p := eager(3, 40)
	st := run(t, runner(s, c, p, nil, "a", "b"))
	if st.State != preload.Done || st.Imported != 500 || st.Loaded != 500 || st.Total != 500 || !st.Ready() {
		t.Fatalf("status %+v (%s), want done with 500 of 500", st, st)
	}
	if p.got.OfflineCount != 500 || p.got.CacheCapacity != 10000 || len(p.got.Realms) != 2 {
		t.Errorf("the provider was told %+v", p.got)
	}
	if cs := c.Stats(); cs.Preloaded != 500 || cs.Entries != 500 {
		t.Errorf("cache stats %+v, want 500 preloaded (offline only)", cs)
	}
	for _, got := range getAll(t, c, keys) {
		if got == nil || !got.Offline || got.Clients["app"] == nil || got.Clients["app"].CurrentRefreshToken != "rt-"+got.ID {
			t.Fatalf("preloaded session = %+v", got)
		}
	}
	if n := s.gets.Load(); n != 0 {
		t.Errorf("%d store reads after the preload, want 0", n)
	}
}

func TestActiveWithinPreloadsOnlyRecentSessions(t *testing.T) {
	s := newStore(t, "this-node")
	old := session("a", "old", true, t0.Add(-10*24*time.Hour))
	recent := session("a", "recent", true, t0.Add(-time.Hour))
	if _, err := s.Create(t.Context(), []*usersessions.UserSession{old, recent}); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, s, 100)
	p := eager(2, 10)
	p.plan.ActiveWithin = 7 * 24 * time.Hour
	if st := run(t, runner(s, c, p, nil, "a")); st.State != preload.Done || st.Imported != 1 || st.Total != 1 {
		t.Fatalf("status %+v", st)
	}
	getAll(t, c, []usersessions.Key{recent.Key()})
	if n := s.gets.Load(); n != 0 {
		t.Errorf("the recent session was read from the store")
	}
	getAll(t, c, []usersessions.Key{old.Key()})
	if n := s.gets.Load(); n != 1 {
		t.Errorf("the old session: %d store reads, want 1 (lazy)", n)
	}
}

func TestLazyPlanPreloadsNothing(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 10, "a")
	c := newCache(t, s, 100)
	st := run(t, runner(s, c, lazy.New(nil), nil, "a"))
	if st.State != preload.Lazy || !st.Ready() || s.streams.Load() != 0 || c.Stats().Entries != 0 {
		t.Errorf("status %+v, %d pages streamed, cache %+v", st, s.streams.Load(), c.Stats())
	}
}

func TestDatabaseProviderPlansWithItsOptions(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 30, "a")
	c := newCache(t, s, 100)
	p := database.New(nil)
	if err := p.Configure(t.Context(), spi.Config{database.OptPageSize: "7", database.OptWorkers: "2"}); err != nil {
		t.Fatal(err)
	}
	st := run(t, runner(s, c, p, nil, "a"))
	// 30 sessions over 2 partitions in pages of 7: at least ceil(30/7) pages.
	if st.State != preload.Done || st.Imported != 30 || s.streams.Load() < 5 {
		t.Errorf("status %+v after %d pages", st, s.streams.Load())
	}
}

func TestStoreFailureFallsBackToLazyWithTheReason(t *testing.T) {
	s := newStore(t, "this-node")
	keys := fill(t, s, 100, "a")
	s.page = func(n int64, _ []*usersessions.UserSession) error {
		if n == 3 {
			return fmt.Errorf("connection reset by peer: %w", spi.ErrUnavailable)
		}
		return nil
	}
	c := newCache(t, s, 1000)
	log := &testlog.Buffer{}
	st := run(t, runner(s, c, eager(1, 10), log, "a"))
	if st.State != preload.FellBack || !st.Ready() || !strings.Contains(st.Reason, "connection reset by peer") {
		t.Fatalf("status %+v, want fell back with the store's error", st)
	}
	if st.Imported != 20 {
		t.Errorf("imported %d before the failure, want the 2 pages of 10 read", st.Imported)
	}
	for _, want := range []string{"[ERROR]", "offline preload failed", "lazily", "connection reset by peer", `realm \"a\"`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	// Lazy from here: every session is still served, the rest read once from the store.
	for _, got := range getAll(t, c, keys) {
		if got == nil {
			t.Fatal("a session is missing after the failed preload")
		}
	}
	if n := s.gets.Load(); n != 80 {
		t.Errorf("%d store reads, want the 80 sessions not preloaded", n)
	}
	if !strings.Contains(st.String(), "lazy loading from here") {
		t.Errorf("readiness line %q", st)
	}
}

func TestStallPastTheTimeoutFallsBack(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 50, "a")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.page = func(n int64, _ []*usersessions.UserSession) error {
		if n == 2 {
			<-release // the store stops answering
		}
		return nil
	}
	c := newCache(t, s, 1000)
	p := eager(1, 10)
	p.plan.Timeout = 200 * time.Millisecond
	log := &testlog.Buffer{}
	start := time.Now()
	r := runner(s, c, p, log, "a")
	done := make(chan struct{})
	go func() { defer close(done); r.Run(t.Context()) }()
	select {
	case <-done:
		t.Fatal("the runner returned while the store was stalled; want it to give up")
	case <-time.After(time.Second):
	}
	// The stalled page blocks the worker in the store; the runner has given up already.
	st := r.Status()
	if st.State != preload.FellBack || !st.Ready() || !strings.Contains(st.Reason, "timeout of 200ms") || !strings.Contains(st.Reason, "10 sessions loaded") {
		t.Fatalf("status %+v after %v", st, time.Since(start))
	}
	if !strings.Contains(log.String(), "not done within the timeout") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestProgressWhileRunning(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 100, "a")
	hold := make(chan struct{})
	reached := make(chan struct{})
	s.page = func(n int64, _ []*usersessions.UserSession) error {
		if n == 4 {
			close(reached)
			<-hold
		}
		return nil
	}
	c := newCache(t, s, 1000)
	p := eager(1, 10)
	p.plan.ProgressEvery = 20 * time.Millisecond
	log := &testlog.Buffer{}
	r := runner(s, c, p, log, "a")
	if st := r.Status(); st.State != preload.Planning || st.Ready() {
		t.Errorf("before Run: %+v", st)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(t.Context()) }()
	<-reached
	time.Sleep(100 * time.Millisecond)
	st := r.Status()
	if st.State != preload.Running || st.Ready() || st.Loaded != 30 || st.Total != 100 || st.Rate <= 0 {
		t.Errorf("while running: %+v", st)
	}
	line := st.String()
	for _, want := range []string{"30 of 100 (30%)", "/s", "left"} {
		if !strings.Contains(line, want) {
			t.Errorf("readiness line %q lacks %q", line, want)
		}
	}
	for _, want := range []string{"preloading offline sessions", "loaded=30", "total=100", "per_second=", "eta="} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress log lacks %q:\n%s", want, log.String())
		}
	}
	close(hold)
	<-done
	if st := r.Status(); st.State != preload.Done || st.Imported != 100 {
		t.Errorf("after: %+v", st)
	}
}

func TestAFullCacheStopsThePreload(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 100, "a")
	c := newCache(t, s, 25)
	st := run(t, runner(s, c, eager(2, 10), nil, "a"))
	if st.State != preload.Done || st.Imported != 25 || !strings.Contains(st.Reason, "cache is full") {
		t.Errorf("status %+v", st)
	}
	if cs := c.Stats(); cs.Entries != 25 || cs.Evictions != 0 {
		t.Errorf("cache %+v: the preload must fill it, not churn it", cs)
	}
}

// A session another node changes after its page was read, but before the preload imports
// the page, must not be imported from the page: the cache would hold a state the store has
// left (here: a logged-out session, and a rotated refresh token).
func TestChangesDuringThePreloadAreNotImportedStale(t *testing.T) {
	s := newStore(t, "other-node") // its writes reach the cache as another node's
	keys := fill(t, s, 20, "a")
	// A cached session of a realm not preloaded: its invalidation tells the test that the
	// feed has delivered the changes made before it. It is stored before the cache
	// subscribes, so that no late report of its create can count as that invalidation
	// (CI once saw the create's report drop it after it was cached, and the test went on
	// before the feed had delivered the changes it waits for).
	sentinel := session("z", "sentinel", true, t0)
	if _, err := s.Create(t.Context(), []*usersessions.UserSession{sentinel}); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, s, 1000)
	waitFollowing(t, c)
	if got := getAll(t, c, []usersessions.Key{sentinel.Key()}); got[0] == nil || c.Stats().Entries != 1 {
		t.Fatalf("the sentinel is not cached: %+v", c.Stats())
	}
	invalid := c.Stats().Invalid
	s.gets.Store(0)
	deleted, rotated := keys[3], keys[5]
	s.page = func(n int64, page []*usersessions.UserSession) error {
		if n != 1 {
			return nil
		}
		// The page is read; now another node logs one session out and rotates another.
		if _, err := s.Provider.Delete(context.Background(), []usersessions.Key{deleted}); err != nil {
			return err
		}
		cs := session("a", rotated.ID, true, t0).Clients["app"]
		cs.Version, cs.CurrentRefreshToken = 1, "rt-rotated"
		if errs, err := s.Provider.PutClientSessions(context.Background(), []*usersessions.ClientSession{cs}); err != nil || errs[0] != nil {
			return fmt.Errorf("rotate: %v %v", err, errs)
		}
		if _, err := s.Provider.Delete(context.Background(), []usersessions.Key{sentinel.Key()}); err != nil {
			return err
		}
		// The feed tells the cache before the page is imported, as for a slow import.
		deadline := time.Now().Add(5 * time.Second)
		for c.Stats().Invalid == invalid {
			if time.Now().After(deadline) {
				return errors.New("the feed did not deliver the sentinel's change")
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	st := run(t, runner(s, c, eager(1, 100), nil, "a"))
	if st.State != preload.Done || st.Imported != 18 {
		t.Fatalf("status %+v, want 18 of the 20 imported (the two changed ones skipped)", st)
	}
	gets := s.gets.Load()
	got := getAll(t, c, []usersessions.Key{deleted, rotated})
	if got[0] != nil {
		t.Errorf("the logged-out session is served: %+v", got[0])
	}
	if got[1] == nil || got[1].Clients["app"].CurrentRefreshToken != "rt-rotated" {
		t.Errorf("the rotated session is served with its old state: %+v", got[1])
	}
	if s.gets.Load() != gets+2 {
		t.Errorf("the two changed sessions were not read from the store")
	}
}

func waitFollowing(t *testing.T, c *cache.Cache) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !c.Stats().Following {
		if time.Now().After(deadline) {
			t.Fatal("the cache does not follow the feed")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestABrokenFeedDuringThePreloadFallsBack(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 50, "a")
	c := newCache(t, s, 1000)
	s.page = func(n int64, _ []*usersessions.UserSession) error {
		if n == 2 {
			c.Forget() // as when the feed breaks: the cache is emptied
		}
		return nil
	}
	st := run(t, runner(s, c, eager(1, 10), nil, "a"))
	if st.State != preload.FellBack || !st.Ready() || !strings.Contains(st.Reason, "emptied") {
		t.Errorf("status %+v", st)
	}
}

func TestPlannerFailureFallsBack(t *testing.T) {
	s := newStore(t, "this-node")
	c := newCache(t, s, 100)
	st := run(t, runner(s, c, &planner{err: errors.New("plugin crashed")}, nil, "a"))
	if st.State != preload.FellBack || !st.Ready() || !strings.Contains(st.Reason, "plugin crashed") {
		t.Errorf("status %+v", st)
	}
}

// The cache-lifespan question is asked once per page, not once per session.
func TestLifespansAreAskedOncePerPage(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 50, "a")
	var calls, asked atomic.Int64
	c := cache.New(s, cache.Options{NodeID: "this-node", Now: func() time.Time { return t0 },
		Lifespans: func(_ context.Context, ss []*usersessions.UserSession, imported bool, _ time.Time) ([]time.Time, error) {
			calls.Add(1)
			asked.Add(int64(len(ss)))
			if !imported {
				return nil, errors.New("preloaded sessions are imported")
			}
			return make([]time.Time, len(ss)), nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Follow(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	st := run(t, runner(s, c, eager(1, 10), nil, "a"))
	if st.Imported != 50 || calls.Load() != 5 || asked.Load() != 50 {
		t.Errorf("imported %d with %d lifespan calls for %d sessions; want 50 in 5 calls", st.Imported, calls.Load(), asked.Load())
	}
}

// lender is a store that lends its pages (usersessions.PageLender), and once fn has
// returned scribbles over every session and client session of the page, as a provider
// reusing them for the next page would.
type lender struct {
	*store
	lent atomic.Int64 // pages lent
}

func (l *lender) StreamLent(ctx context.Context, req usersessions.StreamRequest, fn func([]*usersessions.UserSession) error) error {
	return l.store.Stream(ctx, req, func(page []*usersessions.UserSession) error {
		l.lent.Add(1)
		err := fn(page)
		scribble(page)
		return err
	})
}

// scribble overwrites a lent page once fn is done with it.
func scribble(page []*usersessions.UserSession) {
	for _, s := range page {
		for id, c := range s.Clients {
			*c = usersessions.ClientSession{ClientID: "scribbled", CurrentRefreshToken: "scribbled"}
			delete(s.Clients, id)
		}
		clear(s.Notes)
		*s = usersessions.UserSession{ID: "scribbled", RealmID: s.RealmID, UserID: "scribbled"}
	}
}

// TestALentPageIsCopied preloads from a store that lends its pages: the preload takes
// them lent, and what it cached is the sessions as they were, not what the store made of
// its pages afterwards.
func TestALentPageIsCopied(t *testing.T) {
	s := newStore(t, "this-node")
	keys := fill(t, s, 300, "a")
	l := &lender{store: s}
	c := newCache(t, s, 10000)
	r := preload.New(preload.Deps{Store: l, Cache: c, Planner: eager(2, 50), Realms: func() []string { return []string{"a"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger()})
	if st := run(t, r); st.State != preload.Done || st.Imported != 300 {
		t.Fatalf("status %+v (%s), want done with 300", st, st)
	}
	if l.lent.Load() == 0 {
		t.Fatal("the preload did not take the pages lent")
	}
	for i, got := range getAll(t, c, keys) {
		want := session("a", keys[i].ID, true, t0)
		if got == nil || got.ID != want.ID || got.UserID != want.UserID || got.Clients["app"] == nil ||
			got.Clients["app"].CurrentRefreshToken != want.Clients["app"].CurrentRefreshToken {
			t.Fatalf("cached %+v, want %+v", got, want)
		}
	}
	if n := s.gets.Load(); n != 0 {
		t.Errorf("%d store reads after the preload, want 0", n)
	}
}

// TestTimeoutWhileWaitingForTheRecompute: the timeout counts from the start, waits
// included, and the reason says that no page had been read (not when the last one was).
func TestTimeoutWhileWaitingForTheRecompute(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 5, "a")
	c := newCache(t, s, 100)
	p := eager(2, 10)
	p.plan.Timeout = 100 * time.Millisecond
	r := preload.New(preload.Deps{Store: s, Cache: c, Planner: p, Realms: func() []string { return []string{"a"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger(), Wait: make(chan struct{})}) // never recomputed
	st := run(t, r)
	if st.State != preload.FellBack || !strings.Contains(st.Reason, "reading had not begun") ||
		!strings.Contains(st.Reason, "waiting for the stored expiries") || strings.Contains(st.Reason, "last page") || st.Rate != 0 {
		t.Fatalf("status %+v", st)
	}
}

// parallel is a store that streams a whole selection to parallel workers
// (usersessions.ParallelLender), lending each page as the plugin client does; with
// unsupported set it refuses, as a provider that cannot does.
type parallel struct {
	*store
	unsupported bool

	mu         sync.Mutex
	calls      []usersessions.StreamRequest // of StreamLentParallel
	partitions []usersessions.Partition     // of Stream
	most       atomic.Int32                 // fn calls at once, at most
}

func (p *parallel) Stream(ctx context.Context, req usersessions.StreamRequest, fn func([]*usersessions.UserSession) error) error {
	p.mu.Lock()
	p.partitions = append(p.partitions, req.Partition)
	p.mu.Unlock()
	return p.store.Stream(ctx, req, fn)
}

func (p *parallel) StreamLentParallel(ctx context.Context, req usersessions.StreamRequest, workers int, fn func([]*usersessions.UserSession) error) error {
	p.mu.Lock()
	p.calls = append(p.calls, req)
	p.mu.Unlock()
	if p.unsupported {
		return fmt.Errorf("not in parallel: %w", errors.ErrUnsupported)
	}
	pages := make(chan []*usersessions.UserSession)
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int32
		mu       sync.Mutex
		first    error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for page := range pages {
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					continue
				}
				n := inFlight.Add(1)
				for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
				}
				time.Sleep(time.Millisecond) // long enough for the other workers to be in fn too
				err := fn(page)
				inFlight.Add(-1)
				scribble(page)
				if err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	err := p.store.Stream(ctx, req, func(page []*usersessions.UserSession) error {
		select {
		case pages <- page:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(pages)
	wg.Wait()
	return cmp.Or(first, err)
}

// TestAParallelStoreIsReadOncePerRealm: a store that streams to parallel workers is read
// in one pass per realm, its pages imported by several workers at once.
func TestAParallelStoreIsReadOncePerRealm(t *testing.T) {
	s := newStore(t, "this-node")
	keys := fill(t, s, 250, "a", "b")
	p := &parallel{store: s}
	c := newCache(t, s, 10000)
	r := preload.New(preload.Deps{Store: p, Cache: c, Planner: eager(3, 10), Realms: func() []string { return []string{"a", "b"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger()})
	if st := run(t, r); st.State != preload.Done || st.Imported != 500 {
		t.Fatalf("status %+v (%s), want done with 500", st, st)
	}
	if len(p.calls) != 2 || p.calls[0].Filter.RealmID != "a" || p.calls[1].Filter.RealmID != "b" ||
		p.calls[0].Partition != (usersessions.Partition{}) || p.calls[0].Filter.Offline != usersessions.OfflineOnly {
		t.Errorf("parallel streams %+v, want one of each realm's offline sessions, whole", p.calls)
	}
	if len(p.partitions) != 0 {
		t.Errorf("partitions read too: %+v", p.partitions)
	}
	if m := p.most.Load(); m < 2 || m > 3 {
		t.Errorf("pages imported by %d workers at once, want 2 or 3", m)
	}
	for i, got := range getAll(t, c, keys) {
		if got == nil || got.ID != keys[i].ID || got.Clients["app"] == nil || got.Clients["app"].CurrentRefreshToken != "rt-"+keys[i].ID {
			t.Fatalf("cached %+v for %s", got, keys[i].ID)
		}
	}
	if n := s.gets.Load(); n != 0 {
		t.Errorf("%d store reads after the preload, want 0", n)
	}
}

// TestAStoreThatCannotStreamInParallelIsReadInPartitions: a ParallelLender that says it
// cannot is read one partition per worker, as any store.
func TestAStoreThatCannotStreamInParallelIsReadInPartitions(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 100, "a")
	p := &parallel{store: s, unsupported: true}
	c := newCache(t, s, 10000)
	r := preload.New(preload.Deps{Store: p, Cache: c, Planner: eager(3, 10), Realms: func() []string { return []string{"a"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger()})
	if st := run(t, r); st.State != preload.Done || st.Imported != 100 {
		t.Fatalf("status %+v (%s), want done with 100", st, st)
	}
	slices.SortFunc(p.partitions, func(a, b usersessions.Partition) int { return a.Index - b.Index })
	want := []usersessions.Partition{{Index: 0, Count: 3}, {Index: 1, Count: 3}, {Index: 2, Count: 3}}
	if !slices.Equal(p.partitions, want) {
		t.Errorf("partitions read %+v, want %+v", p.partitions, want)
	}
}

// TestAParallelStreamFailureFallsBack: a failure of the one pass falls back to lazy
// loading with the store's reason and the realm.
func TestAParallelStreamFailureFallsBack(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 100, "a")
	s.page = func(n int64, _ []*usersessions.UserSession) error {
		if n == 4 {
			return fmt.Errorf("connection reset by peer: %w", spi.ErrUnavailable)
		}
		return nil
	}
	p := &parallel{store: s}
	c := newCache(t, s, 10000)
	r := preload.New(preload.Deps{Store: p, Cache: c, Planner: eager(3, 10), Realms: func() []string { return []string{"a"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger()})
	st := run(t, r)
	if st.State != preload.FellBack || !strings.Contains(st.Reason, "connection reset by peer") || !strings.Contains(st.Reason, `realm "a"`) {
		t.Fatalf("status %+v, want fell back with the store's error and the realm", st)
	}
	if len(p.partitions) != 0 {
		t.Errorf("partitions read after the failure: %+v", p.partitions)
	}
}

// TestTheRuntimeIsToldHowManySessionsAreComing: once the store has counted them, before
// the preload imports them, Expect is told once how many sessions are coming.
func TestTheRuntimeIsToldHowManySessionsAreComing(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 250, "a", "b")
	c := newCache(t, s, 10000)
	var r *preload.Runner
	s.page = func(n int64, _ []*usersessions.UserSession) error {
		if n == 1 { // the first page waits for the count, so that Expect comes before any import
			for deadline := time.Now().Add(10 * time.Second); r.Status().Total < 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					return errors.New("the sessions were not counted in 10 s")
				}
			}
		}
		return nil
	}
	var expected []int
	r = preload.New(preload.Deps{Store: s, Cache: c, Planner: eager(1, 40), Realms: func() []string { return []string{"a", "b"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger(), Expect: func(n int) { expected = append(expected, n) }})
	if st := run(t, r); st.State != preload.Done || st.Imported != 500 {
		t.Fatalf("status %+v (%s), want done with 500", st, st)
	}
	if !slices.Equal(expected, []int{500}) {
		t.Errorf("Expect was told %v, want [500] once", expected)
	}
}

// slowCount is a store whose Count answers only when its context ends, as a count of a
// large table that is still running when a fast stream is done.
type slowCount struct{ *store }

func (s slowCount) Count(ctx context.Context, _ usersessions.Filter) (int64, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestDonePreloadKnowsItsTotalWhenTheCountDidNotAnswer(t *testing.T) {
	s := newStore(t, "this-node")
	fill(t, s, 250, "a", "b")
	c := newCache(t, s, 10000)
	r := preload.New(preload.Deps{Store: slowCount{s}, Cache: c, Planner: eager(3, 40), Realms: func() []string { return []string{"a", "b"} },
		Now: func() time.Time { return t0 }, Log: hclog.NewNullLogger()})
	st := run(t, r)
	if st.State != preload.Done || st.Loaded != 500 || st.Total != 500 {
		t.Fatalf("status %s: state %s, loaded %d, total %d; want done, 500 of 500", st, st.State, st.Loaded, st.Total)
	}
}
