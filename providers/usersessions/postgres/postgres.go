// Package postgres is the production user-sessions provider: sessions in PostgreSQL through
// jmoiron/sqlx and lib/pq, shared by every sessiond node on the database.
//
// The statements are sqlstore's. This package opens the pool, applies the schema and
// carries the change feed: every write NOTIFYs a channel named after the schema inside its
// transaction (a refresh's write, one statement, inside that statement), and Watch LISTENs
// on it, so each node sees every node's changes (its own included) within milliseconds of
// their commit.
//
// Migrations use github.com/pressly/goose/v3, with the SQL files embedded (embed.FS): plain
// versioned SQL that an operator can read and apply by hand with the goose CLI, a Provider
// API without global state, per-migration transactions, and a pluggable session lock — here
// an advisory lock keyed by the schema, so that nodes starting together migrate once while
// other schemas on the server are not held up. golang-migrate would do as well; goose's
// Provider API fits a library that must not touch package-level state.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the "postgres" database/sql driver
	"github.com/pressly/goose/v3"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// ID is the provider id of this package.
const ID = "postgres"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptURL              = "url"
	OptMaxOpenConns     = "max-open-conns"
	OptMaxIdleConns     = "max-idle-conns"
	OptConnMaxLifetime  = "conn-max-lifetime"
	OptStatementTimeout = "statement-timeout"
	OptMigrate          = "migrate"
)

// DefaultURL is where the provider looks for PostgreSQL when not told.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/sessiond?sslmode=disable"

const (
	defaultMaxOpen          = 16
	defaultMaxIdle          = 8
	defaultConnMaxLifetime  = 30 * time.Minute
	defaultStatementTimeout = 5 * time.Second
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Provider is the PostgreSQL user-sessions store. Its storage calls are those of the
// embedded sqlstore.Store, set by Configure.
type Provider struct {
	*sqlstore.Store
	log hclog.Logger

	dsn          string        // the connection string, with the parameters Configure adds
	channel      string        // LISTEN/NOTIFY channel of the change feed
	done         chan struct{} // closed by Close: ends every Watch
	closeOnce    sync.Once
	db           *sqlx.DB      // the pool, for ProbeWrite
	writeTimeout time.Duration // statement-timeout; bounds each write, its commit included
	maxIdle      int           // the pool's idle connections, restored after a recycle
	// fence is the refusal of every write while the last ProbeWrite found the database
	// read-only by default (an operator's fence); nil when it did not. reprobing is set
	// while a write probes again.
	fence     atomic.Pointer[fence]
	reprobing atomic.Bool
}

var _ usersessions.Provider = (*Provider)(nil)

// New returns an unconfigured provider; every storage call fails with spi.ErrUnavailable
// until Configure.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, done: make(chan struct{})}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.UserSessions,
		ID:      ID,
		Version: Version,
		Help:    "Stores sessions in PostgreSQL; every sessiond node on the same database serves the same sessions.",
		Options: []spi.Option{
			{Name: OptURL, Type: spi.String, Default: DefaultURL, Secret: true,
				Help: "PostgreSQL connection URL (or key=value string); it may hold a password. Parameters such as search_path and application_name pass through. Several servers may be named, postgres://user@h1:5432,h2:5432/db?target_session_attrs=read-write or host=h1,h2 port=5432,5432 target_session_attrs=read-write: each new connection tries them in order and keeps the first that fits."},
			{Name: OptMaxOpenConns, Type: spi.Int, Default: strconv.Itoa(defaultMaxOpen),
				Help: "Most connections the pool opens to PostgreSQL."},
			{Name: OptMaxIdleConns, Type: spi.Int, Default: strconv.Itoa(defaultMaxIdle),
				Help: "Most idle connections the pool keeps open (at most max-open-conns)."},
			{Name: OptConnMaxLifetime, Type: spi.Duration, Default: defaultConnMaxLifetime.String(),
				Help: "How long a connection is reused before it is replaced; 0 means forever."},
			{Name: OptStatementTimeout, Type: spi.Duration, Default: defaultStatementTimeout.String(),
				Help: "Longest a statement may run before PostgreSQL cancels it, and longest a write may take as a whole, its commit included (a commit waiting for a synchronous standby ends then, reported as of unknown outcome); 0 means no limit. A stream of sessions (a preload, a recompute of stored expiries) is read as its caller takes it and is bounded by the caller instead."},
			{Name: OptMigrate, Type: spi.Bool, Default: "true",
				Help: "Apply pending schema migrations at start; when false, refuse to start on a schema that lacks them."},
		},
	}
}

