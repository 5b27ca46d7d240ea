// Command storewrites measures, in one run against one PostgreSQL, how many session
// creates and refreshes per second sessiond's PostgreSQL provider acknowledges with 64
// concurrent callers:
//
//   - through the provider running as a real plugin process (started by plugins/host,
//     checksum verified) behind a core/groupcommit Writer, as sessiond runs it;
//   - through the same plugin with one store call, i.e. one transaction, per write;
//   - with equivalent SQL issued straight from Go with sqlx, one transaction per write
//     (with and without the pg_notify the provider adds to every write);
//   - and, for the server's own figure, `pgbench -N` with as many clients.
//
// synchronous_commit stays on: every write is acknowledged only once its commit is
// flushed. At the end every acknowledged create and refresh is looked up in the
// database; the command exits non-zero if one is missing.
//
//	go run ./bench/storewrites            # see -h; README.md has results
package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

type config struct {
	url         string
	sessiond    string
	callers     int
	dur         time.Duration
	keep        bool
	pluginConns int
	sqlxConns   int
	maxBatch    int
	read        bool
	pgbench     string
	pgbenchDB   string
	pgbenchJobs int
	skipPgbench bool
	sample      int
	checkpoint  bool
	analyze     bool
	warmup      time.Duration
	variants    string
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", testpg.URL(), "PostgreSQL URL; a fresh schema is created in its database for the run")
	flag.StringVar(&c.sessiond, "sessiond", "", "sessiond binary to run as the plugin (default: go build ./cmd/sessiond into a temporary directory)")
	flag.IntVar(&c.callers, "c", 64, "concurrent callers (goroutines; also pgbench clients)")
	flag.DurationVar(&c.dur, "d", 10*time.Second, "duration of each measured phase")
	flag.BoolVar(&c.keep, "keep", false, "keep the run's schema instead of dropping it at the end")
	flag.IntVar(&c.pluginConns, "plugin-conns", 0, "the plugin's max-open-conns (default: -c, so that one transaction per write is not held back by the pool)")
	flag.IntVar(&c.sqlxConns, "sqlx-conns", 0, "max open conns of the sqlx baseline's *sqlx.DB (default: -c)")
	flag.IntVar(&c.maxBatch, "max-batch", groupcommit.DefaultMaxBatch, "groupcommit.Options.MaxBatch")
	flag.BoolVar(&c.read, "read", false, "read the session before each refresh (provider Get / SELECT), as a refresh that misses the cache does; off: the version read is the one the caller last wrote (each caller owns its sessions)")
	flag.StringVar(&c.pgbench, "pgbench", "", "pgbench executable (default: pgbench on PATH, then /usr/lib/postgresql/*/bin/pgbench)")
	flag.StringVar(&c.pgbenchDB, "pgbench-db", "sessiond_bench", "database pgbench is initialised in (created if missing, re-initialised with pgbench -i -s 1 every run)")
	flag.IntVar(&c.pgbenchJobs, "pgbench-j", 2, "pgbench -j (threads)")
	flag.BoolVar(&c.skipPgbench, "skip-pgbench", false, "do not run pgbench")
	flag.IntVar(&c.sample, "sample", 0, "durability check: check the last acknowledged refresh of this many sessions per variant (0: all)")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "before each plugin variant, this long of concurrent reads to open the plugin's connections")
	flag.BoolVar(&c.analyze, "analyze", true, "ANALYZE the session tables before each measured phase, as autovacuum keeps them analyzed on a server in steady state")
	flag.BoolVar(&c.checkpoint, "checkpoint", true, "CHECKPOINT before each measured phase, so that no phase pays for another's dirty pages")
	flag.StringVar(&c.variants, "variants", "plugin,sqlx,sqlx-notify,groupcommit", "variants to run, comma separated: plugin (the plugin, one transaction per write), sqlx, sqlx-notify, groupcommit, groupcommit-apart (a refresh as PutClientSessions and Touch at once), groupcommit-rotate (as one Rotate)")
	flag.Parse()
	if c.pluginConns <= 0 {
		c.pluginConns = c.callers
	}
	if c.sqlxConns <= 0 {
		c.sqlxConns = c.callers
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, c)
	stop()
	os.Exit(code)
}

