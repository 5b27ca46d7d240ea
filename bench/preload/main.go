// Command preload measures sessiond's offline preload against PostgreSQL, in one run, for
// each N of -n (default 100k and 1M): it fills a fresh schema with N offline sessions, one
// client session each, with COPY, then measures, interleaved run by run:
//
//   - the floor: PostgreSQL's own `COPY (SELECT … the columns the provider reads … FROM
//     user_session JOIN client_session …) TO STDOUT` for the same rows, run with psql;
//   - the postgres provider's Stream alone, pages dropped;
//   - the preload in-process: core/preload with the database provider's plan, over the
//     postgres provider, into a core/cache sized for N, with the Go CPU it used and the
//     live bytes per cached session: the Go heap it grew by (runtime.ReadMemStats after GC,
//     before and after) and the cache's records outside the heap (cache.Stats().Bytes);
//
// and, with -binary, the same preload with the store a plugin process, the preload of the
// sessiond binary (every provider a plugin process, the seed's
// --spi-user-sessions-infinispan-preload-offline-sessions-from-database=true) and its lazy
// start-up, each timed to /health/ready 200.
//
// It prints each figure and checks the targets: a preload of 1M within 2× the COPY floor,
// under 1 KiB of live data per cached session (the Go heap and the cache's records outside
// it), a lazy start-up ready under 1 s. README.md has
// the method and results.
//
//	go run ./bench/preload                  # -h for flags
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/core/cleanup"
	"github.com/sessiond/sessiond/core/preload"
	sessiond "github.com/sessiond/sessiond/core/runtime"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/preload/database"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const realm = "bench"

var profileTo, pluginProfileTo *os.File

type config struct {
	url           string
	sizes         []int
	runs          int
	workers       int
	pageSize      int
	keep          bool
	schema        string
	binary        bool
	inProcess     bool
	sessiond      string
	baseline      string
	psql          string
	profile       string
	pluginProfile string
}

