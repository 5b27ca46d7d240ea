package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/pressly/goose/v3"

	"github.com/sessiond/sessiond/spi"
)

// MigrationTable is where goose records which migrations a database has had.
const MigrationTable = "sessiond_migrations"

// Migrate brings db up to the newest migration in fsys with goose (github.com/pressly/goose/v3),
// each migration in its own transaction. With apply false it changes nothing and fails,
// wrapping spi.ErrInvalid, unless db already has every migration. opts add to the defaults
// (the table name, no global registry, logging to log), e.g. a session locker.
func Migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, fsys fs.FS, apply bool, log hclog.Logger, opts ...goose.ProviderOption) error {
	p, err := goose.NewProvider(dialect, db, fsys, append([]goose.ProviderOption{
		goose.WithTableName(MigrationTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithVerbose(true),
		goose.WithLogger(gooseLogger{log}),
	}, opts...)...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if !apply {
		return checkMigrated(ctx, db, p)
	}
	applied, err := p.Up(ctx)
	// One line per migration at INFO; goose's own lines, each statement in full, go to
	// DEBUG (gooseLogger): a first start must not fill the log with DDL.
	for _, r := range applied {
		log.Info("schema migration applied", "version", r.Source.Version, "file", filepath.Base(r.Source.Path), "duration", r.Duration.String())
	}
	if err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// checkMigrated reads the version table itself: goose would create it.
func checkMigrated(ctx context.Context, db *sql.DB, p *goose.Provider) error {
	sources := p.ListSources()
	want := sources[len(sources)-1].Version
	var have int64
	err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version_id), 0) FROM "+MigrationTable+" WHERE is_applied").Scan(&have)
	if err != nil || have < want {
		return fmt.Errorf("the database schema is at version %d (%v), this provider needs version %d: "+
			"apply the migrations (start once with migrate=true): %w", have, err, want, spi.ErrInvalid)
	}
	return nil
}

// gooseLogger sends goose's progress lines, which quote every statement, to the provider's
// log at DEBUG; Migrate logs the summary at INFO.
type gooseLogger struct{ log hclog.Logger }

func (l gooseLogger) Printf(format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// Fatalf logs; goose's Provider returns its errors rather than calling it, and a provider
// must never exit the process.
func (l gooseLogger) Fatalf(format string, v ...any) {
	l.log.Error(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