// result is one measured phase of one variant.
type result struct {
	phase, variant string
	ops            int64
	elapsed        time.Duration
	errors         int64
	firstErr       error
	perBatch       float64 // group commit: items per store call; 0 otherwise
	op             dist    // each operation as its caller sees it
	calls          dist    // store calls (plugin variants) or transactions (sqlx)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// Variant names.
const (
	vGroup      = "plugin + groupcommit"
	vGroupApart = "plugin + groupcommit, put ‖ touch"
	vGroupRot   = "plugin + groupcommit, Rotate"
	vPluginTx   = "plugin, 1 tx/write"
	vSqlx       = "sqlx, 1 tx/write"
	vSqlxNotify = "sqlx+pg_notify, 1 tx/write"
	vPgbench    = "pgbench -N"
)

func run(ctx context.Context, c config) int {
	start := time.Now()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "storewrites: "+format+"\n", a...)
		return 1
	}

	wanted := strings.Split(c.variants, ",")
	for _, k := range wanted {
		if !slices.Contains([]string{"plugin", "sqlx", "sqlx-notify", "groupcommit", "groupcommit-apart", "groupcommit-rotate"}, k) {
			return fail("-variants: %q is none of plugin, sqlx, sqlx-notify, groupcommit, groupcommit-apart, groupcommit-rotate", k)
		}
	}

	// pgbench first: should it be missing, say so before spending two minutes.
	var pgbenchPath string
	if !c.skipPgbench {
		var err error
		if pgbenchPath, err = benchproc.FindPgbench(c.pgbench); err != nil {
			return fail("%v", err)
		}
	}

	admin, err := sqlx.Open("postgres", c.url)
	if err != nil {
		return fail("open %s: %v", redact.ConnString(c.url), err)
	}
	defer admin.Close()
	admin.SetMaxOpenConns(2)
	if err := admin.PingContext(ctx); err != nil {
		return fail("cannot reach PostgreSQL at %s: %v", redact.ConnString(c.url), err)
	}
	schema := fmt.Sprintf("storewrites_%d", time.Now().Unix())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return fail("create schema %s: %v", schema, err)
	}
	defer func() {
		if c.keep {
			fmt.Printf("\nschema %s kept (-keep)\n", schema)
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.ExecContext(dctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "storewrites: drop schema %s: %v\n", schema, err)
		}
	}()
	schemaURL, err := withParam(c.url, "search_path", schema)
	if err != nil {
		return fail("%v", err)
	}

	// The sessiond binary, as the plugin host runs built-in providers.
	bin := c.sessiond
	if bin == "" {
		dir, err := os.MkdirTemp("", "storewrites-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(dir)
		fmt.Print("building sessiond... ")
		if bin, err = buildSessiond(ctx, dir); err != nil {
			return fail("%v", err)
		}
		fmt.Println(bin)
	}
	sum, err := host.FileSHA256(bin)
	if err != nil {
		return fail("checksum of %s: %v", bin, err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "storewrites", Level: hclog.Warn, Output: os.Stderr})
	h := host.New(log, host.Options{})
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Stop(sctx); err != nil {
			fmt.Fprintf(os.Stderr, "storewrites: stopping the plugin: %v\n", err)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	plug, err := h.Start(sctx, host.Spec{
		SPI: spi.UserSessions, ID: "postgres",
		Command: bin, Args: []string{"plugin", "serve", spi.UserSessions, "postgres"},
		SHA256: sum,
	})
	if err != nil {
		return fail("starting the postgres plugin: %v", err)
	}
	cfg := spi.Config{}
	for _, o := range plug.Descriptor().Options {
		cfg[o.Name] = o.Default
	}
	cfg["url"] = schemaURL
	// As many idle connections as open ones: with the default (8), 64 callers writing one
	// transaction each would have the pool close and reopen connections all the time.
	cfg["max-open-conns"] = fmt.Sprint(c.pluginConns)
	cfg["max-idle-conns"] = fmt.Sprint(c.pluginConns)
	cfg[spi.HostNodeID] = "storewrites"
	if err := plug.Configure(sctx, cfg); err != nil {
		return fail("configuring the postgres plugin: %v", err)
	}
	provider, ok := plug.Provider().(usersessions.Provider)
	if !ok {
		return fail("the plugin's provider is a %T, not a usersessions.Provider", plug.Provider())
	}

	// Durability: what a connection with the plugin's URL gets.
	dur, err := durability(ctx, schemaURL)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Printf("PostgreSQL %s; schema %s; %d callers; %s per phase; sessiond %s (sha256 %s…, verified by plugins/host); plugin pool %d conns, sqlx pool %d conns\n",
		dur.version, schema, c.callers, c.dur, bin, sum[:12], c.pluginConns, c.sqlxConns)
	fmt.Printf("durability: synchronous_commit=%s fsync=%s wal_sync_method=%s commit_delay=%s on the plugin's connection: a write is acknowledged only after its commit record is flushed\n",
		dur.syncCommit, dur.fsync, dur.walSync, dur.commitDelay)
	if dur.syncCommit != "on" && dur.syncCommit != "remote_apply" && dur.syncCommit != "remote_write" || dur.fsync != "on" {
		return fail("synchronous_commit=%s fsync=%s: acknowledged writes would not be durable; refusing to measure", dur.syncCommit, dur.fsync)
	}

	b := &bench{c: c, admin: admin, schema: schema}
	fmt.Printf("load average at start: %s\n", benchproc.LoadAvg())

	// pgbench first, while the plugin's pool and the baseline's hold no connections: it
	// needs c.callers of its own.
	var pg *pgbenchResult
	if !c.skipPgbench {
		b.settle(ctx)
		fmt.Printf("%-8s %-28s ", "tps", vPgbench)
		if pg, err = runPgbench(ctx, pgbenchPath, admin, c); err != nil {
			// Not fatal: the figure is a reference, the measured phases stand on their own.
			fmt.Printf("\nstorewrites: pgbench: %v\n", err)
			pg = nil
		} else {
			fmt.Printf("%8d tx  in %5.2fs = %8.0f/s\n", pg.tx, pg.elapsed.Seconds(), pg.tps)
		}
	}

	sqlDB, err := sqlx.Open("postgres", schemaURL)
	if err != nil {
		return fail("%v", err)
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(c.sqlxConns)
	sqlDB.SetMaxIdleConns(c.sqlxConns)
	channel := "sessiond:" + schema // the provider's change feed channel

	type variant struct {
		key, name, realm string
		// open returns the variant's store for one phase, timing its store calls or
		// transactions in st, and what to call at the end of the phase (the Writer's
		// items per store call).
		open func(st *stats) (store, func() float64)
	}
	// The run order. The sqlx baselines first: their pool is closed after them, so that
	// the plugin's 64 connections and theirs are never open at once (max_connections is
	// 100 by default).
	// rotating is group commit with a refresh written as one rotation (rotate).
	rotating := func(st *stats, rotate func(context.Context, groupcommit.Store, []usersessions.Rotation) ([]error, error)) (store, func() float64) {
		w := groupcommit.New(timed{provider, st}, groupcommit.Options{MaxBatch: c.maxBatch})
		return providerStore{w: w, p: provider, rotate: rotate}, func() float64 {
			w.Close()
			t := w.Stats().Total()
			return float64(t.Items) / float64(max(t.Batches, 1))
		}
	}
	all := []variant{
		{"sqlx", vSqlx, "bench-sqlx", func(st *stats) (store, func() float64) {
			return sqlxStore{db: sqlDB, st: st}, nil
		}},
		{"sqlx-notify", vSqlxNotify, "bench-sqlx-notify", func(st *stats) (store, func() float64) {
			return sqlxStore{db: sqlDB, channel: channel, st: st}, nil
		}},
		{"plugin", vPluginTx, "bench-plugin", func(st *stats) (store, func() float64) {
			return providerStore{w: timed{provider, st}, p: provider}, nil
		}},
		// Group commit last: it works on the largest tables, the others' rows included.
		{"groupcommit", vGroup, "bench-groupcommit", func(st *stats) (store, func() float64) {
			w := groupcommit.New(timed{provider, st}, groupcommit.Options{MaxBatch: c.maxBatch})
			return providerStore{w: w, p: provider}, func() float64 {
				w.Close()
				t := w.Stats().Total()
				return float64(t.Items) / float64(max(t.Batches, 1))
			}
		}},
		{"groupcommit-apart", vGroupApart, "bench-groupcommit-apart", func(st *stats) (store, func() float64) {
			return rotating(st, func(ctx context.Context, w groupcommit.Store, r []usersessions.Rotation) ([]error, error) {
				return usersessions.RotateApart(ctx, w, r)
			})
		}},
		{"groupcommit-rotate", vGroupRot, "bench-groupcommit-rotate", func(st *stats) (store, func() float64) {
			return rotating(st, func(ctx context.Context, w groupcommit.Store, r []usersessions.Rotation) ([]error, error) {
				return usersessions.Rotate(ctx, w, r)
			})
		}},
	}
	var variants []variant
	for _, v := range all {
		if slices.Contains(wanted, v.key) {
			variants = append(variants, v)
		}
	}
	var results []result
	acked := map[string]*ledger{}
	failed := false
	for i, v := range variants {
		if ctx.Err() != nil {
			break
		}
		if !strings.HasPrefix(v.key, "sqlx") && i > 0 && strings.HasPrefix(variants[i-1].key, "sqlx") {
			sqlDB.Close() // give the baseline's connections back
		}
		if err := b.warmUp(ctx, v.key, provider, sqlDB); err != nil {
			return fail("warming up %s: %v", v.name, err)
		}
		led := newLedger(v.realm, c.callers)
		acked[v.name] = led
		for _, phase := range []string{"create", "refresh"} {
			ts := &stats{}
			st, done := v.open(ts)
			fmt.Printf("%-8s %-28s ", phase, v.name)
			b.settle(ctx)
			r := b.phase(ctx, phase, v.name, st, led, ts)
			if done != nil {
				r.perBatch = done()
			}
			r.op, r.calls = ts.op.dist(), ts.calls.dist()
			fmt.Printf("%8d ops in %5.2fs = %8.0f/s\n", r.ops, r.elapsed.Seconds(), r.rate())
			fmt.Printf("         each op as its caller sees it: %s\n", r.op)
			kind := "store calls"
			if strings.HasPrefix(v.key, "sqlx") {
				kind = "transactions"
			}
			fmt.Printf("         %s: %s", kind, r.calls)
			if r.perBatch > 0 {
				fmt.Printf(", %.1f items each", r.perBatch)
			}
			fmt.Println()
			for _, m := range []struct {
				name string
				l    *latencies
			}{{"Create", &ts.create}, {"PutClientSessions", &ts.put}, {"Touch", &ts.touch}, {"Rotate", &ts.rotate}} {
				if d := m.l.dist(); d.n > 0 && d.n != r.calls.n {
					fmt.Printf("           %s: %s\n", m.name, d)
				}
			}
			if r.errors > 0 {
				failed = true
				fmt.Fprintf(os.Stderr, "storewrites: %s %s: %d failed writes, first: %v\n", phase, v.name, r.errors, r.firstErr)
			}
			results = append(results, r)
		}
	}
	if ctx.Err() != nil {
		return fail("interrupted")
	}
	printTable(os.Stdout, c, results, pg)

	fmt.Println("\ndurability check (every acknowledged write, read back from the database):")
	for _, v := range variants {
		rep, err := verify(ctx, admin, schema, acked[v.name], c.sample)
		if err != nil {
			return fail("verify %s: %v", v.name, err)
		}
		fmt.Printf("  %-28s %s\n", v.name, rep)
		if !rep.ok() {
			failed = true
		}
	}
	fmt.Printf("\nload average at the end: %s; total run time %s\n", benchproc.LoadAvg(), time.Since(start).Round(100*time.Millisecond))
	if failed {
		fmt.Fprintln(os.Stderr, "storewrites: FAILED: a write failed or an acknowledged write is missing")
		return 1
	}
	return 0
}

// bench runs the measured phases.
type bench struct {
	c      config
	admin  *sqlx.DB
	schema string
}

// warmUp opens the connections a variant's callers will use before it is measured, so
// that no phase pays for 64 connection starts (a backend fork each): for sqlx, c.callers
// connections held at once; for the plugin, c.warmup of concurrent reads of a session that
// does not exist (read-only transactions: nothing is written).
func (b *bench) warmUp(ctx context.Context, key string, p usersessions.Provider, db *sqlx.DB) error {
	if strings.HasPrefix(key, "sqlx") {
		conns := make([]*sql.Conn, 0, b.c.callers)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range b.c.callers {
			c, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	deadline := time.Now().Add(b.c.warmup)
	for range b.c.callers {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := p.Get(ctx, []usersessions.Key{{RealmID: "warm-up", ID: "none"}}); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// settle readies the database for a measured phase, as a server in steady state is:
// statistics up to date and no dirty pages left over from the previous phase.
func (b *bench) settle(ctx context.Context) {
	if b.c.analyze && b.schema != "" {
		// A fresh table has no statistics until autovacuum gets to it (a minute or more):
		// the planner then looks client sessions up through client_session_client
		// (realm, client, offline) and filters on the session id, a scan of every client
		// session of the client per lookup, instead of through the primary key.
		for _, t := range []string{"user_session", "client_session"} {
			if _, err := b.admin.ExecContext(ctx, "ANALYZE "+pq.QuoteIdentifier(b.schema)+"."+t); err != nil {
				fmt.Fprintf(os.Stderr, "storewrites: ANALYZE %s: %v\n", t, err)
			}
		}
	}
	if !b.c.checkpoint {
		return
	}
	if _, err := b.admin.ExecContext(ctx, "CHECKPOINT"); err != nil {
		fmt.Fprintf(os.Stderr, "storewrites: CHECKPOINT (needs superuser or pg_checkpoint; use -checkpoint=false): %v\n", err)
	}
}

func printTable(out *os.File, c config, rs []result, pg *pgbenchResult) {
	rate := func(phase, variant string) float64 {
		for _, r := range rs {
			if r.phase == phase && r.variant == variant {
				return r.rate()
			}
		}
		return 0
	}
	ratio := func(x, y float64) string {
		if y <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", x/y)
	}
	fmt.Fprintf(out, "\n%d concurrent callers, %s per phase; ops: creates (one user session + one client session) or refreshes (rotation + touch, both acknowledged)\n", c.callers, c.dur)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tvariant\tops\tops/s\tvs plugin 1 tx/write\tvs sqlx 1 tx/write\tvs pgbench tps\titems/store call\top p50 / p99\t")
	var pgTPS float64
	if pg != nil {
		pgTPS = pg.tps
	}
	order := []string{vPluginTx, vSqlx, vSqlxNotify, vGroup, vGroupApart, vGroupRot}
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b result) int {
		if a.phase != b.phase {
			return strings.Compare(a.phase, b.phase) // create, refresh
		}
		return slices.Index(order, a.variant) - slices.Index(order, b.variant)
	})
	for _, r := range rs {
		per := "-"
		if r.perBatch > 0 {
			per = fmt.Sprintf("%.1f", r.perBatch)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s / %s\t\n", r.phase, r.variant, r.ops, r.rate(),
			ratio(r.rate(), rate(r.phase, vPluginTx)), ratio(r.rate(), rate(r.phase, vSqlx)), ratio(r.rate(), pgTPS), per, ms(r.op.p50), ms(r.op.p99))
	}
	if pg != nil {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", "tps", fmt.Sprintf("pgbench -N -c %d -j %d", c.callers, c.pgbenchJobs),
			pg.tx, pg.tps, "-", "-", "1.00×", "-", "-")
	}
	tw.Flush()
	g, p, s := rate("refresh", vGroup), rate("refresh", vPluginTx), rate("refresh", vSqlx)
	if g > 0 && p > 0 && s > 0 {
		verdict := func(x float64) string {
			if x >= 5 {
				return "meets the 5× target"
			}
			return "BELOW the 5× target"
		}
		fmt.Fprintf(out, "\nrefreshes/s, group commit vs one transaction per write: %.2f× the plugin without group commit (%s), %.2f× sqlx (%s)\n",
			g/p, verdict(g/p), g/s, verdict(g/s))
	}
}

// buildSessiond builds ./cmd/sessiond of the module the command runs in, into dir.
func buildSessiond(ctx context.Context, dir string) (string, error) {
	root, err := benchproc.RepoRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("%w, or pass -sessiond", err)
	}
	bin := filepath.Join(dir, "sessiond")
	return bin, benchproc.Build(ctx, root, bin)
}

type durabilitySettings struct{ version, syncCommit, fsync, walSync, commitDelay string }

func durability(ctx context.Context, dsn string) (durabilitySettings, error) {
	var d durabilitySettings
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return d, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
		current_setting('fsync'), current_setting('wal_sync_method'), current_setting('commit_delay')`).
		Scan(&d.version, &d.syncCommit, &d.fsync, &d.walSync, &d.commitDelay)
	if err != nil {
		return d, fmt.Errorf("reading the durability settings: %w", err)
	}
	return d, nil
}

// withParam returns the URL raw with the query parameter k set to v.
func withParam(raw, k, v string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("-url must be a postgres:// URL")
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
