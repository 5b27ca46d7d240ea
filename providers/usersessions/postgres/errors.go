package postgres

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/sessiond/sessiond/spi"
)

// mapError gives a driver error the spi sentinel callers branch on: a duplicate key is
// spi.ErrExists, a client session whose user session went meanwhile spi.ErrNotFound, and a
// database that cannot be reached, is going away or cannot write now spi.ErrUnavailable
// (retry later). Other errors are returned as they are.
//
// A database that cannot write is one side of a failover: a hot standby, or a primary an
// operator has made read-only to fence it. Its refusals are "not now", like an unreachable
// server's, since writes succeed again once the proxy, the DNS name or the multi-host
// connection string leads to the new primary.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if e := pq.As(err); e != nil {
		switch e.Code {
		case pqerror.UniqueViolation:
			return fmt.Errorf("%w: %w", spi.ErrExists, err)
		case pqerror.ForeignKeyViolation:
			return fmt.Errorf("%w: %w", spi.ErrNotFound, err)
		// The server's ways of saying "not now": shutting down or restarting, out of
		// connections, a statement cancelled past statement-timeout, a transaction that
		// lost a serialization race.
		case pqerror.TooManyConnections, pqerror.TRSerializationFailure, pqerror.TRDeadlockDetected,
			// A write in a read-only transaction: a standby, or a primary whose
			// default_transaction_read_only is on (a fence).
			pqerror.ReadOnlySQLTransaction,
			// A prepared statement the server does not have, even prepared again just
			// before: a pooler in transaction mode, which sessiond does not support
			// (docs/operator-guide.md), sends the statement to a server connection it was
			// not prepared on.
			pqerror.InvalidSQLStatementName:
			return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
		case pqerror.FeatureNotSupported:
			// A hot standby refuses BEGIN READ WRITE with this generic code ("cannot set
			// transaction read-write mode during recovery"); only its text says why.
			if strings.Contains(e.Message, "during recovery") {
				return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
			}
		}
		switch e.Code.Class() {
		case pqerror.ClassConnectionException,
			// Operator intervention: shutting down or restarting (57P01-57P03), the database
			// dropped under us, a statement cancelled past statement-timeout (57014).
			pqerror.ClassOperatorIntervention:
			return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &netErr) {
		return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
	}
	return err
}

// rolledBack says whether err is the server rolling a whole transaction back for a reason
// that writing it again may not meet: it chose the transaction as a deadlock's victim
// (deadlock_detected), or it lost a serialization race (serialization_failure). Nothing of
// the transaction was applied, so the store writes it again (sqlstore.Config.Retryable).
func rolledBack(err error) bool {
	return pq.As(err, pqerror.TRDeadlockDetected, pqerror.TRSerializationFailure) != nil
}
