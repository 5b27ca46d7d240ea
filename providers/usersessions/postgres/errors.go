package postgres

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/sessiond/sessiond/spi"
)

// mapError gives a driver error the spi sentinel callers branch on: a duplicate key is
// spi.ErrExists, a client session whose user session went meanwhile spi.ErrNotFound, and a
// database that cannot be reached or is going away spi.ErrUnavailable (retry later). Other
// errors are returned as they are.
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
		case pqerror.AdminShutdown, pqerror.CrashShutdown, pqerror.CannotConnectNow, pqerror.TooManyConnections,
			pqerror.QueryCanceled, pqerror.TRSerializationFailure, pqerror.TRDeadlockDetected:
			return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
		}
		if e.Code.Class() == pqerror.ClassConnectionException {
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
