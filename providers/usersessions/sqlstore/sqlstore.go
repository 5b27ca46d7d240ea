// Package sqlstore is the SQL both SQL user-sessions providers share: the statements and the
// logic of every storage call, written once for PostgreSQL and SQLite.
//
// A provider opens its database, applies its own migrations (the tables named here, with
// the DDL its dialect needs) and hands the handles to New; it keeps Describe, Configure,
// Close and Watch. What differs between the dialects is a method of Dialect: placeholders
// (statements are written with '?' and rebound with sqlx.Rebind), how a batch of rows
// travels in one statement (unnest over arrays, or json_each over one JSON document), how a
// time is bound, and row locking. Every write is one transaction; its changes reach the
// provider's Feed inside the transaction (PostgreSQL NOTIFY is sent on commit) and after it.
// On PostgreSQL the writes of a refresh (Touch, Rotate) are one statement in its own
// implicit transaction, its notification included (statement.go).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Feed is where a Store announces the changes of each write. A write that is one
// statement (Touch and Rotate on PostgreSQL) announces them in it when the Feed is an
// InlineFeed, and calls only Publish.
type Feed interface {
	// Stage runs inside the writing transaction, before it commits; an error rolls the
	// write back. PostgreSQL's NOTIFY belongs here: it is delivered on commit only.
	Stage(ctx context.Context, tx *sqlx.Tx, changes []usersessions.Change) error
	// Publish runs after the transaction committed.
	Publish(changes []usersessions.Change)
}

// InlineFeed is a Feed whose announcement can be part of a write's one statement:
// PostgreSQL's pg_notify in that statement, delivered when, and only if, it commits.
type InlineFeed interface {
	Feed
	// Inline encodes changes, of which the statement will make some, as Notes.
	Inline(changes []usersessions.Change) (Notes, error)
}

// Notes is how a statement announces the changes it made of those Inline was given: one
// payload per chunk that holds a change made, Head, then the parts of the changes made in
// that chunk in their order, joined by ",", then Tail. A chunk holding all of its parts
// fits a notification, so any of its subsets does.
type Notes struct {
	Channel    string
	Head, Tail string
	Parts      []string // one per change
	Chunks     []int64  // one per change: its payload
}

// Config is what New needs.
type Config struct {
	Dialect Dialect
	// DB serves reads, and writes unless Writer is set.
	DB *sqlx.DB
	// Writer, when set, takes every write: SQLite's one writer connection, so that writes
	// queue in Go instead of failing with SQLITE_BUSY.
	Writer *sqlx.DB
	Feed   Feed
	// Origin is written into every Change (the node id, spi.HostNodeID).
	Origin string
	// Errors maps a driver error to one wrapping the spi sentinel callers branch on
	// (spi.ErrExists, spi.ErrUnavailable, …), or returns it as it is.
	Errors func(error) error
	// Now stamps records and deliveries; time.Now when nil.
	Now func() time.Time
	// WriteTimeout, when above zero, bounds every write from BEGIN to the end of COMMIT,
	// whatever its caller's context: the statement timeout of the database does not cover
	// a commit waiting for a synchronous standby.
	WriteTimeout time.Duration
	// Unanswered says whether a failed commit may have been applied (the connection
	// broke, or the time ran out, before the database answered); such a failure is
	// usersessions.ErrOutcomeUnknown. When nil, only a context that ended is.
	Unanswered func(error) bool
	// WriteGuard, when set, is asked before each write begins; an error (wrapping
	// spi.ErrUnavailable) refuses the write without reaching the database. A provider
	// that has learnt the database is fenced read-only says so here.
	WriteGuard func(ctx context.Context) error
	// Retryable says whether a failed write was rolled back as a whole by the database,
	// nothing of it applied, for a reason that writing it again may not meet: a deadlock
	// whose victim it was, a serialization failure. Such a write is made again, at most
	// writeAttempts times in all within the write timeout, before the error is returned.
	// When nil, no write is made again.
	Retryable func(error) bool
	// Log takes the store's debug messages (a write made again); none when nil.
	Log hclog.Logger
}

