package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
)

var tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs pgbench against database db of the server at rawURL.
type pgbench struct{ *benchproc.Pgbench }

// newPgbench makes database db if it is missing and initialises it (pgbench -i -s 1).
func newPgbench(ctx context.Context, path string, admin *sqlx.DB, rawURL, db string) (*pgbench, error) {
	if err := benchproc.EnsureDatabase(ctx, admin, db); err != nil {
		return nil, fmt.Errorf("the database for pgbench: %w", err)
	}
	p, err := benchproc.NewPgbench(path, rawURL, db)
	if err != nil {
		return nil, err
	}
	if _, err := p.Run(ctx, "-i", "-s", "1", "-q"); err != nil {
		return nil, err
	}
	return &pgbench{p}, nil
}

// tps runs `pgbench -N -c clients -j 2 -T secs` and returns its tps.
func (p *pgbench) tps(ctx context.Context, clients int, d time.Duration) (float64, error) {
	out, err := p.Run(ctx, "-N", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(max(1, int(d.Seconds()))))
	if err != nil {
		return 0, err
	}
	m := tpsRe.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps in pgbench's output:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// ownServer is a throwaway PostgreSQL cluster with the server's default configuration
// (autovacuum on, fsync on, synchronous_commit on), made with postgresql-common's
// pg_createcluster and dropped at the end.
type ownServer struct {
	version, name string
	port          int
}

func newOwnServer(ctx context.Context) (*ownServer, error) {
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		return nil, fmt.Errorf("-own-server needs pg_createcluster (postgresql-common): %w", err)
	}
	entries, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(entries) == 0 {
		return nil, errors.New("-own-server: no PostgreSQL server under /usr/lib/postgresql")
	}
	slices.Sort(entries)
	version := filepath.Base(filepath.Dir(filepath.Dir(entries[len(entries)-1])))
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	p := strconv.Itoa(port)
	s := &ownServer{version: version, name: "sessiond_bench_" + p, port: port}
	// Only what a benchmark needs beyond the defaults: room for pgbench's and sessiond's
	// connections at once.
	if out, err := exec.CommandContext(ctx, "pg_createcluster", version, s.name, "-p", p,
		"-o", "max_connections=200", "--start", "--", "--auth=trust").CombinedOutput(); err != nil {
		s.drop()
		return nil, fmt.Errorf("pg_createcluster: %w\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("pg_isready", "-q", "-h", "127.0.0.1", "-p", p).Run() != nil {
		if time.Now().After(deadline) {
			s.drop()
			return nil, fmt.Errorf("own server on port %s not ready", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, nil
}

func (s *ownServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

func (s *ownServer) drop() {
	exec.Command("pg_dropcluster", "--stop", s.version, s.name).Run() //nolint:errcheck // best effort
}

// tableStats is one session table's size and tuple counts.
type tableStats struct {
	Table    string `db:"relname"`
	Live     int64  `db:"n_live_tup"`
	Dead     int64  `db:"n_dead_tup"`
	Upd      int64  `db:"n_tup_upd"`
	HotUpd   int64  `db:"n_tup_hot_upd"`
	Heap     int64  `db:"heap"`
	Indexes  int64  `db:"indexes"`
	Vacuums  int64  `db:"autovacuums"`
	Analyzes int64  `db:"autoanalyzes"`
}

func stats(ctx context.Context, db *sqlx.DB, schema string) ([]tableStats, error) {
	var out []tableStats
	// The statistics a backend collects reach the shared view at its next idle moment;
	// a second is enough after the load stops.
	err := db.SelectContext(ctx, &out, `SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd,
		pg_relation_size(relid) AS heap, pg_indexes_size(relid) AS indexes,
		autovacuum_count AS autovacuums, autoanalyze_count AS autoanalyzes
		FROM pg_stat_user_tables WHERE schemaname = $1 AND relname IN ('user_session', 'client_session') ORDER BY relname`, schema)
	return out, err
}

func (t tableStats) String() string {
	hot := 0.0
	if t.Upd > 0 {
		hot = 100 * float64(t.HotUpd) / float64(t.Upd)
	}
	return fmt.Sprintf("%-14s live %7d dead %8d  updates %9d HOT %5.1f%%  heap %7s  indexes %7s  autovacuum %d autoanalyze %d",
		t.Table, t.Live, t.Dead, t.Upd, hot, size(t.Heap), size(t.Indexes), t.Vacuums, t.Analyzes)
}

func size(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%dk", b>>10)
}

func quoteList(names ...string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pq.QuoteIdentifier(n)
	}
	return strings.Join(q, ", ")
}

// ensureDatabase creates the database rawURL names if it does not exist, connected to the
// server's postgres database.
func ensureDatabase(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	u.Path = "/postgres"
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	var exists bool
	if err := db.GetContext(ctx, &exists, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name); err != nil {
		return fmt.Errorf("connect %s: %w", u.Redacted(), err)
	}
	if !exists {
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
	}
	return nil
}
