package postgres

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/sessiond/sessiond/spi"
)

// TestServerRefusalsMapToTheirSentinel: what PostgreSQL says during a failover (a standby
// refusing a write, a fenced primary, a server shutting down) is "not now", never a plain
// error that would reach the caller as a 500.
func TestServerRefusalsMapToTheirSentinel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    pqerror.Code
		message string
		want    error // nil: no sentinel
	}{
		{"hot standby refusing BEGIN READ WRITE", pqerror.FeatureNotSupported, "cannot set transaction read-write mode during recovery", spi.ErrUnavailable},
		{"write in a read-only transaction", pqerror.ReadOnlySQLTransaction, "cannot execute INSERT in a read-only transaction", spi.ErrUnavailable},
		{"LISTEN on a standby", pqerror.ReadOnlySQLTransaction, "cannot execute LISTEN during recovery", spi.ErrUnavailable},
		{"server starting up or in recovery", pqerror.CannotConnectNow, "the database system is starting up", spi.ErrUnavailable},
		{"administrator shutdown", pqerror.AdminShutdown, "terminating connection due to administrator command", spi.ErrUnavailable},
		{"crash shutdown", pqerror.CrashShutdown, "terminating connection because of crash of another server process", spi.ErrUnavailable},
		{"database dropped", pqerror.Code("57P04"), "terminating connection because the database was dropped", spi.ErrUnavailable},
		{"statement timeout", pqerror.QueryCanceled, "canceling statement due to statement timeout", spi.ErrUnavailable},
		{"conflict with recovery", pqerror.TRSerializationFailure, "canceling statement due to conflict with recovery", spi.ErrUnavailable},
		{"connection failure", pqerror.ConnectionFailure, "connection failure", spi.ErrUnavailable},
		{"too many connections", pqerror.TooManyConnections, "sorry, too many clients already", spi.ErrUnavailable},
		{"deadlock victim", pqerror.TRDeadlockDetected, "deadlock detected", spi.ErrUnavailable},
		{"prepared statement gone (a pooler in transaction mode)", pqerror.InvalidSQLStatementName, `prepared statement "1" does not exist`, spi.ErrUnavailable},
		{"duplicate key", pqerror.UniqueViolation, "duplicate key value violates unique constraint", spi.ErrExists},
		{"parent gone", pqerror.ForeignKeyViolation, "violates foreign key constraint", spi.ErrNotFound},
		{"another unsupported feature", pqerror.FeatureNotSupported, "cannot do that", nil},
		{"syntax error", pqerror.SyntaxError, "syntax error at or near", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &pq.Error{Code: tc.code, Message: tc.message}
			got := mapError(in)
			if !errors.Is(got, in) {
				t.Errorf("mapError(%s) = %v, which no longer wraps the server's error", tc.code, got)
			}
			for _, s := range []error{spi.ErrUnavailable, spi.ErrExists, spi.ErrNotFound, spi.ErrInvalid, spi.ErrConflict} {
				if is := errors.Is(got, s); is != (s == tc.want) {
					t.Errorf("mapError(%s %q): errors.Is(%v) = %v, want %v", tc.code, tc.message, s, is, s == tc.want)
				}
			}
		})
	}
}

// TestRolledBackIsWhatAnotherAttemptMayNotMeet: the errors the store writes again are
// those with which PostgreSQL rolled the whole transaction back for a reason of the moment,
// and no others (a constraint, a cancel, a lost connection).
func TestRolledBackIsWhatAnotherAttemptMayNotMeet(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pq.Error{Severity: "ERROR", Code: pqerror.TRDeadlockDetected}, true},
		{fmt.Errorf("touch: %w", &pq.Error{Severity: "ERROR", Code: pqerror.TRSerializationFailure}), true},
		{&pq.Error{Severity: "ERROR", Code: pqerror.UniqueViolation}, false},
		{&pq.Error{Severity: "ERROR", Code: pqerror.QueryCanceled}, false},
		{&pq.Error{Severity: "FATAL", Code: pqerror.AdminShutdown}, false},
		{io.ErrUnexpectedEOF, false},
	} {
		if got := rolledBack(tc.err); got != tc.want {
			t.Errorf("rolledBack(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
