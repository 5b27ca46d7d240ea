package embedded

import (
	"errors"
	"fmt"
	"io/fs"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sessiond/sessiond/spi"
)

// mapError gives a driver error the spi sentinel callers branch on: a duplicate key is
// spi.ErrExists, a client session whose user session went meanwhile spi.ErrNotFound, and a
// file that is locked past busy-timeout, unreadable, unwritable or full spi.ErrUnavailable.
// Other errors are returned as they are.
func mapError(err error) error {
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", spi.ErrExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", spi.ErrNotFound, err)
		}
		switch e.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL:
			return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
	}
	return err
}
