package postgres_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// TestMigration00002 takes a schema with sessions stored under the first migration to the
// second: the bucket columns hold the hour of each expiry and the day of each last
// refresh, cleanup and ActiveSince answer what they answered before, a refresh's touch is
// a heap-only (HOT) update, and the migration goes down again.
func TestMigration00002(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	conn, err := sqlx.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	migrations, err := goose.NewProvider(goose.DialectPostgres, conn.DB, os.DirFS("migrations"),
		goose.WithTableName(sqlstore.MigrationTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.UpTo(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	// Under the first migration: s1 expired a minute ago, s2 expires in ten minutes, s3
	// in three hours; s3's client session expired on its own. s1 was last active two days
	// ago, the others now.
	for _, q := range []string{
		`INSERT INTO user_session SELECT 'r', 's' || g, false, g, 'u', '', '', '', '', '', '', false, 'LOGGED_IN',
			$1::timestamptz - interval '3 days', CASE g WHEN 1 THEN $1::timestamptz - interval '2 days' ELSE $1::timestamptz END,
			$1::timestamptz + CASE g WHEN 1 THEN interval '-1 minute' WHEN 2 THEN interval '10 minutes' ELSE interval '3 hours' END,
			'{}', 1 FROM generate_series(1, 3) g`,
		`INSERT INTO client_session SELECT 'r', 's' || g, false, 'c', $1::timestamptz, $1::timestamptz,
			$1::timestamptz + CASE g WHEN 3 THEN interval '-1 second' ELSE interval '10 minutes' END,
			'', '', '', '', '{}', 'tok', 0, '', $1::timestamptz, 1 FROM generate_series(1, 3) g`,
	} {
		if _, err := conn.Exec(q, now); err != nil {
			t.Fatal(err)
		}
	}

	var log bytes.Buffer
	p := postgres.New(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Info}))
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	cfg[postgres.OptURL] = u
	if err := p.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	if !strings.Contains(log.String(), "file=00002_hot_refresh.sql") {
		t.Errorf("no line for migration 00002 in the log:\n%s", log.String())
	}

	var buckets []struct {
		ID      string    `db:"id"`
		Expires time.Time `db:"expires_at"`
		Hour    time.Time `db:"expires_hour"`
		Refresh time.Time `db:"last_refresh"`
		Day     time.Time `db:"refresh_day"`
	}
	if err := conn.Select(&buckets, "SELECT id, expires_at, expires_hour, last_refresh, refresh_day FROM user_session ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		if !b.Hour.Equal(b.Expires.UTC().Truncate(time.Hour)) || !b.Day.Equal(b.Refresh.UTC().Truncate(24*time.Hour)) {
			t.Errorf("%s: expires_at %s in hour %s, last_refresh %s on day %s", b.ID, b.Expires, b.Hour, b.Refresh, b.Day)
		}
	}
	for table, want := range map[string]string{"user_session": "{fillfactor=70}", "client_session": "{fillfactor=70}"} {
		var opts string
		if err := conn.Get(&opts, "SELECT COALESCE(reloptions::text, '') FROM pg_class WHERE oid = $1::regclass", table); err != nil || opts != want {
			t.Errorf("%s reloptions %q (%v), want %s", table, opts, err, want)
		}
	}
	// No index holds a column a refresh rewrites.
	var indexed []string
	if err := conn.Select(&indexed, `SELECT DISTINCT c.relname || '.' || a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE c.relnamespace = $1::regnamespace AND a.attname IN ('last_refresh', 'expires_at')`, schema); err != nil {
		t.Fatal(err)
	}
	if len(indexed) > 0 {
		t.Errorf("indexed clocks: %v", indexed)
	}

	active, err := p.List(t.Context(), usersessions.Filter{RealmID: "r", Offline: usersessions.Both, ActiveSince: now.Add(-time.Hour)}, usersessions.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if ids := sessionIDs(active); ids != "s2 s3" {
		t.Errorf("active in the last hour: %s, want s2 s3", ids)
	}
	users, clients, err := p.DeleteExpired(t.Context(), now, 100)
	if err != nil || users != 1 || clients != 1 {
		t.Errorf("DeleteExpired = %d users, %d clients (%v), want s1 and s3's client session", users, clients, err)
	}
	left, err := p.List(t.Context(), usersessions.Filter{RealmID: "r", Offline: usersessions.Both}, usersessions.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if ids := sessionIDs(left); ids != "s2 s3" {
		t.Errorf("after cleanup: %s, want s2 s3", ids)
	}

	// Touches within the hour rewrite neither bucket: every one is a HOT update.
	key := usersessions.Key{RealmID: "r", ID: "s2"}
	const touches = 20
	for i := range touches {
		at := now.Add(time.Duration(i+1) * time.Microsecond)
		errs, err := p.Touch(t.Context(), []usersessions.Touch{{Session: key, LastRefresh: at, ExpiresAt: buckets[1].Expires.Add(time.Duration(i+1) * time.Microsecond),
			ClientID: "c", ClientExpiresAt: at.Add(10 * time.Minute)}})
		if err := cmpOr(err, errs); err != nil {
			t.Fatal(err)
		}
	}
	// A backend reports its counts at its next idle moment (within a second or so, at
	// most about ten): wait for them rather than guess.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var upd, hot int64
		if err := conn.QueryRow(`SELECT COALESCE(sum(n_tup_upd), 0), COALESCE(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables
			WHERE schemaname = $1 AND relname IN ('user_session', 'client_session')`, schema).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		if upd >= 2*touches {
			if hot != upd {
				t.Errorf("%d of %d updates were HOT, want all", hot, upd)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the statistics show %d updates of %d", upd, 2*touches)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if _, err := migrations.DownTo(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	var def string
	if err := conn.Get(&def, "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'user_session_expires'", schema); err != nil || !strings.Contains(def, "(expires_at)") {
		t.Errorf("after down: user_session_expires is %q (%v)", def, err)
	}
}

func sessionIDs(ss []*usersessions.UserSession) string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return strings.Join(ids, " ")
}

func cmpOr(err error, errs []error) error {
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// TestWarnsWhenAutovacuumIsOff: a table with autovacuum off is named in a warning at
// start (and so is a server with it off).
func TestWarnsWhenAutovacuumIsOff(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	open(t, spi.Config{postgres.OptURL: u})
	if _, err := db.Exec("ALTER TABLE " + schema + ".client_session SET (autovacuum_enabled = false)"); err != nil {
		t.Fatal(err)
	}
	var serverOff bool
	if err := db.Get(&serverOff, "SELECT current_setting('autovacuum') = 'off'"); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p := postgres.New(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Info}))
	if err := p.Configure(t.Context(), spi.Config{postgres.OptURL: u}); err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	want := "autovacuum is off on session tables"
	if serverOff {
		want = "autovacuum is off on the PostgreSQL server"
	}
	if !strings.Contains(log.String(), "[WARN]") || !strings.Contains(log.String(), want) {
		t.Errorf("no warning %q at start:\n%s", want, log.String())
	}
}