func main() {
	var cfg config
	var sizes string
	flag.StringVar(&cfg.url, "url", testpg.URL(), "PostgreSQL URL; a schema is created in it for each N and dropped after")
	flag.StringVar(&sizes, "n", "100000,1000000", "numbers of offline sessions, comma-separated")
	flag.IntVar(&cfg.runs, "runs", 3, "runs of the floor and of each preload; the best is reported")
	flag.IntVar(&cfg.workers, "workers", database.DefaultWorkers, "preload workers (spi-offline-preload-database-workers)")
	flag.IntVar(&cfg.pageSize, "page-size", database.DefaultPageSize, "preload page size (spi-offline-preload-database-page-size)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the schemas")
	flag.StringVar(&cfg.schema, "schema", "", "reuse (or create and keep) the schema <this>_<N> for each N; a schema holding N sessions is not filled again")
	flag.BoolVar(&cfg.binary, "binary", true, "also measure the sessiond binary with plugin processes (preload and lazy start-up)")
	flag.BoolVar(&cfg.inProcess, "inprocess", true, "measure the provider's Stream alone, the in-process preload and the preload through the store plugin (with -binary)")
	flag.StringVar(&cfg.baseline, "baseline", "", "another sessiond binary (a build of main, say) whose preload is measured beside the one built here, run by run")
	flag.StringVar(&cfg.psql, "psql", "psql", "psql command for the COPY floor")
	flag.StringVar(&cfg.profile, "cpuprofile", "", "write a CPU profile of the first in-process preload to this file")
	flag.StringVar(&cfg.pluginProfile, "plugin-cpuprofile", "", "write a CPU profile of this process during the first preload through the store plugin")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("-n: %q is not a positive number", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if _, err := exec.LookPath(cfg.psql); err != nil {
		fatalf("psql is needed for the COPY floor: %v", err)
	}
	tmp, err := os.MkdirTemp("", "bench-preload-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	if cfg.binary {
		cfg.sessiond = filepath.Join(tmp, "sessiond")
		fmt.Fprintln(os.Stderr, "building sessiond …")
		if err := benchproc.Build(context.Background(), ".", cfg.sessiond); err != nil {
			fatalf("%v (run from the repository root)", err)
		}
	}
	fmt.Printf("preload benchmark: %d CPUs, GOMAXPROCS %d, %s, workers %d, page size %d, best of %d runs\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), cfg.workers, cfg.pageSize, cfg.runs)
	if cfg.profile != "" {
		f, err := os.Create(cfg.profile)
		if err != nil {
			fatalf("%v", err)
		}
		profileTo = f
		defer f.Close()
	}
	if cfg.pluginProfile != "" {
		f, err := os.Create(cfg.pluginProfile)
		if err != nil {
			fatalf("%v", err)
		}
		pluginProfileTo = f
		defer f.Close()
	}
	var results []result
	for _, n := range cfg.sizes {
		r, err := bench(cfg, tmp, n)
		if err != nil {
			fatalf("N=%d: %v", n, err)
		}
		results = append(results, r)
	}
	report(results)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "preload bench: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

type result struct {
	n             int
	fill          time.Duration
	floor         time.Duration
	stream        time.Duration // the provider's Stream alone, in-process, best run
	preload       time.Duration // in-process, best run
	preloadRuns   []time.Duration
	livePer       int64         // live data per cached session: the Go heap it grew by, and the cache's records outside the heap
	pluginPreload time.Duration // in this process, the store a plugin process
	pluginCPU     time.Duration // CPU time of this process and of the plugin process during the best of those
	goCPU         time.Duration // CPU time of this process during the best in-process preload
	binPreload    time.Duration // the preload's own elapsed in the binary, from its log
	binReady      time.Duration // exec to ready with the preload
	lazyReady     time.Duration // exec to ready, lazy
	binMeasured   bool
	floorRuns     []time.Duration // the floor beside each run of sessiond
	binRuns       []binRun        // of the sessiond built here, in order
	baseRuns      []binRun        // of -baseline, in order
	importedLast  int64
}

func bench(cfg config, tmp string, n int) (result, error) {
	res := result{n: n}
	ctx := context.Background()
	admin, err := sqlx.Open("postgres", cfg.url)
	if err != nil {
		return res, err
	}
	defer admin.Close()
	b := make([]byte, 4)
	rand.Read(b)
	schema := "bench_preload_" + hex.EncodeToString(b)
	if cfg.schema != "" {
		schema = fmt.Sprintf("%s_%d", cfg.schema, n)
	}
	if _, err := admin.Exec("CREATE SCHEMA IF NOT EXISTS " + schema); err != nil {
		return res, fmt.Errorf("PostgreSQL at %s: %w", cfg.url, err)
	}
	if !cfg.keep && cfg.schema == "" {
		defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	}
	schemaURL, err := benchproc.SchemaURL(cfg.url, schema)
	if err != nil {
		return res, err
	}

	// The provider creates its tables (its migrations) in the fresh schema.
	store := postgres.New(hclog.NewNullLogger())
	if err := store.Configure(ctx, spi.Config{postgres.OptURL: schemaURL, spi.HostNodeID: "bench", postgres.OptStatementTimeout: "1m"}); err != nil {
		return res, err
	}
	defer store.Close(ctx)

	var stored int
	if err := admin.Get(&stored, fmt.Sprintf("SELECT count(*) FROM %s.user_session", schema)); err != nil {
		return res, err
	}
	if stored == n {
		logf("N=%d: reusing schema %s", n, schema)
	} else {
		if stored != 0 {
			return res, fmt.Errorf("schema %s holds %d sessions, not %d: drop it or name another", schema, stored, n)
		}
		logf("N=%d: filling schema %s", n, schema)
		start := time.Now()
		db, err := sql.Open("postgres", schemaURL)
		if err != nil {
			return res, err
		}
		err = fill(ctx, db, n)
		db.Close()
		if err != nil {
			return res, fmt.Errorf("fill: %w", err)
		}
		if _, err := admin.Exec(fmt.Sprintf("VACUUM (ANALYZE) %s.user_session, %s.client_session", schema, schema)); err != nil {
			return res, err
		}
		res.fill = time.Since(start)
		logf("N=%d: filled in %s", n, res.fill.Round(time.Millisecond))
	}

	// The floor, the provider's Stream alone and the in-process preload, interleaved run
	// by run so that each ratio compares runs made under the same load; the best of each.
	res.floor, res.stream = -1, -1
	floor := func() error {
		settle()
		d, rows, err := copyFloor(cfg, schema)
		if err != nil {
			return err
		}
		if rows != n {
			return fmt.Errorf("the COPY floor wrote %d rows, want %d", rows, n)
		}
		if res.floor < 0 || d < res.floor {
			res.floor = d
		}
		lastFloor = d
		logf("N=%d: COPY floor %s", n, d.Round(time.Millisecond))
		return nil
	}
	for run := range cfg.runs {
		if !cfg.inProcess {
			break
		}
		if err := floor(); err != nil {
			return res, err
		}

		// The provider's Stream alone, pages dropped: what the store side costs.
		settle()
		d, rows, err := streamOnly(ctx, cfg, store)
		if err != nil {
			return res, err
		}
		if rows != n {
			return res, fmt.Errorf("the stream read %d sessions, want %d", rows, n)
		}
		if res.stream < 0 || d < res.stream {
			res.stream = d
		}
		logf("N=%d: provider Stream alone %s", n, d.Round(time.Millisecond))

		settle()
		d, livePer, imported, err := preloadInProcess(ctx, cfg, store, n)
		if err != nil {
			return res, err
		}
		if imported != int64(n) {
			return res, fmt.Errorf("preloaded %d sessions, want %d", imported, n)
		}
		res.preloadRuns = append(res.preloadRuns, d)
		if run == 0 || d < res.preload {
			res.preload, res.goCPU = d, lastGoCPU
		}
		if run == 0 || livePer < res.livePer {
			res.livePer = livePer
		}
		logf("N=%d: in-process preload %s (%.0f/s, Go CPU %s), %d bytes of live data per session (Go heap and the cache's records)", n, d.Round(time.Millisecond), float64(n)/d.Seconds(), lastGoCPU.Round(time.Millisecond), livePer)
	}

	if cfg.binary {
		// The store as a plugin process under this process's plugins/host, the preload
		// here: where the gRPC stream costs.
		for run := range cfg.runs {
			if !cfg.inProcess {
				break
			}
			settle()
			self0, children0 := cpuTime(), childrenCPUTime()
			d, imported, err := preloadViaPlugin(ctx, cfg, schemaURL, n)
			if err != nil {
				return res, fmt.Errorf("preload through the store plugin: %w", err)
			}
			if imported != int64(n) {
				return res, fmt.Errorf("preloaded %d sessions through the plugin, want %d", imported, n)
			}
			// The plugin process has exited and been waited for: its CPU is in the children's.
			self, children := cpuTime()-self0, childrenCPUTime()-children0
			if run == 0 || d < res.pluginPreload {
				res.pluginPreload, res.pluginCPU = d, self+children
			}
			logf("N=%d: preload through the store plugin %s (%.0f/s; CPU of this process %s, of the plugin %s, with their start and stop)",
				n, d.Round(time.Millisecond), float64(n)/d.Seconds(), self.Round(time.Millisecond), children.Round(time.Millisecond))
		}
		res.binMeasured = true
		// A first start records the realm's expiry rules: it scans the stored sessions
		// once (cleanup's recompute), and a preload waits for that. It happens once per
		// database, and again only when a realm's timeouts change; it is not measured. A
		// schema reused with -schema may have them already.
		var recorded int
		if err := admin.Get(&recorded, fmt.Sprintf("SELECT count(*) FROM %s.record WHERE kind = $1 AND record_key = $2", schema), cleanup.RecordKind, realm); err != nil {
			return res, err
		}
		if recorded == 0 {
			if _, err := startBinary(cfg, cfg.sessiond, tmp, schemaURL, n, false, "stored session expiries recomputed"); err != nil {
				return res, fmt.Errorf("sessiond warm-up start: %w", err)
			}
		}
		for run := range cfg.runs {
			// A floor beside each run of sessiond too, so that its ratio is to a floor
			// measured under the same conditions.
			if err := floor(); err != nil {
				return res, err
			}
			res.floorRuns = append(res.floorRuns, lastFloor)
			// With a baseline, the two take turns at going first: on a machine whose load
			// drifts, the second of a pair runs under a different load than the first.
			order := []string{cfg.sessiond}
			if cfg.baseline != "" {
				order = append(order, cfg.baseline)
				if run%2 == 1 {
					slices.Reverse(order)
				}
			}
			for _, binary := range order {
				settle()
				b, err := startBinary(cfg, binary, tmp, schemaURL, n, true, "")
				if err != nil {
					return res, fmt.Errorf("%s with preload: %w", binary, err)
				}
				which := "sessiond"
				if binary == cfg.sessiond {
					if run == 0 || b.elapsed < res.binPreload {
						res.binPreload, res.binReady = b.elapsed, b.ready
					}
					res.binRuns = append(res.binRuns, b)
				} else {
					which = "baseline sessiond"
					res.baseRuns = append(res.baseRuns, b)
				}
				logf("N=%d: %s (plugins) preload %s (%.2f× the floor), ready after %s; resident: sessiond %s (peak %s), plugins %s (peak %s)",
					n, which, b.elapsed.Round(time.Millisecond), b.elapsed.Seconds()/lastFloor.Seconds(), b.ready.Round(time.Millisecond),
					mib(b.rss), mib(b.peak), mib(b.pluginRSS), mib(b.pluginPeak))
			}
		}
		for run := range cfg.runs {
			settle()
			b, err := startBinary(cfg, cfg.sessiond, tmp, schemaURL, n, false, "")
			if err != nil {
				return res, fmt.Errorf("sessiond lazy: %w", err)
			}
			if run == 0 || b.ready < res.lazyReady {
				res.lazyReady = b.ready
			}
			logf("N=%d: sessiond (plugins) lazy start-up ready after %s", n, b.ready.Round(time.Millisecond))
		}
	}
	return res, nil
}

// settle hands the memory this process no longer uses back to the OS before a measured
// run. An idle process holding a few GB it had freed but not returned (the in-process
// preload's cache, after it) slowed a sessiond beside it by a fifth and more (measured by
// hand with an idle process holding 3 GB: 12.5–15.3 s against 10.8 s).
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// floorQuery reads every column the provider's Stream reads (sqlstore's sessionSelect and
// clientSelect) of the same rows, in one statement.
func floorQuery(schema string) string {
	return fmt.Sprintf(`COPY (SELECT s.realm_id, s.id, s.offline, s.user_id, s.login_username, s.ip_address, s.user_agent,
  s.auth_method, s.broker_session_id, s.broker_user_id, s.remember_me, s.state, s.started, s.last_refresh, s.expires_at,
  s.notes, s.version, c.realm_id, c.user_session_id, c.offline, c.client_id, c.started, c.last_refresh, c.expires_at,
  c.auth_method, c.redirect_uri, c.action, c.scope, c.notes, c.current_refresh_token, c.current_refresh_token_use_count,
  c.previous_refresh_token, c.rotated_at, c.version
FROM %[1]s.user_session s JOIN %[1]s.client_session c
  ON c.realm_id = s.realm_id AND c.user_session_id = s.id AND c.offline = s.offline
WHERE s.realm_id = '%[2]s' AND s.offline) TO STDOUT`, schema, realm)
}

// copyFloor runs the floor query with psql, its output counted and dropped.
func copyFloor(cfg config, schema string) (time.Duration, int, error) {
	u, _ := url.Parse(cfg.url)
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	cmd := exec.Command(cfg.psql, u.String(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", floorQuery(schema))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	rows := 0
	r := bufio.NewReaderSize(out, 1<<20)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			rows++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return 0, 0, err
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("psql: %v: %s", err, stderr.String())
	}
	return time.Since(start), rows, nil
}

// preloadViaPlugin runs the preload here over the postgres provider served as a plugin
// process (sessiond plugin serve user-sessions postgres) through plugins/host, as sessiond
// runs it, without the rest of sessiond.
func preloadViaPlugin(ctx context.Context, cfg config, schemaURL string, n int) (time.Duration, int64, error) {
	sum, err := host.FileSHA256(cfg.sessiond)
	if err != nil {
		return 0, 0, err
	}
	h := host.New(hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Warn, Output: os.Stderr}), host.Options{})
	defer h.Stop(context.Background())
	plug, err := h.Start(ctx, host.Spec{SPI: spi.UserSessions, ID: postgres.ID, Command: cfg.sessiond,
		Args: []string{"plugin", "serve", spi.UserSessions, postgres.ID}, SHA256: sum})
	if err != nil {
		return 0, 0, err
	}
	if err := plug.Configure(ctx, spi.Config{postgres.OptURL: schemaURL, spi.HostNodeID: "bench"}); err != nil {
		return 0, 0, err
	}
	store := plug.Provider().(usersessions.Provider)
	planner := database.New(hclog.NewNullLogger())
	if err := planner.Configure(ctx, spi.Config{database.OptWorkers: strconv.Itoa(cfg.workers), database.OptPageSize: strconv.Itoa(cfg.pageSize),
		database.OptProgressInterval: "1h"}); err != nil {
		return 0, 0, err
	}
	c := cache.New(store, cache.Options{NodeID: "bench", MaxEntries: n})
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); c.Follow(followCtx) }()
	defer func() { stopFollow(); <-followed }()
	for !c.Stats().Following {
		time.Sleep(time.Millisecond)
	}
	r := preload.New(preload.Deps{Store: store, Cache: c, Planner: planner, Realms: func() []string { return []string{realm} },
		Expect: func(sessions int) { sessiond.GrowHeapFor(hclog.NewNullLogger(), sessions) }}) // as sessiond's runtime does
	if pluginProfileTo != nil {
		pprof.StartCPUProfile(pluginProfileTo)
	}
	start := time.Now()
	restoreGC := sessiond.RelaxGC(hclog.NewNullLogger()) // as sessiond's runtime does
	r.Run(ctx)
	restoreGC()
	elapsed := time.Since(start)
	if pluginProfileTo != nil {
		pprof.StopCPUProfile()
		pluginProfileTo = nil
	}
	if st := r.Status(); st.State != preload.Done {
		return 0, 0, fmt.Errorf("preload ended %s", st)
	}
	return elapsed, r.Status().Imported, nil
}

