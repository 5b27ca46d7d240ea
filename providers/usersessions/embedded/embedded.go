// Package embedded is the user-sessions provider with nothing to install: sessions in one
// SQLite file on local disk, so that offline sessions (and online ones, with persistent
// sessions on) survive a restart of start-dev.
//
// SQLite is modernc.org/sqlite, a translation of SQLite to pure Go: no cgo, no system
// library. The statements are sqlstore's, shared with the PostgreSQL provider; migrations
// use github.com/pressly/goose/v3 with their own embedded SQL files (SQLite's types), for
// the reasons given in the postgres package. The file is in WAL mode, so reads never wait
// for the writer; all writes go through one connection, so concurrent writes queue in Go
// instead of failing with SQLITE_BUSY; every commit is synced to disk (synchronous=FULL),
// so nothing acknowledged is lost to a power cut. One process uses the file: Watch reports
// this provider's own changes.
package embedded

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/sessiond/sessiond/internal/secretfile"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// ID is the provider id of this package.
const ID = "embedded"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptPath        = "path"
	OptBusyTimeout = "busy-timeout"
)

// DefaultPath is where the database file goes when not told: relative to the working
// directory.
const DefaultPath = "data/sessiond.db"

const (
	defaultBusyTimeout = 5 * time.Second
	// watchLimit is how many changes a slow Watch may fall behind before its feed breaks.
	watchLimit = 10000
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Provider is the SQLite user-sessions store. Its storage calls are those of the embedded
// sqlstore.Store, set by Configure.
type Provider struct {
	*sqlstore.Store
	log hclog.Logger
	hub *sqlstore.Hub
}

var _ usersessions.Provider = (*Provider)(nil)

// New returns an unconfigured provider; every storage call fails with spi.ErrUnavailable
// until Configure.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, hub: sqlstore.NewHub(watchLimit)}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.UserSessions,
		ID:      ID,
		Version: Version,
		Help:    "Stores sessions in one SQLite file on local disk, with nothing to install; for one sessiond process.",
		Options: []spi.Option{
			{Name: OptPath, Type: spi.String, Default: DefaultPath,
				Help: "Database file, relative to the working directory unless absolute; its directory is created if missing."},
			{Name: OptBusyTimeout, Type: spi.Duration, Default: defaultBusyTimeout.String(),
				Help: "How long a statement waits for a lock another process holds on the file before failing."},
		},
	}
}

// Configure implements spi.Provider: it opens (or creates) the file and applies the
// migrations it lacks.
func (p *Provider) Configure(ctx context.Context, cfg spi.Config) error {
	if p.Store != nil {
		return fmt.Errorf("embedded provider is already configured: %w", spi.ErrInvalid)
	}
	o := sqlstore.ReadOptions(cfg)
	path := o.String(OptPath, DefaultPath)
	busy := o.Duration(OptBusyTimeout, defaultBusyTimeout)
	if err := o.Err(); err != nil {
		return err
	}
	if strings.ContainsAny(path, "?#") {
		return fmt.Errorf("option %s: %q: a path with ? or # cannot be opened: %w", OptPath, path, spi.ErrInvalid)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("option %s: %w", OptPath, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", path, mapError(err))
	}
	if err := p.private(path); err != nil {
		return fmt.Errorf("opening %s: %w", path, mapError(err))
	}

	params := url.Values{"_pragma": {
		"busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")",
		"foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)",
	}}
	// The writer takes the write lock at BEGIN, so a transaction never has to upgrade a
	// read lock, which SQLite may refuse under contention.
	writer, err := sqlx.Open("sqlite", path+"?"+params.Encode()+"&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, mapError(err))
	}
	writer.SetMaxOpenConns(1)
	files, err := fs.Sub(migrationFiles, "migrations")
	if err == nil {
		err = sqlstore.Migrate(ctx, writer.DB, goose.DialectSQLite3, files, true, p.log.Named("migrate"))
	}
	if err != nil {
		writer.Close()
		return fmt.Errorf("opening %s: %w", path, mapError(err))
	}
	params["_pragma"] = append(params["_pragma"], "query_only(1)")
	reader, err := sqlx.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		writer.Close()
		return fmt.Errorf("opening %s: %w", path, mapError(err))
	}
	reader.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))

	p.Store = sqlstore.New(sqlstore.Config{
		Dialect: sqlstore.SQLite,
		DB:      reader,
		Writer:  writer,
		Feed:    p.hub,
		Origin:  cfg[spi.HostNodeID],
		Errors:  mapError,
	})
	p.log.Info("session store ready", "path", path)
	return nil
}

// sidecars are the files SQLite keeps beside the database: the write-ahead log, its
// shared-memory index, and the rollback journal of a file not (yet) in WAL mode.
var sidecars = []string{"-wal", "-shm", "-journal"}

// private makes the database file and its sidecars sessiond's alone before SQLite opens
// them: they hold the realms' signing keys and users' sessions. A new database file is
// created 0600, whatever its folder or the umask, and SQLite creates its sidecars with the
// database file's mode. A file an older sessiond left readable by group or others is made
// 0600 rather than merely reported: no one but sessiond's user has a use for it that
// justifies handing out the keys, and the log says what was changed.
func (p *Provider) private(path string) error {
	for _, name := range append([]string{""}, sidecars...) {
		flag := os.O_RDONLY
		if name == "" {
			flag |= os.O_CREATE
		}
		f, was, err := secretfile.Open(path+name, flag)
		if name != "" && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		f.Close()
		if was != 0 {
			p.log.Warn("the session store's file was readable by others; it is now readable by sessiond's user alone",
				"path", path+name, "was", was, "now", was&^0o077)
		}
	}
	return nil
}

// Close implements spi.Provider: it ends every Watch and closes the file.
func (p *Provider) Close(context.Context) error {
	p.hub.Close()
	return p.Store.Close()
}

// Watch implements usersessions.Provider: the changes made through this provider, from
// the moment it is called. It returns nil when ctx ends, fn's error, or an error wrapping
// spi.ErrUnavailable when the caller fell too far behind or the provider was closed.
func (p *Provider) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	if p.Store == nil {
		return fmt.Errorf("watch: embedded provider is not configured: %w", spi.ErrUnavailable)
	}
	return p.hub.Watch(ctx, fn)
}
