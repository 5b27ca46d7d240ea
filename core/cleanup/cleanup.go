// Package cleanup removes expired sessions from the store, and keeps the expiry stored with
// each session in step with its realm's timeouts.
//
// Every stored user and client session carries ExpiresAt, computed by the core
// (core/expiry Rules.Stamp) each time it writes the row: each row by its own rules —
// ordinary or remember-me, online or offline, the client's overrides — so cleanup is one
// indexed range delete, DeleteExpired(now), and a Remember-Me timeout never keeps an
// expired ordinary session in the database (seed 003; Keycloak before 26.5 used one cutoff
// per realm, now − max(SSO idle, SSO idle remember-me)). The cutoff is the clock itself,
// with no extra slack: DESIGN "Cleanup deletes exactly the sessions that have expired by
// their own rules". The idle window, when it applies (persistent sessions off), is already
// in the stored expiry.
//
// A pass deletes in bounded batches (Options.BatchSize user sessions per DeleteExpired
// call) with a pause between batches, so a backlog of millions of rows goes as many short
// transactions that live traffic interleaves with, never as one long one holding locks.
// Run makes a pass at once and then every Interval (15 minutes by default: Keycloak's
// scheduled-task interval, Config.scope("scheduled").getLong("interval", 900)); Keycloak
// waits one interval before its first run, sessiond does not, so that what expired while
// it was down goes at start-up and the log shows at once that cleanup works. Several nodes
// may clean one store at the same time: the PostgreSQL provider skips rows another node is
// deleting.
//
// The stored expiries go stale when a realm's timeouts change. Recompute rewrites them:
// it keeps a fingerprint of each realm's expiry settings in the store's records and, when
// it differs, streams that realm's sessions and rewrites every expiry that moved. Until a
// Recompute asked for has succeeded, passes delete nothing, since a lengthened timeout
// would otherwise have cleanup remove sessions that are still valid.
package cleanup

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Store is what the Cleaner uses of the user-sessions SPI: DeleteExpired for cleanup, the
// rest for Recompute. A usersessions.Provider is one.
type Store interface {
	DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error)
	// Delete removes expired sessions one by one when they are signalled (Deps.Ends).
	Delete(ctx context.Context, keys []usersessions.Key) (int, error)

	Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error
	Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
	Update(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error)
	Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error)
	PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error)
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
}

var _ Store = usersessions.Provider(nil)

// Defaults of Options.
const (
	DefaultInterval  = 15 * time.Minute
	DefaultBatchSize = 1000
	DefaultPause     = 10 * time.Millisecond
)

// Options tune the Cleaner; zero values take the defaults.
type Options struct {
	// Interval between the starts of two passes of Run.
	Interval time.Duration
	// BatchSize is the most user sessions one DeleteExpired call removes, and the page
	// size of Recompute.
	BatchSize int
	// Pause between two batches of a pass (and two pages of a Recompute), so that writes
	// waiting for the store go first. 0 means DefaultPause; negative means none (the
	// goroutine still yields).
	Pause time.Duration
}

// Deps are the Cleaner's dependencies.
type Deps struct {
	Store Store
	Log   hclog.Logger // nil: discard
	// Now is the clock that decides what has expired; nil means time.Now.
	Now func() time.Time
	// Ends, when set, is told of every user session a pass removes for having expired
	// (Shared Signals session-revoked on expiry, an operator's option); Realms names the
	// realms whose sessions are looked at. Nil: expired sessions go silently.
	Ends   session.Ends
	Realms func() []string
}

// Cleaner removes expired sessions and recomputes stored expiries. It is safe for
// concurrent use; passes and recomputes never overlap.
type Cleaner struct {
	store  Store
	log    hclog.Logger
	now    func() time.Time
	opts   Options
	ends   session.Ends
	realms func() []string

	work sync.Mutex // held by a pass or a recompute

	mu      sync.Mutex // guards stats and pending
	stats   Stats
	pending map[string]expiry.Rules // realms whose last Recompute failed
}