// Configure implements spi.Provider: it connects, applies or checks the migrations and
// readies the store. It fails wrapping spi.ErrUnavailable when PostgreSQL cannot be
// reached, and spi.ErrInvalid for a bad option.
func (p *Provider) Configure(ctx context.Context, cfg spi.Config) error {
	if p.Store != nil {
		return fmt.Errorf("postgres provider is already configured: %w", spi.ErrInvalid)
	}
	o := sqlstore.ReadOptions(cfg)
	rawURL := o.String(OptURL, DefaultURL)
	maxOpen := o.Int(OptMaxOpenConns, defaultMaxOpen, 1)
	maxIdle := o.Int(OptMaxIdleConns, defaultMaxIdle, 0)
	lifetime := o.Duration(OptConnMaxLifetime, defaultConnMaxLifetime)
	timeout := o.Duration(OptStatementTimeout, defaultStatementTimeout)
	migrate := o.Bool(OptMigrate, true)
	if err := o.Err(); err != nil {
		return err
	}
	dsn, err := connString(rawURL, timeout)
	if err != nil {
		return err
	}
	where := redact.ConnString(rawURL)
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", where, mapError(err))
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(min(maxIdle, maxOpen))
	db.SetConnMaxLifetime(lifetime)

	schema, err := p.prepare(ctx, db, migrate)
	if err != nil {
		db.Close()
		return fmt.Errorf("postgres %s: %w", where, err)
	}
	p.dsn, p.channel, p.db, p.writeTimeout, p.maxIdle = dsn, channelName(schema), db, timeout, min(maxIdle, maxOpen)
	p.Store = sqlstore.New(sqlstore.Config{
		Dialect:      sqlstore.Postgres,
		DB:           db,
		Feed:         notifier{channel: p.channel},
		Origin:       cfg[spi.HostNodeID],
		Errors:       mapError,
		WriteTimeout: timeout,
		Unanswered:   unanswered,
		WriteGuard:   p.guard,
		Retryable:    rolledBack,
		Log:          p.log.Named("store"),
	})
	p.log.Info("session store ready", "url", where, "schema", schema, "max_open_conns", maxOpen, "change_feed", p.channel)
	return nil
}

// prepare finds the schema the connection works in and brings it up to date.
func (p *Provider) prepare(ctx context.Context, db *sqlx.DB, migrate bool) (string, error) {
	var schema sql.NullString
	if err := db.GetContext(ctx, &schema, "SELECT current_schema()"); err != nil {
		return "", fmt.Errorf("connecting: %w", mapError(err))
	}
	if !schema.Valid {
		return "", fmt.Errorf("search_path names no schema that exists: %w", spi.ErrInvalid)
	}
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return "", err
	}
	err = sqlstore.Migrate(ctx, db.DB, goose.DialectPostgres, files, migrate, p.log.Named("migrate"),
		goose.WithSessionLocker(schemaLock{id: lockID(schema.String)}))
	if err != nil {
		return "", mapError(err)
	}
	p.warnVacuum(ctx, db)
	return schema.String, nil
}

