package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// testErrors maps the server errors of these tests as the postgres provider does: the
// ways of saying "not now" wrap spi.ErrUnavailable.
func testErrors(err error) error {
	if e := pq.As(err); e != nil && (e.Code.Class() == pqerror.ClassOperatorIntervention || e.Code.Class() == pqerror.ClassTransactionRollback) {
		return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
	}
	return err
}

// TestStatementFailureOutcomes: of the ways the one statement of a refresh fails, the
// server's ERROR (its implicit transaction rolled back) is a known failure, whether or not
// the write's time has ended; everything after which the statement may have committed (a
// lost connection, a FATAL, no answer before the time ran out) is of unknown outcome.
func TestStatementFailureOutcomes(t *testing.T) {
	s := New(Config{Dialect: Postgres, Errors: testErrors, Unanswered: func(err error) bool {
		if e := pq.As(err); e != nil {
			return e.Code.Class() == pqerror.ClassOperatorIntervention || e.Code.Class() == pqerror.ClassConnectionException
		}
		return true
	}})
	ended, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		err     error
		unknown bool
		stale   bool
		also    error // another error the result wraps
	}{
		{"cancelled at the write timeout, the server's answer", ended, &pq.Error{Severity: "ERROR", Code: pqerror.QueryCanceled, Message: "canceling statement due to user request"}, false, false, context.DeadlineExceeded},
		{"statement_timeout", context.Background(), &pq.Error{Severity: "ERROR", Code: pqerror.QueryCanceled, Message: "canceling statement due to statement timeout"}, false, false, spi.ErrUnavailable},
		{"deadlock victim", context.Background(), &pq.Error{Severity: "ERROR", Code: pqerror.TRDeadlockDetected}, false, false, spi.ErrUnavailable},
		{"server shutting down", context.Background(), &pq.Error{Severity: "FATAL", Code: pqerror.AdminShutdown}, true, false, nil},
		{"an ERROR in another language", context.Background(), &pq.Error{Severity: "FEHLER", Code: pqerror.QueryCanceled}, true, false, nil},
		{"connection lost", context.Background(), io.ErrUnexpectedEOF, true, false, nil},
		{"dead pooled connection", context.Background(), driver.ErrBadConn, true, true, nil},
		{"no answer before the time ran out", ended, context.DeadlineExceeded, true, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stale, err := s.statementFailed(tc.ctx, "touch", tc.err)
			if got := errors.Is(err, usersessions.ErrOutcomeUnknown); got != tc.unknown {
				t.Errorf("statementFailed(%v) = %v: of unknown outcome %v, want %v", tc.err, err, got, tc.unknown)
			}
			if !errors.Is(err, spi.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("statementFailed(%v) = %v, which is no 503", tc.err, err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Errorf("statementFailed(%v) = %v, want it to wrap %v", tc.err, err, tc.also)
			}
			if stale != tc.stale {
				t.Errorf("statementFailed(%v): stale %v, want %v", tc.err, stale, tc.stale)
			}
		})
	}
}

// TestWriteGivesUpAfterItsAttempts: a write the database rolls back as a deadlock's victim
// at every attempt runs its callback writeAttempts times, then fails as the error maps (here
// spi.ErrUnavailable), of known outcome; one that fails otherwise runs once.
func TestWriteGivesUpAfterItsAttempts(t *testing.T) {
	s := pgStore(t)
	s.errs = testErrors
	s.retryable = func(err error) bool { return pq.As(err, pqerror.TRDeadlockDetected) != nil }
	for _, tc := range []struct {
		name  string
		err   error
		calls int
	}{
		{"deadlock victim every time", &pq.Error{Severity: "ERROR", Code: pqerror.TRDeadlockDetected, Message: "deadlock detected"}, writeAttempts},
		{"refused otherwise", &pq.Error{Severity: "ERROR", Code: pqerror.QueryCanceled}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := s.write(t.Context(), "test write", func(w *writer) error {
				calls++
				if _, err := w.exec(t.Context(), "SELECT 1"); err != nil {
					return err
				}
				return tc.err
			})
			if calls != tc.calls {
				t.Errorf("the write ran %d times, want %d", calls, tc.calls)
			}
			if !errors.Is(err, spi.ErrUnavailable) || errors.Is(err, usersessions.ErrOutcomeUnknown) || !errors.Is(err, tc.err) {
				t.Errorf("write = %v; want %v, wrapping spi.ErrUnavailable, of known outcome", err, tc.err)
			}
		})
	}
	t.Run("within the write's time", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		calls := 0
		err := s.write(ctx, "test write", func(*writer) error {
			calls++
			<-ctx.Done()
			return &pq.Error{Severity: "ERROR", Code: pqerror.TRDeadlockDetected}
		})
		if calls != 1 || err == nil {
			t.Errorf("a write whose time ran out in its first attempt ran %d times and returned %v; want once, an error", calls, err)
		}
	})
}