// Store implements every method of usersessions.Provider except those of spi.Provider and
// Watch. It is safe for concurrent use. A nil *Store fails every call with
// spi.ErrUnavailable, so a provider that embeds one is safe to call before Configure.
type Store struct {
	d      Dialect
	db, w  *sqlx.DB
	feed   Feed
	origin string
	errs   func(error) error
	now    func() time.Time
	closed atomic.Bool

	writeTimeout time.Duration
	unanswered   func(error) bool
	guard        func(context.Context) error
	retryable    func(error) bool
	log          hclog.Logger
	// oneStatement: Touch and Rotate are one statement each (PostgreSQL, with a feed that
	// can be part of it, or none); inline is that feed.
	oneStatement bool
	inline       InlineFeed
	prepared     statements
	// maxHeld bounds the client sessions a PostgreSQL stream holds (maxHeld, lower in tests).
	maxHeld int
	// splitClients is the least estimate of client sessions read on two connections
	// (splitClients, lower in tests).
	splitClients int
}

// Page sizes when a Page or StreamRequest asks for none, so that one call never reads a
// whole realm.
const defaultPageSize = 100

// New returns a Store over the databases in cfg. It does no I/O.
func New(cfg Config) *Store {
	s := &Store{d: cfg.Dialect, db: cfg.DB, w: cfg.Writer, feed: cfg.Feed, origin: cfg.Origin, errs: cfg.Errors, now: cfg.Now, maxHeld: maxHeld, splitClients: splitClients,
		writeTimeout: cfg.WriteTimeout, unanswered: cfg.Unanswered, guard: cfg.WriteGuard, retryable: cfg.Retryable, log: cfg.Log}
	if s.w == nil {
		s.w = s.db
	}
	if s.errs == nil {
		s.errs = func(err error) error { return err }
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.feed == nil {
		s.feed = noFeed{}
	}
	s.inline, _ = s.feed.(InlineFeed)
	_, none := s.feed.(noFeed)
	s.oneStatement = s.d == Postgres && (s.inline != nil || none)
	if s.unanswered == nil {
		s.unanswered = func(error) bool { return false }
	}
	if s.retryable == nil {
		s.retryable = func(error) bool { return false }
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	return s
}

type noFeed struct{}

func (noFeed) Stage(context.Context, *sqlx.Tx, []usersessions.Change) error { return nil }
func (noFeed) Publish([]usersessions.Change)                                {}

// Close closes the databases; later calls fail with spi.ErrUnavailable.
func (s *Store) Close() error {
	if s == nil || s.closed.Swap(true) {
		return nil
	}
	err := s.db.Close()
	if s.w != s.db {
		err = errors.Join(err, s.w.Close())
	}
	return err
}

var (
	errNotConfigured = fmt.Errorf("user-sessions store is not configured: %w", spi.ErrUnavailable)
	errClosed        = fmt.Errorf("user-sessions store is closed: %w", spi.ErrUnavailable)
)

// usable says why the store cannot take a call, if it cannot.
func (s *Store) usable(ctx context.Context) error {
	switch {
	case s == nil:
		return errNotConfigured
	case s.closed.Load():
		return errClosed
	}
	return ctx.Err()
}

// fail gives a failed call its context and its sentinel. Errors the store made itself
// already wrap a sentinel and keep it.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case errors.Is(err, errClosed) || errors.Is(err, errNotConfigured):
		return err
	case hasSentinel(err):
		return fmt.Errorf("%s: %w", op, err)
	case s.closed.Load() || errors.Is(err, sql.ErrConnDone):
		return fmt.Errorf("%s: %w: %w", op, spi.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, s.errs(err))
}

func hasSentinel(err error) bool {
	for _, s := range []error{spi.ErrNotFound, spi.ErrExists, spi.ErrConflict, spi.ErrUnavailable, spi.ErrInvalid} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// rebind turns the '?' placeholders of q into the dialect's.
func (s *Store) rebind(q string) string { return sqlx.Rebind(s.d.bindType(), q) }

// writer is the transaction of one write, collecting the changes it makes.
type writer struct {
	s       *Store
	tx      *sqlx.Tx
	changes []usersessions.Change
}

func (w *writer) emit(c usersessions.Change) {
	c.Origin = w.s.origin
	w.changes = append(w.changes, c)
}

func (w *writer) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := w.tx.ExecContext(ctx, w.s.rebind(q), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (w *writer) query(ctx context.Context, dest any, q string, args ...any) error {
	return sqlx.SelectContext(ctx, w.tx, dest, w.s.rebind(q), args...)
}

// write runs fn in one transaction, then announces what it changed. A transaction the
// database rolled back for a reason a new attempt may not meet (Config.Retryable: a
// deadlock, a serialization failure) is made again, fn included, up to writeAttempts
// times within the one write timeout; so fn must be safe to run again: it starts from
// what its caller gave it, not from what an earlier attempt left (the writer, with the
// changes to announce, is a new one each time, and nothing is announced before COMMIT).
func (s *Store) write(ctx context.Context, op string, fn func(w *writer) error) error {
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.guard != nil {
		if err := s.guard(ctx); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if s.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.writeTimeout)
		defer cancel()
	}
	for attempt := 1; ; attempt++ {
		rolledBack, err := s.writeOnce(ctx, op, fn)
		if !rolledBack || !s.again(ctx, op, attempt, err) {
			return err
		}
	}
}

// writeItems is write for a batch whose fn records per-item failures in errs: each
// attempt starts from errs as given (the items' validation), so that a failure recorded
// by an attempt the database rolled back is not reported for an item written by the next.
func (s *Store) writeItems(ctx context.Context, op string, errs []error, fn func(w *writer) error) error {
	given := slices.Clone(errs)
	return s.write(ctx, op, func(w *writer) error {
		copy(errs, given)
		return fn(w)
	})
}

// writeAttempts bounds the attempts of a write the database rolled back (Config.Retryable):
// a deadlock between two writers is over after one attempt, as its victim's locks are gone;
// one met again and again is a pattern that waiting a few milliseconds does not break.
const writeAttempts = 3

// again says whether a write whose attempt-th attempt the database rolled back with err
// (Config.Retryable) is made once more, after a short wait of its own: the attempts left
// and the write's time allow it. The wait is random so that the writers that deadlocked
// do not meet again in step.
func (s *Store) again(ctx context.Context, op string, attempt int, err error) bool {
	if attempt >= writeAttempts || ctx.Err() != nil {
		return false
	}
	wait := time.Duration(attempt) * (time.Millisecond + rand.N(4*time.Millisecond))
	if d, ok := ctx.Deadline(); ok && time.Until(d) < 2*wait {
		return false
	}
	s.log.Debug("writing again: the database rolled the write back", "op", op, "attempt", attempt+1, "wait", wait, "error", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// writeOnce is one attempt of write, under its time; rolledBack says that it failed as
// Config.Retryable says, so that nothing of it was applied.
func (s *Store) writeOnce(ctx context.Context, op string, fn func(w *writer) error) (rolledBack bool, err error) {
	// A failure is retried only when the database answered it (ctx has not ended: an
	// answer cut short by the time is no answer) and it says the transaction is gone.
	retry := func(err error) (bool, error) { return ctx.Err() == nil && s.retryable(err), s.fail(ctx, op, err) }
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return false, s.fail(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
	w := &writer{s: s, tx: tx}
	if err := fn(w); err != nil {
		return retry(err)
	}
	if len(w.changes) > 0 {
		if err := s.feed.Stage(ctx, tx, w.changes); err != nil {
			return retry(err)
		}
	}
	if err := ctx.Err(); err != nil { // nothing committed: COMMIT is not sent
		return false, s.fail(ctx, op, err)
	}
	if err := tx.Commit(); err != nil {
		if ctx.Err() != nil || s.unanswered(err) {
			// The COMMIT went out; whether it was applied, only the database knows.
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return false, fmt.Errorf("%s: %w: %w", op, usersessions.ErrOutcomeUnknown, err)
		}
		// An answer to COMMIT that refuses it (a serialization failure found at commit)
		// rolled the transaction back.
		return retry(err)
	}
	if len(w.changes) > 0 {
		s.feed.Publish(w.changes)
	}
	if err := ctx.Err(); err != nil {
		// The time ran out while the commit waited and the driver cancelled the wait:
		// PostgreSQL then reports a commit that is local but not confirmed by its
		// synchronous standbys, which a failover can lose. Not acknowledged as done.
		return false, fmt.Errorf("%s: %w: %w while the commit waited (it is applied locally, its replication unconfirmed)", op, usersessions.ErrOutcomeUnknown, err)
	}
	return false, nil
}

// read runs fn against one snapshot of the database.
func (s *Store) read(ctx context.Context, op string, fn func(q sqlx.QueryerContext) error) error {
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tx, err := s.db.BeginTxx(ctx, s.d.readTx())
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	if err := fn(tx); err != nil {
		return s.fail(ctx, op, err)
	}
	return s.fail(ctx, op, tx.Commit())
}

// query runs one reading statement outside a transaction.
func (s *Store) query(ctx context.Context, op string, dest any, q string, args ...any) error {
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.fail(ctx, op, sqlx.SelectContext(ctx, s.db, dest, s.rebind(q), args...))
}