// New returns a Cleaner. It fails (spi.ErrInvalid) without a store or with negative options.
func New(d Deps, o Options) (*Cleaner, error) {
	if d.Store == nil {
		return nil, fmt.Errorf("cleanup: no store: %w", spi.ErrInvalid)
	}
	if o.Interval < 0 || o.BatchSize < 0 {
		return nil, fmt.Errorf("cleanup: interval %s and batch size %d must not be negative: %w", o.Interval, o.BatchSize, spi.ErrInvalid)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Pause == 0 {
		o.Pause = DefaultPause
	}
	if d.Ends != nil && d.Realms == nil {
		return nil, fmt.Errorf("cleanup: signalling expired sessions needs the realms: %w", spi.ErrInvalid)
	}
	c := &Cleaner{store: d.Store, log: d.Log, now: d.Now, opts: o, ends: d.Ends, realms: d.Realms, pending: map[string]expiry.Rules{}}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Options returns the options in effect, defaults applied.
func (c *Cleaner) Options() Options { return c.opts }

// Result is what one pass did.
type Result struct {
	// Cutoff is the clock at the start of the pass: sessions whose ExpiresAt is before it
	// were removed.
	Cutoff time.Time
	// Users and Clients are the user and client sessions removed, as the provider counts
	// them (the SPI leaves open whether client sessions removed with their user session
	// count: the memory provider counts them, the SQL providers count only those that
	// expired on their own).
	Users, Clients int
	// Batches is the number of DeleteExpired calls.
	Batches  int
	Duration time.Duration
}

// Stats are the Cleaner's counters since New, for logs and a metrics endpoint.
type Stats struct {
	Passes       int64 // passes run, successful or not
	FailedPasses int64
	Batches      int64 // DeleteExpired calls
	// UsersRemoved and ClientsRemoved are totals, counted as Result counts them.
	UsersRemoved   int64
	ClientsRemoved int64
	// The last pass: its cutoff, how long it took, what it removed and its error ("" when
	// it succeeded).
	LastRun      time.Time
	LastDuration time.Duration
	LastUsers    int
	LastClients  int
	LastError    string
	LastSuccess  time.Time // cutoff of the last pass that succeeded
	// Recompute: realms whose stored expiries were rewritten, the user and client sessions
	// rewritten, and the realms still waiting for a successful recompute (sorted).
	RealmsRecomputed   int64
	SessionsRecomputed int64
	ClientsRecomputed  int64
	PendingRealms      []string
}

// Stats returns a copy of the counters.
func (c *Cleaner) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.PendingRealms = nil
	for name := range c.pending {
		s.PendingRealms = append(s.PendingRealms, name)
	}
	slices.Sort(s.PendingRealms)
	return s
}

// Run makes a pass now and then one every Interval until ctx ends; the caller owns the
// goroutine. A failed pass is logged and the next one comes at the next interval: Run
// never stops on an error. A pass that outlasts the interval is followed at once by the
// next one.
func (c *Cleaner) Run(ctx context.Context) {
	c.log.Info("session cleanup started", "interval", c.opts.Interval, "batch_size", c.opts.BatchSize)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		_, _ = c.Once(ctx) // logged by the pass
		select {
		case <-ctx.Done():
			c.log.Debug("session cleanup stopped")
			return
		case <-t.C:
		}
	}
}

// Once makes one full pass: it first retries the recompute of any realm whose last one
// failed (and removes nothing if one still fails), then calls DeleteExpired with the
// clock's time until a call removes fewer than BatchSize user and client sessions, pausing
// between calls. It returns what was removed, also when it fails part-way.
func (c *Cleaner) Once(ctx context.Context) (Result, error) {
	c.work.Lock()
	defer c.work.Unlock()
	started := time.Now()
	res := Result{Cutoff: c.now().UTC()}
	err := c.retryPending(ctx)
	if err == nil && c.ends != nil {
		// Not fatal to the pass: what could not be signalled (the store or the outbox is
		// down) is still removed, as it would be without the option.
		if serr := c.signalExpired(ctx, res.Cutoff); serr != nil {
			c.log.Warn("expired sessions could not all be signalled; removing them regardless", "error", serr)
		}
	}
	for err == nil {
		var users, clients int
		users, clients, err = c.store.DeleteExpired(ctx, res.Cutoff, c.opts.BatchSize)
		if err != nil {
			err = fmt.Errorf("delete expired sessions: %w", err)
			break
		}
		res.Batches++
		res.Users += users
		res.Clients += clients
		if users < c.opts.BatchSize && clients < c.opts.BatchSize {
			break
		}
		err = c.yield(ctx)
	}
	res.Duration = time.Since(started)
	c.record(res, err)
	c.logPass(ctx, res, err)
	return res, err
}

func (c *Cleaner) record(res Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.stats
	s.Passes++
	s.Batches += int64(res.Batches)
	s.UsersRemoved += int64(res.Users)
	s.ClientsRemoved += int64(res.Clients)
	s.LastRun, s.LastDuration, s.LastUsers, s.LastClients = res.Cutoff, res.Duration, res.Users, res.Clients
	s.LastError = ""
	if err != nil {
		s.FailedPasses++
		s.LastError = err.Error()
	} else {
		s.LastSuccess = res.Cutoff
	}
}

func (c *Cleaner) logPass(ctx context.Context, res Result, err error) {
	args := []any{"users", res.Users, "clients", res.Clients, "batches", res.Batches, "duration", res.Duration}
	switch {
	case err != nil && ctx.Err() != nil:
		c.log.Info("session cleanup pass interrupted", append(args, "reason", ctx.Err())...)
	case err != nil:
		c.log.Error("session cleanup pass failed; retrying at the next interval", append(args, "error", err, "next_in", c.opts.Interval)...)
	case res.Users > 0 || res.Clients > 0:
		c.log.Info("expired sessions removed", args...)
	default:
		c.log.Debug("no expired sessions", args...)
	}
}

// yield lets other work reach the store between two batches.
func (c *Cleaner) yield(ctx context.Context) error {
	if c.opts.Pause < 0 {
		runtime.Gosched()
		return ctx.Err()
	}
	t := time.NewTimer(c.opts.Pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