// warnVacuum logs a warning when autovacuum will not clean the session tables: off on the
// server, statistics not tracked (autovacuum then never starts), or off on a table. A
// refresh is a heap-only update whose old row versions the next visit to the page prunes,
// but deleted sessions, the rare updates that move an index bucket and the index entries
// of both leave dead rows that only VACUUM reclaims; and without ANALYZE the planner may
// read the batch statements through the wrong index.
func (p *Provider) warnVacuum(ctx context.Context, db *sqlx.DB) {
	var off struct {
		Server     bool           `db:"server"`
		TrackCount bool           `db:"track_counts"`
		Tables     sql.NullString `db:"tables"`
	}
	err := db.GetContext(ctx, &off, `SELECT current_setting('autovacuum') = 'off' AS server, current_setting('track_counts') = 'on' AS track_counts,
		(SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
			WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ('user_session', 'client_session')
			AND 'autovacuum_enabled=false' = ANY (c.reloptions)) AS tables`)
	switch {
	case err != nil:
		p.log.Debug("could not read the autovacuum settings", "error", err)
	case off.Server:
		p.log.Warn("autovacuum is off on the PostgreSQL server: deleted and expired sessions leave dead rows that nothing reclaims; turn it on (autovacuum = on) or run VACUUM ANALYZE user_session, client_session regularly")
	case !off.TrackCount:
		p.log.Warn("track_counts is off on the PostgreSQL server, so autovacuum never runs: deleted and expired sessions leave dead rows that nothing reclaims; turn it on or run VACUUM ANALYZE user_session, client_session regularly")
	case off.Tables.Valid:
		p.log.Warn("autovacuum is off on session tables (autovacuum_enabled = false): their dead rows are reclaimed only by a manual VACUUM; reset it (ALTER TABLE … RESET (autovacuum_enabled)) or run VACUUM ANALYZE regularly", "tables", off.Tables.String)
	}
}

// Close implements spi.Provider: it ends every Watch and closes the pool.
func (p *Provider) Close(context.Context) error {
	p.closeOnce.Do(func() { close(p.done) })
	return p.Store.Close()
}

// connString adds to the operator's URL what the provider relies on, unless it is set
// already: the statement timeout, UTC for times PostgreSQL renders, a connect timeout so
// an unreachable host fails in seconds, an application name operators see in
// pg_stat_activity, and one round trip per statement.
func connString(raw string, timeout time.Duration) (string, error) {
	add := [][2]string{
		{"statement_timeout", strconv.FormatInt(timeout.Milliseconds(), 10)},
		{"timezone", "UTC"},
		{"connect_timeout", "10"},
		{"fallback_application_name", "sessiond"},
		// lib/pq sends a statement with arguments in one round trip (Parse, Bind, Execute)
		// instead of two (Parse and Describe, then Bind and Execute); []byte arguments then
		// travel in binary, which is what the bytea columns they fill take.
		{"binary_parameters", "yes"},
	}
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		// key=value form: a later key would override the operator's, so add only missing ones.
		for _, kv := range add {
			if !strings.Contains(raw, kv[0]+"=") {
				raw += " " + kv[0] + "=" + kv[1]
			}
		}
		return raw, nil
	}
	raw, err := splitHosts(raw)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("option %s: %s: %w", OptURL, redactError(err, raw), spi.ErrInvalid)
	}
	q := u.Query()
	for _, kv := range add {
		if !q.Has(kv[0]) {
			q.Set(kv[0], kv[1])
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// redactError is err's text without the URL in it, which may hold a password. A
// *url.Error quotes the URL, so it is rebuilt rather than searched.
func redactError(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + redact.ConnString(ue.URL) + ": " + ue.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), raw, redact.ConnString(raw))
}

// channelName is the NOTIFY channel of the store in schema: nodes on one schema share a
// feed; stores in other schemas of the same database do not hear it.
func channelName(schema string) string {
	name := "sessiond:" + schema
	if len(name) > 63 { // NAMEDATALEN-1
		h := fnv.New64a()
		h.Write([]byte(schema))
		name = fmt.Sprintf("sessiond:%x", h.Sum64())
	}
	return name
}

// lockID is the advisory lock that serializes migrations of schema.
func lockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("sessiond migrations " + schema))
	return int64(h.Sum64())
}

// schemaLock is a goose session locker holding a PostgreSQL advisory lock while goose
// migrates. It waits in pg_advisory_lock (cancelled with ctx) rather than polling.
type schemaLock struct{ id int64 }

func (l schemaLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id)
	return err
}

func (l schemaLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", l.id)
	return err
}