// streamOnly reads every offline session with the provider's Stream, partitioned as the
// preload reads them, and drops the pages.
func streamOnly(ctx context.Context, cfg config, store *postgres.Provider) (time.Duration, int, error) {
	start := time.Now()
	var rows atomic.Int64
	errs := make(chan error, cfg.workers)
	for i := range cfg.workers {
		go func() {
			part := usersessions.Partition{Index: i, Count: cfg.workers}
			if cfg.workers == 1 {
				part = usersessions.Partition{}
			}
			errs <- store.Stream(ctx, usersessions.StreamRequest{
				Filter:   usersessions.Filter{RealmID: realm, Offline: usersessions.OfflineOnly},
				PageSize: cfg.pageSize, Partition: part,
			}, func(page []*usersessions.UserSession) error {
				rows.Add(int64(len(page)))
				return nil
			})
		}()
	}
	var err error
	for range cfg.workers {
		err = errors.Join(err, <-errs)
	}
	return time.Since(start), int(rows.Load()), err
}

// preloadInProcess runs core/preload with the database provider's plan over the postgres
// provider into a fresh cache sized for n, as the runtime wires it (the cache follows the
// feed; the provider is in-process), and measures the live data the cache holds after:
// the Go heap it grew by and the records it keeps outside the heap.
func preloadInProcess(ctx context.Context, cfg config, store *postgres.Provider, n int) (time.Duration, int64, int64, error) {
	planner := database.New(hclog.NewNullLogger())
	if err := planner.Configure(ctx, spi.Config{database.OptWorkers: strconv.Itoa(cfg.workers), database.OptPageSize: strconv.Itoa(cfg.pageSize),
		database.OptProgressInterval: "1h"}); err != nil {
		return 0, 0, 0, err
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := cache.New(store, cache.Options{NodeID: "bench", MaxEntries: n})
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); c.Follow(followCtx) }()
	defer func() { stopFollow(); <-followed }()
	for !c.Stats().Following {
		time.Sleep(time.Millisecond)
	}
	r := preload.New(preload.Deps{Store: store, Cache: c, Planner: planner, Realms: func() []string { return []string{realm} },
		Expect: func(sessions int) { sessiond.GrowHeapFor(hclog.NewNullLogger(), sessions) }}) // as sessiond's runtime does
	if profileTo != nil {
		pprof.StartCPUProfile(profileTo)
	}
	cpu0 := cpuTime()
	start := time.Now()
	restoreGC := sessiond.RelaxGC(hclog.NewNullLogger()) // as sessiond's runtime does
	r.Run(ctx)
	restoreGC()
	elapsed := time.Since(start)
	lastGoCPU = cpuTime() - cpu0
	if profileTo != nil {
		pprof.StopCPUProfile()
		profileTo = nil // one profile: the first in-process preload
	}
	st := r.Status()
	if st.State != preload.Done {
		return 0, 0, 0, fmt.Errorf("preload ended %s", st)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	entries := c.Stats().Entries
	// The cache keeps its records in chunks mapped from the OS (Stats.Bytes), which
	// runtime.MemStats does not count: the heap alone is a few dozen bytes a session.
	livePer := (int64(after.HeapAlloc) - int64(before.HeapAlloc) + c.Stats().Bytes) / int64(max(entries, 1))
	runtime.KeepAlive(c)
	return elapsed, livePer, st.Imported, nil
}

