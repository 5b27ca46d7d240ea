// Package preload executes the offline-preload SPI's plan: at start-up it asks the
// provider for a plan and, for an eager one, streams the offline sessions of every realm
// from the user-sessions store into the session cache, in pages, with parallel workers:
// sharing one pass over each realm when the store can stream so (a plugin's store does),
// else reading disjoint partitions of it.
//
// The provider decides and the core executes, so that pages of sessions cross the plugin
// boundary once (store → sessiond), never through the preload provider as well.
//
// While it runs, Status says how far it is (sessions loaded, of how many, rate, time left)
// for /health/ready, and the log says so every ProgressEvery. A preload never stops
// sessiond from starting: when the store fails, the cache's change feed breaks, or the
// timeout passes, the reason is logged and sessiond falls back to lazy loading; what was
// imported by then stays cached (it is kept coherent like any other entry), the rest loads
// on first use.
//
// Imports go through a cache.Preload window opened once the cache follows the change feed,
// and pages are read after it opened: a session that changes while the preload runs is not
// imported from a page that may predate the change (see core/cache/preload.go).
package preload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Store is what a preload reads.
type Store interface {
	Count(ctx context.Context, f usersessions.Filter) (int64, error)
	Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error
}

// Deps are what a Runner needs.
type Deps struct {
	Store   Store
	Cache   *cache.Cache
	Planner offlinepreload.Provider
	// Realms lists the realm ids whose offline sessions are preloaded.
	Realms func() []string
	// Now is the clock; nil means time.Now. Rates and the timeout use the real clock.
	Now func() time.Time
	Log hclog.Logger
	// Wait, when set, holds an eager preload (not the plan) until it is closed: the
	// runtime closes it once stored expiries are current, as a rewrite of the store
	// behind the cache would void a preload running beside it.
	Wait <-chan struct{}
	// Expect, when set, is told once how many sessions an eager preload is about to
	// import, when it knows (the store has counted them), before it imports most of them:
	// the runtime grows its heap for them at once.
	Expect func(sessions int)
}

// State is where a preload is.
type State string

const (
	Planning State = "planning"  // asking the provider; not ready
	Running  State = "running"   // streaming; not ready
	Lazy     State = "lazy"      // the plan was lazy loading; ready
	Done     State = "done"      // preloaded; ready
	FellBack State = "fell-back" // failed or timed out, lazy loading from here; ready
	Stopped  State = "stopped"   // sessiond stopped before it ended
)

// Status is a preload's progress.
type Status struct {
	State State
	// Loaded counts the sessions read from the store and handed to the cache; Imported
	// those the cache took (the others changed meanwhile, were cached already, or had
	// no lifespan left). Total is what the store holds for the plan, -1 while unknown.
	Loaded, Imported, Total int64
	Elapsed                 time.Duration
	// Rate is Loaded per second of Elapsed; Left the estimated time to go, -1 if unknown.
	Rate float64
	Left time.Duration
	// Reason says why it fell back (FellBack), or what cut it short (Done with the cache
	// full).
	Reason string
}

// Ready reports whether the runtime may report ready as far as the preload is concerned.
func (s Status) Ready() bool { return s.State != Planning && s.State != Running }

// String is the status in one line, for readiness and logs.
func (s Status) String() string {
	switch s.State {
	case Planning:
		return "planning the offline preload"
	case Running:
		out := fmt.Sprintf("preloading offline sessions: %d loaded", s.Loaded)
		if s.Total >= 0 {
			pct := 100.0
			if s.Total > 0 {
				pct = 100 * float64(s.Loaded) / float64(s.Total)
			}
			out = fmt.Sprintf("preloading offline sessions: %d of %d (%.0f%%)", s.Loaded, s.Total, pct)
		}
		out += fmt.Sprintf(", %.0f/s", s.Rate)
		if s.Left >= 0 {
			out += fmt.Sprintf(", about %s left", s.Left.Round(time.Second))
		}
		return out
	case Lazy:
		return "lazy: offline sessions load on first use"
	case Done:
		out := fmt.Sprintf("preloaded %d offline sessions in %s", s.Imported, s.Elapsed.Round(time.Millisecond))
		if s.Reason != "" {
			out += "; " + s.Reason
		}
		return out
	case FellBack:
		return fmt.Sprintf("offline preload failed after %d sessions, lazy loading from here: %s", s.Imported, s.Reason)
	}
	return string(s.State)
}

