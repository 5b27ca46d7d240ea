package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

var (
	_ usersessions.WriteProber  = (*Provider)(nil)
	_ usersessions.WriteBounder = (*Provider)(nil)
)

// ProbeWrite implements usersessions.WriteProber: one transaction that writes WAL and
// commits as a session write does, without a table of its own. It fails, wrapping
// spi.ErrUnavailable, when the server is a standby (in recovery), when its
// default_transaction_read_only is on (an operator's fence: sessiond's writes begin READ
// WRITE and would pass it, so the fence is kept by refusing writes until a probe finds it
// lifted), or when the commit does not complete within ctx (a synchronous standby gone).
func (p *Provider) ProbeWrite(ctx context.Context) error {
	if p.db == nil {
		return fmt.Errorf("user-sessions store is not configured: %w", spi.ErrUnavailable)
	}
	// The commit is given the store's write bound, and less than the caller's time: the
	// answer must reach a caller across the plugin boundary before its own deadline, with
	// the reason.
	bound := p.writeTimeout
	if d, ok := ctx.Deadline(); ok && (bound <= 0 || time.Until(d)*3/4 < bound) {
		bound = time.Until(d) * 3 / 4
	}
	if bound > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	started := time.Now()
	fenced, err := p.probe(ctx)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("a write did not commit within %v (does the primary wait for a synchronous standby that is gone?): %w",
			time.Since(started).Round(time.Millisecond), spi.ErrUnavailable)
	case err != nil:
		err = mapError(err)
		if readOnly(err) {
			p.recycle()
		}
		return fmt.Errorf("write probe: %w", err)
	}
	if fenced {
		err := fmt.Errorf("the database is read-only (default_transaction_read_only is on): %w", spi.ErrUnavailable)
		p.fence.Store(&fence{err: err, at: time.Now()})
		p.recycle()
		return err
	}
	p.fence.Store(nil)
	return nil
}

// fence is what a probe found: the database fenced read-only, at that time.
type fence struct {
	err error
	at  time.Time
}

// refenceEvery is how often the write path probes again while the database is fenced, so
// that writes resume once the fence is lifted (or the pool has reached another server)
// even when nothing probes readiness.
const refenceEvery = time.Second

// recycle closes the pool's connections (the idle ones now, those in use when they are
// returned) so that the next ones are opened afresh: on a server that cannot write they
// would stay there, while a proxy, a DNS name or a multi-host connection string with
// target_session_attrs=read-write leads new ones to the primary.
func (p *Provider) recycle() {
	p.db.SetMaxIdleConns(0)
	p.db.SetMaxIdleConns(p.maxIdle)
}

// readOnly says whether err is a server's refusal to write: a standby's, or a read-only
// transaction's.
func readOnly(err error) bool {
	e := pq.As(err)
	return e != nil && errors.Is(err, spi.ErrUnavailable) && (e.Code == pqerror.ReadOnlySQLTransaction || e.Code == pqerror.FeatureNotSupported)
}

// probe runs the probe's transaction; fenced says the server defaults to read-only. A
// standby refuses the BEGIN READ WRITE itself.
func (p *Provider) probe(ctx context.Context) (fenced bool, err error) {
	tx, err := p.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
	var inRecovery bool
	if err := tx.QueryRowxContext(ctx, "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')::bool").Scan(&inRecovery, &fenced); err != nil {
		return false, err
	}
	if inRecovery { // BEGIN READ WRITE passed, so this is a race with a demotion
		return false, &pq.Error{Code: pqerror.ReadOnlySQLTransaction, Message: "the database is in recovery (a standby)"}
	}
	if fenced {
		return true, nil
	}
	// A transactional logical-decoding message is WAL that commits with the transaction:
	// its COMMIT waits for synchronous standbys as a session write's does. Any role may
	// emit one, at any wal_level.
	if _, err := tx.ExecContext(ctx, "SELECT pg_logical_emit_message(true, 'sessiond', 'write probe')"); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

// WriteTimeout implements usersessions.WriteBounder: the statement timeout, which the
// store also applies to each write as a whole, its commit included.
func (p *Provider) WriteTimeout(context.Context) (time.Duration, error) { return p.writeTimeout, nil }

// guard refuses writes while the last probe found the database fenced read-only; one
// write a second probes again instead, within its own time.
func (p *Provider) guard(ctx context.Context) error {
	f := p.fence.Load()
	if f == nil {
		return nil
	}
	if time.Since(f.at) >= refenceEvery && p.reprobing.CompareAndSwap(false, true) {
		err := p.ProbeWrite(ctx)
		p.reprobing.Store(false)
		if err == nil {
			return nil
		}
	}
	if f = p.fence.Load(); f != nil {
		return f.err
	}
	return nil
}

// unanswered says whether a failed COMMIT may have been applied: the server did not
// answer (the connection broke), or it went away while the commit waited (a shutdown
// during a wait for a synchronous standby ends the session after the commit is local).
func unanswered(err error) bool {
	if e := pq.As(err); e != nil {
		c := e.Code.Class()
		return c == pqerror.ClassOperatorIntervention || c == pqerror.ClassConnectionException
	}
	return true
}