const benchRealmJSON = `{"realm": "bench", "clients": [{"clientId": "app", "secret": "app-secret", "optionalClientScopes": ["offline_access"]}]}`

// binRun is one start of a sessiond binary: exec to ready, the preload's own elapsed (from
// its log), and the resident memory (VmRSS, and its peak VmHWM, from /proc) of sessiond and
// of its plugin processes together, read when the preload's log line came.
type binRun struct {
	ready, elapsed                   time.Duration
	rss, peak, pluginRSS, pluginPeak int64
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

// startBinary starts sessiond (start profile, every provider a plugin process) on the
// filled schema, waits for /health/ready 200 (and, if waitFor is set, for a log line with
// that message) and stops it. It returns the time from exec to ready and, with preload,
// the preload's own elapsed from its log line.
func startBinary(cfg config, binary, tmp, schemaURL string, n int, withPreload bool, waitFor string) (run binRun, err error) {
	realmFile := filepath.Join(tmp, "bench-realm.json")
	if err := os.WriteFile(realmFile, []byte(benchRealmJSON), 0o600); err != nil {
		return run, err
	}
	lb, err := benchproc.NewLoopback()
	if err != nil {
		return run, err
	}
	args := append([]string{"start"}, lb.Args()...)
	args = append(args, "--log-format=json",
		"--realm-file="+realmFile, "--plugin-socket-dir="+tmp, "--cleanup-interval=1h",
		"--spi-user-sessions-postgres-url="+schemaURL, "--cache-max-entries="+strconv.Itoa(n),
		// start stores realm keys encrypted; the bench's throwaway schema needs no secret key.
		"--key-encryption-key="+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if withPreload {
		args = append(args, "--spi-user-sessions-infinispan-preload-offline-sessions-from-database=true",
			"--spi-offline-preload-database-workers="+strconv.Itoa(cfg.workers),
			"--spi-offline-preload-database-page-size="+strconv.Itoa(cfg.pageSize),
			"--spi-offline-preload-database-timeout=1h") // 10M sessions on a loaded machine may take more than the default
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = tmp
	lines := make(chan logLine, 1024)
	p, err := benchproc.Start(cmd, filepath.Join(tmp, "sessiond.log"), func(b []byte) { scanLog(b, lines) })
	if err != nil {
		return run, err
	}
	defer p.Stop()
	const timeout = 10 * time.Minute
	if err := p.WaitReady(context.Background(), lb.ReadyURL(), timeout, pollInterval); err != nil {
		return run, err
	}
	run.ready = time.Since(p.Started)
	deadline := p.Started.Add(timeout)
	needPreload := withPreload
	for needPreload || waitFor != "" {
		select {
		case l := <-lines:
			switch {
			case l.msg == "offline sessions preloaded":
				run.elapsed, needPreload = l.elapsed, false
				run.rss, run.peak = procMemory(p.Pid())
				for _, child := range benchproc.Descendants(p.Pid()) {
					rss, peak := procMemory(child)
					run.pluginRSS, run.pluginPeak = run.pluginRSS+rss, run.pluginPeak+peak
				}
			case strings.HasPrefix(l.msg, "offline preload failed"):
				return run, fmt.Errorf("the preload failed: %s", l.raw)
			case waitFor != "" && strings.HasPrefix(l.msg, waitFor):
				waitFor = ""
			}
		case <-p.Done():
			return run, fmt.Errorf("sessiond ended (%v); the end of its log:\n%s", p.Err(), p.Tail(3000))
		case <-time.After(time.Until(deadline)):
			return run, fmt.Errorf("ready, but no %q log line", waitFor)
		}
	}
	return run, nil
}

// procMemory is the resident memory of process pid and its peak, in bytes (0 if unknown).
func procMemory(pid int) (rss, peak int64) {
	m, _ := benchproc.ReadMemory(pid)
	return m.RSS, m.Peak
}

// pollInterval is how long to wait before the next readiness probe, elapsed after the
// exec: every 5 ms for the first 2 s (a lazy start is ready in well under a second), then
// every 50 ms. Each probe reads the store through the plugin (a round trip to PostgreSQL),
// and at 200 a second during a preload they cost sessiond about a second of its 2 CPUs'
// time in 10 (measured by hand: 12.4 s against 11.5 s without probes); the preload's own
// time comes from its log line, and ready (preload) is then known to within 50 ms.
func pollInterval(elapsed time.Duration) time.Duration {
	if elapsed < 2*time.Second {
		return 5 * time.Millisecond
	}
	return 50 * time.Millisecond
}

type logLine struct {
	msg     string
	elapsed time.Duration
	raw     string
}

// scanLog hands on a line of sessiond's JSON log with its message and "elapsed", if
// anyone is waiting for it.
func scanLog(b []byte, lines chan<- logLine) {
	var line map[string]any
	if json.Unmarshal(b, &line) != nil {
		return
	}
	l := logLine{raw: string(b)}
	l.msg, _ = line["@message"].(string)
	switch v := line["elapsed"].(type) {
	case float64: // hclog's JSON writes a time.Duration as nanoseconds
		l.elapsed = time.Duration(v)
	case string:
		l.elapsed, _ = time.ParseDuration(v)
	}
	select {
	case lines <- l:
	default: // nobody is waiting for it
	}
}

// lastFloor is the last COPY floor measured.
var lastFloor time.Duration

// lastGoCPU is the CPU time this process used during the last in-process preload.
var lastGoCPU time.Duration

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPUTime is the user and system CPU time of this process's children that have
// ended and been waited for.
func childrenCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(results []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "N\tfill\tCOPY floor\tStream alone\tpreload (in-process)\tGo CPU\trate\t× floor\tlive/session (heap+records)\tpreload (store plugin)\tGo CPU\t× floor\tpreload (sessiond)\t× floor\tready (preload)\tready (lazy)\t")
	for _, r := range results {
		row := []string{strconv.Itoa(r.n), dur(r.fill)}
		if r.preload > 0 {
			row = append(row, dur(r.floor), dur(r.stream), dur(r.preload), dur(r.goCPU), fmt.Sprintf("%.0f/s", float64(r.n)/r.preload.Seconds()),
				fmt.Sprintf("%.2f", r.preload.Seconds()/r.floor.Seconds()), fmt.Sprintf("%d B", r.livePer))
		} else { // -inprocess=false
			row = append(row, dur(max(r.floor, 0)), "-", "-", "-", "-", "-", "-")
		}
		switch {
		case r.binMeasured && r.pluginPreload > 0:
			row = append(row, dur(r.pluginPreload), dur(r.pluginCPU), fmt.Sprintf("%.2f", r.pluginPreload.Seconds()/r.floor.Seconds()))
		default:
			row = append(row, "-", "-", "-")
		}
		if r.binMeasured {
			row = append(row, dur(r.binPreload), fmt.Sprintf("%.2f", r.binPreload.Seconds()/r.floor.Seconds()), dur(r.binReady), dur(r.lazyReady))
		} else {
			row = append(row, "-", "-", "-", "-")
		}
		fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
	}
	w.Flush()
	fmt.Println()
	for _, r := range results {
		if len(r.binRuns) == 0 {
			continue
		}
		// Each run of sessiond beside the floor measured just before it: min/median/max of
		// the elapsed, of its ratio to that floor, and of the resident memory at its end.
		fmt.Printf("N=%d, sessiond's preload over %d rounds (min / median / max; × the floor measured before each round):\n", r.n, len(r.binRuns))
		fmt.Printf("  %-10s %s\n", "COPY floor", spread(r.floorRuns, dur))
		rounds := func(name string, runs []binRun) {
			if len(runs) == 0 {
				return
			}
			var elapsed, ratio, rss, peak []float64
			for i, b := range runs {
				elapsed = append(elapsed, b.elapsed.Seconds())
				ratio = append(ratio, b.elapsed.Seconds()/r.floorRuns[i].Seconds())
				rss = append(rss, float64(b.rss+b.pluginRSS))
				peak = append(peak, float64(b.peak+b.pluginPeak))
			}
			secs := func(v float64) string { return dur(time.Duration(v * float64(time.Second))) }
			mb := func(v float64) string { return mib(int64(v)) }
			fmt.Printf("  %-10s %s; × floor %s; resident at the end, sessiond and plugins: %s (peak %s), %s per session\n", name,
				spread(elapsed, secs), spread(ratio, func(v float64) string { return fmt.Sprintf("%.2f", v) }),
				spread(rss, mb), spread(peak, mb), spread(rss, func(v float64) string { return fmt.Sprintf("%.0f B", v/float64(r.n)) }))
		}
		rounds("this tree", r.binRuns)
		rounds("baseline", r.baseRuns)
		fmt.Println()
	}
	largest := slices.MaxFunc(results, func(a, b result) int { return a.n - b.n })
	check := func(ok bool, format string, args ...any) {
		mark := "met   "
		if !ok {
			mark = "MISSED"
		}
		fmt.Printf("%s "+format+"\n", append([]any{mark}, args...)...)
	}
	if largest.preload > 0 { // measured (-inprocess)
		ratio := largest.preload.Seconds() / largest.floor.Seconds()
		check(ratio <= 2, "preload of %d in-process within 2× the COPY floor: %.2f× (%s vs %s)", largest.n, ratio, dur(largest.preload), dur(largest.floor))
	}
	if largest.pluginPreload > 0 {
		r := largest.pluginPreload.Seconds() / largest.floor.Seconds()
		check(r <= 2, "preload of %d here with the store a plugin process within 2× the COPY floor: %.2f× (%s vs %s)", largest.n, r, dur(largest.pluginPreload), dur(largest.floor))
	}
	if largest.binMeasured {
		r := largest.binPreload.Seconds() / largest.floor.Seconds()
		check(r <= 2, "preload of %d in sessiond (store plugin) within 2× the COPY floor: %.2f× (%s vs %s)", largest.n, r, dur(largest.binPreload), dur(largest.floor))
	}
	worstLive := slices.MaxFunc(results, func(a, b result) int { return int(a.livePer - b.livePer) })
	if worstLive.livePer != 0 {
		check(worstLive.livePer < 1024, "live data (Go heap and the cache's records) per cached session under 1 KiB: %d B (N=%d)", worstLive.livePer, worstLive.n)
	}
	if largest.binMeasured {
		worstLazy := slices.MaxFunc(results, func(a, b result) int { return int(a.lazyReady - b.lazyReady) })
		check(worstLazy.lazyReady < time.Second, "lazy start-up ready under 1 s: %s (N=%d)", dur(worstLazy.lazyReady), worstLazy.n)
	}
}

func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// spread is the min / median / max of vs, each formatted by f.
func spread[T cmp.Ordered](vs []T, f func(T) string) string {
	s := slices.Sorted(slices.Values(vs))
	return fmt.Sprintf("%s / %s / %s", f(s[0]), f(s[len(s)/2]), f(s[len(s)-1]))
}