// Runner plans and runs the preload once.
type Runner struct {
	d Deps

	mu      sync.Mutex
	state   State
	reason  string
	started time.Time // real clock
	reading time.Time // when the first partition began to be read, for the rate
	ended   time.Time
	timeout time.Duration
	plan    offlinepreload.Plan // the eager plan Plan made, for Execute
	realms  []string
	total   atomic.Int64

	loaded, imported atomic.Int64
	lastPage         atomic.Int64 // real-clock Unix ns of the last page
	reserved         atomic.Bool  // the cache was told how many sessions are coming
}

// New returns a Runner in the Planning state.
func New(d Deps) *Runner {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	if d.Realms == nil {
		d.Realms = func() []string { return nil }
	}
	r := &Runner{d: d, state: Planning}
	r.total.Store(-1)
	return r
}

// Status returns the progress so far.
func (r *Runner) Status() Status {
	r.mu.Lock()
	st := Status{State: r.state, Reason: r.reason}
	started, reading, ended := r.started, r.reading, r.ended
	r.mu.Unlock()
	st.Loaded, st.Imported, st.Total = r.loaded.Load(), r.imported.Load(), r.total.Load()
	st.Left = -1
	if started.IsZero() {
		return st
	}
	if ended.IsZero() {
		ended = time.Now()
	}
	st.Elapsed = ended.Sub(started)
	// The rate counts from the first read: waiting for the recompute or the change feed
	// before it read nothing, and would make the estimate of what is left too long.
	if secs := ended.Sub(reading).Seconds(); !reading.IsZero() && secs > 0 {
		st.Rate = float64(st.Loaded) / secs
	}
	if st.State == Running && st.Total >= 0 && st.Rate > 0 {
		st.Left = time.Duration(float64(max(st.Total-st.Loaded, 0)) / st.Rate * float64(time.Second))
	}
	return st
}

func (r *Runner) set(s State, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state, r.reason = s, reason
	if s != Planning && s != Running && !r.started.IsZero() && r.ended.IsZero() {
		r.ended = time.Now()
	}
}

// countBudget bounds the count of offline sessions the provider is told of when it plans:
// planning holds start-up, and a lazy start-up must be ready in well under a second
// whatever the store holds (a million rows take PostgreSQL about 0.2 s to count). Past it
// the provider is told -1; an eager preload counts again beside the stream, for progress.
const countBudget = 100 * time.Millisecond

// planTimeout bounds the provider's answer: a provider that hangs must not hold start-up.
const planTimeout = 10 * time.Second

// Plan defaults for a provider that leaves a field unset.
const (
	defaultPageSize      = 1000
	defaultTimeout       = 10 * time.Minute
	defaultProgressEvery = 10 * time.Second
)

// Run plans and, for an eager plan, preloads: Plan then Execute.
func (r *Runner) Run(ctx context.Context) {
	r.Plan(ctx)
	r.Execute(ctx)
}

// Plan asks the provider for its plan (within planTimeout), telling it how many offline
// sessions the store holds (counted within countBudget, -1 if that was not enough). It
// leaves the Runner Lazy (nothing to preload), FellBack (the provider failed or gave an
// unknown mode: lazy loading, with the reason) or Running (an eager plan, for Execute).
// Calling it before the runtime serves means readiness is right from the first probe: a
// lazy start is ready at once, an eager one is not.
func (r *Runner) Plan(ctx context.Context) {
	realms := r.d.Realms()
	sit := offlinepreload.Situation{Realms: realms, Now: r.d.Now(), CacheCapacity: int64(r.d.Cache.Stats().MaxEntries)}
	cctx, cancel := context.WithTimeout(ctx, countBudget)
	sit.OfflineCount = r.count(cctx, realms, usersessions.Filter{Offline: usersessions.OfflineOnly})
	cancel()
	pctx, cancel := context.WithTimeout(ctx, planTimeout)
	plan, err := r.d.Planner.Plan(pctx, sit)
	cancel()
	switch {
	case ctx.Err() != nil:
		r.set(Stopped, "")
	case err != nil:
		r.d.Log.Error("the offline-preload provider did not plan; offline sessions load lazily", "error", err)
		r.set(FellBack, "the offline-preload provider failed: "+err.Error())
	case plan.Mode == offlinepreload.Lazy || plan.Mode == "":
		r.d.Log.Info("offline sessions load lazily, on first use", "offline_sessions", sit.OfflineCount)
		r.set(Lazy, "")
	case plan.Mode != offlinepreload.Eager:
		r.d.Log.Error("the offline-preload provider planned an unknown mode; offline sessions load lazily", "mode", plan.Mode)
		r.set(FellBack, fmt.Sprintf("unknown preload mode %q", plan.Mode))
	default:
		r.mu.Lock()
		r.plan, r.realms, r.state = withDefaults(plan), realms, Running
		r.mu.Unlock()
	}
}

// Execute preloads when Plan made an eager plan, and returns at once otherwise. It returns
// when the preload is done, has fallen back, or ctx ended. Its caller owns it (the runtime
// runs it in a background goroutine).
func (r *Runner) Execute(ctx context.Context) {
	r.mu.Lock()
	state, plan, realms := r.state, r.plan, r.realms
	r.mu.Unlock()
	if state != Running {
		return
	}
	r.eager(ctx, realms, plan)
}

func withDefaults(p offlinepreload.Plan) offlinepreload.Plan {
	if p.PageSize <= 0 {
		p.PageSize = defaultPageSize
	}
	p.Workers = max(p.Workers, 1)
	if p.Timeout <= 0 {
		p.Timeout = defaultTimeout
	}
	if p.ProgressEvery <= 0 {
		p.ProgressEvery = defaultProgressEvery
	}
	return p
}

// count sums a filter's count over the realms; -1 if it failed or ctx ended first.
func (r *Runner) count(ctx context.Context, realms []string, f usersessions.Filter) int64 {
	var n int64
	for _, realm := range realms {
		f.RealmID = realm
		c, err := r.d.Store.Count(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				r.d.Log.Debug("counting offline sessions failed", "realm", realm, "error", err)
			}
			return -1
		}
		n += c
	}
	return n
}

// Reasons a preload ends early, as causes of its context.
var (
	errTimeout = errors.New("timed out")
	errFull    = errors.New("the cache is full")
)

// job is one partition of one realm.
type job struct {
	realm     string
	partition usersessions.Partition
}

func (r *Runner) eager(parent context.Context, realms []string, plan offlinepreload.Plan) {
	r.mu.Lock()
	r.started, r.timeout = time.Now(), plan.Timeout
	r.mu.Unlock()
	// Every goroutine started here has ended when eager returns: wg.Wait runs after the
	// contexts below are cancelled.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancelTimeout := context.WithTimeoutCause(parent, plan.Timeout, errTimeout)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	filter := usersessions.Filter{Offline: usersessions.OfflineOnly}
	if plan.ActiveWithin > 0 {
		filter.ActiveSince = r.d.Now().Add(-plan.ActiveWithin)
	}
	args := []any{"realms", len(realms), "page_size", plan.PageSize, "workers", plan.Workers, "timeout", plan.Timeout.String()}
	if !filter.ActiveSince.IsZero() {
		args = append(args, "active_since", filter.ActiveSince)
	}
	r.d.Log.Info("preloading offline sessions", args...)

	// The total, for progress, is counted beside the stream: the stream need not wait for it.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if n := r.count(ctx, realms, filter); n >= 0 {
			r.total.Store(n)
		}
	}()
	progressDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.logProgress(ctx, plan.ProgressEvery, progressDone)
	}()
	defer close(progressDone)

	if r.d.Wait != nil {
		select {
		case <-r.d.Wait:
		default:
			r.d.Log.Info("the offline preload waits until stored session expiries are recomputed")
		}
		select {
		case <-r.d.Wait:
		case <-ctx.Done():
			r.fail(parent, fmt.Errorf("%w (waiting for the stored expiries to be recomputed)", context.Cause(ctx)))
			return
		}
	}
	window, err := r.open(ctx)
	if err != nil {
		r.fail(parent, err)
		return
	}
	defer window.Close()
	r.mu.Lock()
	r.reading = time.Now()
	r.mu.Unlock()
	r.lastPage.Store(time.Now().UnixNano()) // a stall is counted from here

	workersDone := make(chan struct{})
	go func() {
		defer close(workersDone)
		r.read(ctx, cancel, window, filter, plan, realms)
	}()
	// The outcome is decided when the workers are done or the preload is cut short,
	// whichever comes first: a store call that does not return must not hold readiness
	// past the timeout. The workers are waited for all the same before Run returns.
	select {
	case <-workersDone:
	case <-ctx.Done():
	}
	window.Close() // a page that arrives late is not imported
	r.finish(parent, context.Cause(ctx))
	<-workersDone
}

// read reads the realms into the window. With more than one worker it reads each realm
// in one pass shared by the workers when the store can (a ParallelLender); otherwise, and
// for the realms it cannot, each worker reads one partition of a realm at a time.
func (r *Runner) read(ctx context.Context, cancel context.CancelCauseFunc, window *cache.Preload, filter usersessions.Filter, plan offlinepreload.Plan, realms []string) {
	if parallel, ok := r.d.Store.(usersessions.ParallelLender); ok && plan.Workers > 1 {
		for len(realms) > 0 {
			j := job{realm: realms[0]}
			err := parallel.StreamLentParallel(ctx, r.request(filter, plan.PageSize, j), plan.Workers, r.importer(ctx, window))
			if errors.Is(err, errors.ErrUnsupported) {
				r.d.Log.Debug("the store cannot stream a realm once to all the workers; each reads a partition", "realm", j.realm, "reason", err.Error())
				break // this realm and the rest in partitions
			}
			if err != nil {
				r.failed(ctx, cancel, j, err)
				return
			}
			r.d.Log.Debug("the store streamed a realm once to all the workers", "realm", j.realm, "workers", plan.Workers)
			realms = realms[1:]
		}
	}
	jobs := make(chan job)
	var workers sync.WaitGroup
	defer workers.Wait()
	for range plan.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				r.stream(ctx, cancel, window, filter, plan.PageSize, j)
			}
		}()
	}
	defer close(jobs)
	for _, realm := range realms {
		for i := range plan.Workers {
			p := usersessions.Partition{Index: i, Count: plan.Workers}
			if plan.Workers == 1 {
				p = usersessions.Partition{}
			}
			select {
			case jobs <- job{realm: realm, partition: p}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// request is the stream request of job j.
func (r *Runner) request(filter usersessions.Filter, pageSize int, j job) usersessions.StreamRequest {
	req := usersessions.StreamRequest{Filter: filter, PageSize: pageSize, Partition: j.partition}
	req.Filter.RealmID = j.realm
	return req
}

// stream reads one partition of one realm into the window; a failure cancels the preload.
func (r *Runner) stream(ctx context.Context, cancel context.CancelCauseFunc, window *cache.Preload, filter usersessions.Filter, pageSize int, j job) {
	stream := r.d.Store.Stream
	if lender, ok := r.d.Store.(usersessions.PageLender); ok {
		stream = lender.StreamLent // Import copies what it keeps
	}
	if err := stream(ctx, r.request(filter, pageSize, j), r.importer(ctx, window)); err != nil {
		r.failed(ctx, cancel, j, err)
	}
}

// importer is the function a stream hands its pages to: it imports them into the window.
// It is safe for concurrent use.
func (r *Runner) importer(ctx context.Context, window *cache.Preload) func(page []*usersessions.UserSession) error {
	return func(page []*usersessions.UserSession) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.lastPage.Store(time.Now().UnixNano())
		if total := r.total.Load(); total >= 0 && !r.reserved.Load() && r.reserved.CompareAndSwap(false, true) {
			coming := int(total - r.loaded.Load())
			if r.d.Expect != nil {
				r.d.Expect(coming)
			}
			window.Reserve(coming)
		}
		n, full, err := window.Import(ctx, page)
		r.imported.Add(int64(n))
		if err != nil {
			return err
		}
		r.loaded.Add(int64(len(page)))
		if full {
			return errFull
		}
		return nil
	}
}

// failed cancels the preload with the error of job j's stream, unless it was cut short
// already (the first cause is kept).
func (r *Runner) failed(ctx context.Context, cancel context.CancelCauseFunc, j job, err error) {
	if ctx.Err() != nil {
		return
	}
	if !errors.Is(err, errFull) && !errors.Is(err, cache.ErrPreloadBroken) {
		part := ""
		if j.partition.Count > 1 {
			part = fmt.Sprintf(" (partition %d of %d)", j.partition.Index+1, j.partition.Count)
		}
		err = fmt.Errorf("reading the offline sessions of realm %q%s failed: %w", j.realm, part, err)
	}
	cancel(err)
}

// finish records the outcome; cause is nil when every partition was read.
func (r *Runner) finish(parent context.Context, cause error) {
	switch {
	case cause == nil:
		// Every partition was read, so what was read is the total. The count beside the
		// stream is cancelled when the stream ends: on a fast preload it may not have
		// answered yet, which left Total unknown (-1) on a preload that was done.
		r.total.CompareAndSwap(-1, r.loaded.Load())
		r.set(Done, "")
		st := r.Status()
		r.d.Log.Info("offline sessions preloaded", "sessions", st.Imported, "read", st.Loaded,
			"elapsed", st.Elapsed.Round(time.Millisecond), "per_second", int64(st.Rate))
	case errors.Is(cause, errFull):
		bound := r.d.Cache.Stats().MaxEntries
		r.set(Done, fmt.Sprintf("the cache is full (cache-max-entries=%d): the other offline sessions load lazily", bound))
		st := r.Status()
		r.d.Log.Warn("offline preload stopped: the session cache is full; the other offline sessions load lazily (raise cache-max-entries, or preload only recent ones with active-within)",
			"sessions", st.Imported, "cache_max_entries", bound, "elapsed", st.Elapsed.Round(time.Millisecond))
	default:
		r.fail(parent, cause)
	}
}

// open waits until the cache follows the change feed, then opens its preload window.
func (r *Runner) open(ctx context.Context) (*cache.Preload, error) {
	for {
		w, err := r.d.Cache.BeginPreload()
		if !errors.Is(err, cache.ErrNotFollowing) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waiting for the session change feed to subscribe)", context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fail ends the preload in FellBack, or Stopped when sessiond is stopping.
func (r *Runner) fail(parent context.Context, cause error) {
	if parent.Err() != nil {
		r.set(Stopped, "")
		return
	}
	if errors.Is(cause, errTimeout) {
		st := r.Status()
		r.mu.Lock()
		timeout := r.timeout
		r.mu.Unlock()
		msg := fmt.Sprintf("not done within the timeout of %s (counted from the start, waits included): %d sessions loaded", timeout, st.Loaded)
		if last := r.lastPage.Load(); last != 0 {
			msg += fmt.Sprintf(", the last page %s ago", time.Since(time.Unix(0, last)).Round(time.Millisecond))
		} else {
			msg += ", reading had not begun"
		}
		if cause != errTimeout {
			msg += " (" + cause.Error() + ")"
		}
		cause = errors.New(msg)
	}
	r.set(FellBack, cause.Error())
	st := r.Status()
	r.d.Log.Error("offline preload failed; offline sessions load lazily from here (sessiond is ready)",
		"reason", cause.Error(), "sessions", st.Imported, "elapsed", st.Elapsed.Round(time.Millisecond))
}

// logProgress logs the progress every interval until done is closed or ctx ends.
func (r *Runner) logProgress(ctx context.Context, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
			st := r.Status()
			args := []any{"loaded", st.Loaded, "per_second", int64(st.Rate), "elapsed", st.Elapsed.Round(time.Second)}
			if st.Total >= 0 {
				args = append(args, "total", st.Total)
			}
			if st.Left >= 0 {
				args = append(args, "eta", st.Left.Round(time.Second))
			}
			r.d.Log.Info("preloading offline sessions", args...)
		}
	}
}
