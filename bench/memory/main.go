// Command memory measures what sessiond holds in memory per cached session, for the
// representation in this tree beside a baseline (another git ref, default main) in one
// run, interleaved round by round:
//
//   - in-process (bench/memory/fill, built in each tree): a core/cache filled with N
//     typical sessions through the preload window: resident bytes per session (VmRSS),
//     live data per session (Go heap after a GC, plus the records the cache keeps outside
//     the heap), and the collector's cost (its CPU during the fill, a full collection after);
//   - sessiond (-sessiond, default on): the sessiond binary of each tree, every provider a
//     plugin process, on a PostgreSQL schema holding N offline sessions, started with the
//     offline preload: its resident memory once preloaded, less that of the same binary
//     started lazily on the same schema, per session;
//   - the hot paths (-hotpath, default on): core/cache's BenchmarkCachePaths (a hit, a
//     touch, a rotation) in each tree.
//
// It prints min/median/max over the rounds and the ratio of the medians. README.md says
// how to run it and what it found.
//
//	go run ./bench/memory             # from the repository root; -h for flags
//
// One file: the three measurements share the build of both trees, the round order and the
// table, and each is a page or two; apart they would be read together anyway.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
)

type config struct {
	sizes     []int
	rounds    int
	baseline  string
	url       string
	schema    string
	inprocess bool
	sessiond  bool
	hotpath   bool
	benchN    int
}

// A tree is one side of the comparison, built.
type tree struct {
	name     string
	dir      string
	fill     string // bench/memory/fill
	sessiond string
	cacheTst string // core/cache's test binary
}

func main() {
	var cfg config
	var sizes string
	flag.StringVar(&sizes, "n", "100000,1000000", "numbers of cached sessions, comma-separated")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds; each measures both trees, in turn first")
	flag.StringVar(&cfg.baseline, "baseline", "main", "git ref of the baseline (built from git archive)")
	flag.StringVar(&cfg.url, "url", testpg.URL(), "PostgreSQL URL for -sessiond")
	flag.StringVar(&cfg.schema, "schema", "", "for -sessiond: keep and reuse the schema <this>_<N> (filled once); default a fresh schema, dropped after")
	flag.BoolVar(&cfg.inprocess, "inprocess", true, "measure caches filled in a process of their own (bench/memory/fill)")
	flag.BoolVar(&cfg.sessiond, "sessiond", true, "also measure the sessiond binaries, preloaded from PostgreSQL")
	flag.BoolVar(&cfg.hotpath, "hotpath", true, "also run core/cache's BenchmarkCachePaths in both trees")
	flag.IntVar(&cfg.benchN, "bench-n", 200000, "iterations of each hot-path benchmark")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("-n: %q is not a positive number", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if _, err := os.Stat("bench/memory/fill/main.go"); err != nil {
		fatalf("run from the repository root: %v", err)
	}
	tmp, err := os.MkdirTemp("", "bench-memory-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	here, err := os.Getwd()
	if err != nil {
		fatalf("%v", err)
	}
	base := filepath.Join(tmp, "baseline")
	if err := benchproc.Export(context.Background(), here, cfg.baseline, base); err != nil {
		fatalf("baseline %s: %v", cfg.baseline, err)
	}
	trees := []*tree{{name: "baseline (" + cfg.baseline + ")", dir: base}, {name: "this tree", dir: here}}
	for i, t := range trees {
		if err := build(cfg, t, filepath.Join(tmp, strconv.Itoa(i))); err != nil {
			fatalf("building %s: %v", t.name, err)
		}
	}
	fmt.Printf("memory benchmark: %d CPUs, %s, %d rounds, baseline %s\n\n", runtime.NumCPU(), runtime.Version(), cfg.rounds, cfg.baseline)
	res := results{}
	for _, n := range cfg.sizes {
		if !cfg.inprocess {
			break
		}
		for r := range cfg.rounds {
			for _, t := range order(trees, r) {
				settle()
				f, err := fill(t, n)
				if err != nil {
					fatalf("%s, N=%d: %v", t.name, n, err)
				}
				per := func(b int64) float64 { return float64(b) / float64(n) }
				res.add("in-process: resident B/session", n, t, per(f.RSSAfter-f.RSSBefore))
				res.add("in-process: live data B/session (heap + records outside it)", n, t, per(f.HeapAfter-f.HeapBefore+f.OffHeap))
				res.add("in-process: of which Go heap B/session", n, t, per(f.HeapAfter-f.HeapBefore))
				res.add("in-process: GC CPU during the fill (s)", n, t, f.FillGCCPU)
				res.add("in-process: a full GC with N cached (ms)", n, t, f.FullGCSec*1000)
				logf("%s N=%d round %d: resident %.0f B/session, live %.0f B/session, GC CPU %.2fs, full GC %.1fms", t.name, n, r+1,
					per(f.RSSAfter-f.RSSBefore), per(f.HeapAfter-f.HeapBefore+f.OffHeap), f.FillGCCPU, f.FullGCSec*1000)
			}
		}
	}
	if cfg.sessiond {
		for _, n := range cfg.sizes {
			if err := sessiondRounds(cfg, tmp, trees, n, res); err != nil {
				fatalf("sessiond, N=%d: %v", n, err)
			}
		}
	}
	if cfg.hotpath {
		for r := range cfg.rounds {
			for _, t := range order(trees, r) {
				got, err := hotpath(cfg, t)
				if err != nil {
					fatalf("%s: BenchmarkCachePaths: %v", t.name, err)
				}
				for _, b := range got {
					res.add("BenchmarkCachePaths/"+b.name+" (ns/op, 100k cached)", 0, t, b.nsPerOp)
				}
				logf("%s hot paths round %d: %v", t.name, r+1, got)
			}
		}
	}
	res.print(os.Stdout, trees)
}

// order is the trees in the order round r measures them: each goes first in turn.
func order(trees []*tree, r int) []*tree {
	if r%2 == 0 {
		return trees
	}
	return []*tree{trees[1], trees[0]}
}

// build builds the tree's binaries into out. The measuring sources (fill, the cache's
// path benchmark) are this tree's, copied into the other: they use only the cache's
// public API, so both are measured by the same code.
func build(cfg config, t *tree, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"bench/memory/fill/main.go", "core/cache/paths_bench_test.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		dst := filepath.Join(t.dir, f)
		if dst == abs {
			continue // this tree
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	t.fill, t.sessiond, t.cacheTst = filepath.Join(out, "fill"), filepath.Join(out, "sessiond"), filepath.Join(out, "cache.test")
	steps := [][]string{{"go", "build", "-o", t.fill, "./bench/memory/fill"}}
	if cfg.sessiond {
		steps = append(steps, []string{"go", "build", "-o", t.sessiond, "./cmd/sessiond"})
	}
	if cfg.hotpath {
		steps = append(steps, []string{"go", "test", "-c", "-o", t.cacheTst, "./core/cache"})
	}
	for _, s := range steps {
		logf("%s: %s", t.name, strings.Join(s, " "))
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = t.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// fillResult is bench/memory/fill's output.
type fillResult struct {
	N, Entries                             int
	RSSBefore, RSSAfter, HeapBefore        int64
	HeapAfter, OffHeap                     int64
	FillSec, FillGCCPU, FillCPU, FullGCSec float64
}

func fill(t *tree, n int) (fillResult, error) {
	var f fillResult
	cmd := exec.Command(t.fill, "-n", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(out, &f); err != nil {
		return f, fmt.Errorf("%v: %s", err, out)
	}
	if f.Entries != n {
		return f, fmt.Errorf("%d sessions cached, want %d", f.Entries, n)
	}
	return f, nil
}

type benchResult struct {
	name    string
	nsPerOp float64
}

func (b benchResult) String() string { return fmt.Sprintf("%s %.0f ns/op", b.name, b.nsPerOp) }

var benchLine = regexp.MustCompile(`^BenchmarkCachePaths/(\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op`)

func hotpath(cfg config, t *tree) ([]benchResult, error) {
	cmd := exec.Command(t.cacheTst, "-test.run", "^$", "-test.bench", "CachePaths", "-test.benchtime", fmt.Sprintf("%dx", cfg.benchN))
	cmd.Dir = filepath.Join(t.dir, "core/cache")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	var got []benchResult
	for line := range strings.Lines(string(out)) {
		if m := benchLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			got = append(got, benchResult{m[1], v})
		}
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("no benchmark lines in\n%s", out)
	}
	return got, nil
}

// sessiondRounds fills (or reuses) a schema with n offline sessions and measures each
// tree's sessiond on it, round by round: resident once preloaded, less resident started
// lazily.
func sessiondRounds(cfg config, tmp string, trees []*tree, n int, res results) error {
	ctx := context.Background()
	admin, err := sqlx.Open("postgres", cfg.url)
	if err != nil {
		return err
	}
	defer admin.Close()
	schema := "bench_memory_" + strings.ToLower(rand.Text()[:8])
	if cfg.schema != "" {
		schema = fmt.Sprintf("%s_%d", cfg.schema, n)
	}
	if _, err := admin.Exec("CREATE SCHEMA IF NOT EXISTS " + schema); err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", cfg.url, err)
	}
	if cfg.schema == "" {
		defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	}
	schemaURL, err := benchproc.SchemaURL(cfg.url, schema)
	if err != nil {
		return err
	}
	store := postgres.New(hclog.NewNullLogger()) // its migrations make the tables
	if err := store.Configure(ctx, spi.Config{postgres.OptURL: schemaURL, spi.HostNodeID: "bench"}); err != nil {
		return err
	}
	store.Close(ctx)
	var stored int
	if err := admin.Get(&stored, fmt.Sprintf("SELECT count(*) FROM %s.user_session", schema)); err != nil {
		return err
	}
	if stored != n {
		if stored != 0 {
			return fmt.Errorf("schema %s holds %d sessions, not %d: drop it or name another", schema, stored, n)
		}
		logf("N=%d: filling schema %s", n, schema)
		if err := fillSchema(ctx, schemaURL, n); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		if _, err := admin.Exec(fmt.Sprintf("VACUUM (ANALYZE) %s.user_session, %s.client_session", schema, schema)); err != nil {
			return err
		}
	}
	for r := range cfg.rounds {
		for _, t := range order(trees, r) {
			settle()
			lazy, err := residentOf(t, tmp, schemaURL, n, false)
			if err != nil {
				return fmt.Errorf("%s, lazy: %w", t.name, err)
			}
			settle()
			preloaded, err := residentOf(t, tmp, schemaURL, n, true)
			if err != nil {
				return fmt.Errorf("%s, preloaded: %w", t.name, err)
			}
			per := float64(preloaded-lazy) / float64(n)
			res.add("sessiond: resident B/session (preloaded less lazy)", n, t, per)
			res.add("sessiond: resident preloaded (MB)", n, t, float64(preloaded)/1e6)
			logf("%s N=%d round %d: sessiond resident %.0f MB preloaded, %.0f MB lazy: %.0f B/session", t.name, n, r+1,
				float64(preloaded)/1e6, float64(lazy)/1e6, per)
		}
	}
	return nil
}

var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"okhttp/4.12.0",
}

// fillSchema writes n offline sessions of realm "bench" with COPY, as sessiond stores an
// offline login with Revoke Refresh Token on: the offline-access note, one client session
// with its refresh-token id and its generation's notes; last used within the past 20 days
// (the realm's offline idle is 30), so none expires during a run.
func fillSchema(ctx context.Context, schemaURL string, n int) error {
	db, err := sqlx.Open("postgres", schemaURL)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UTC().Truncate(time.Microsecond)
	us, err := tx.Prepare(pq.CopyIn("user_session", "realm_id", "id", "offline", "id_hash", "user_id", "login_username",
		"ip_address", "user_agent", "auth_method", "broker_session_id", "broker_user_id", "remember_me", "state",
		"started", "last_refresh", "expires_at", "notes", "version"))
	if err != nil {
		return err
	}
	ids := make([]string, n)
	for i := range n {
		id := strings.ToLower(rand.Text())
		ids[i] = id
		last := now.Add(-time.Duration(i%(20*24*60)) * time.Minute)
		if _, err := us.Exec("bench", id, true, idHash(id), fmt.Sprintf("%08x-0002-4%03x-8%03x-%012x", i, i&0xfff, (i>>12)&0xfff, i*7919),
			fmt.Sprint("user", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), userAgents[i%len(userAgents)],
			"openid-connect", "", "", false, "LOGGED_IN", last.Add(-time.Hour), last, last.Add(30*24*time.Hour),
			`{"sessiond.offline_access": "true"}`, 1); err != nil {
			return err
		}
	}
	if _, err := us.Exec(); err != nil {
		return err
	}
	if err := us.Close(); err != nil {
		return err
	}
	cs, err := tx.Prepare(pq.CopyIn("client_session", "realm_id", "user_session_id", "offline", "client_id", "started",
		"last_refresh", "expires_at", "auth_method", "redirect_uri", "action", "scope", "notes", "current_refresh_token",
		"current_refresh_token_use_count", "previous_refresh_token", "rotated_at", "version"))
	if err != nil {
		return err
	}
	for i := range n {
		last := now.Add(-time.Duration(i%(20*24*60)) * time.Minute)
		token := strings.ToLower(rand.Text())
		notes := fmt.Sprintf(`{"sessiond.refresh-token-generation": %q, "sessiond.refresh-token-generation-start": "%d"}`, token, last.Unix())
		if _, err := cs.Exec("bench", ids[i], true, "app", last.Add(-time.Hour), last, last.Add(30*24*time.Hour),
			"openid-connect", "", "AUTHENTICATE", "openid offline_access", notes, token, 0, "", time.Time{}, 1); err != nil {
			return err
		}
	}
	if _, err := cs.Exec(); err != nil {
		return err
	}
	if err := cs.Close(); err != nil {
		return err
	}
	return tx.Commit()
}

// idHash is sqlstore's stream partition of a session id (providers/usersessions/sqlstore):
// FNV-1a 32, top bit cleared.
func idHash(id string) int64 {
	h := uint32(2166136261)
	for i := range len(id) {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int64(h & 0x7fffffff)
}

const benchRealmJSON = `{"realm": "bench", "clients": [{"clientId": "app", "secret": "app-secret", "optionalClientScopes": ["offline_access"]}]}`

// residentOf starts t's sessiond on the schema (every provider a plugin process), waits
// until it is ready and, with preload, until its log says the offline sessions are
// preloaded, rests two seconds, and returns the sessiond process's VmRSS (its plugin
// processes are apart). It stops sessiond.
func residentOf(t *tree, tmp, schemaURL string, n int, withPreload bool) (int64, error) {
	realmFile := filepath.Join(tmp, "bench-realm.json")
	if err := os.WriteFile(realmFile, []byte(benchRealmJSON), 0o600); err != nil {
		return 0, err
	}
	lb, err := benchproc.NewLoopback()
	if err != nil {
		return 0, err
	}
	args := append([]string{"start"}, lb.Args()...)
	args = append(args, "--log-format=json",
		"--realm-file="+realmFile, "--plugin-socket-dir="+tmp, "--cleanup-interval=1h",
		"--spi-user-sessions-postgres-url="+schemaURL, "--cache-max-entries="+strconv.Itoa(n),
		"--key-encryption-key="+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if withPreload {
		args = append(args, "--spi-user-sessions-infinispan-preload-offline-sessions-from-database=true")
	}
	cmd := exec.Command(t.sessiond, args...)
	cmd.Dir = tmp
	preloaded := make(chan error, 1)
	p, err := benchproc.Start(cmd, filepath.Join(tmp, "sessiond.log"), func(line []byte) { watchLog(line, preloaded) })
	if err != nil {
		return 0, err
	}
	defer p.Stop()
	if err := p.WaitReady(context.Background(), lb.ReadyURL(), 10*time.Minute, benchproc.EveryInterval(50*time.Millisecond)); err != nil {
		return 0, err
	}
	if withPreload {
		select {
		case err := <-preloaded:
			if err != nil {
				return 0, err
			}
		case <-p.Done():
			return 0, fmt.Errorf("sessiond ended during the preload (%v); the end of its log:\n%s", p.Err(), p.Tail(3000))
		case <-time.After(time.Until(p.Started.Add(10 * time.Minute))):
			return 0, errors.New("ready, but no preload log line")
		}
	}
	time.Sleep(2 * time.Second)
	m, err := benchproc.ReadMemory(p.Pid())
	return m.RSS, err
}

// watchLog reads a line of sessiond's JSON log and reports the preload's end on done
// (without waiting: the first report is the one read).
func watchLog(b []byte, done chan<- error) {
	var line map[string]any
	if json.Unmarshal(b, &line) != nil {
		return
	}
	var report error
	switch msg, _ := line["@message"].(string); {
	case msg == "offline sessions preloaded":
	case strings.HasPrefix(msg, "offline preload failed"):
		report = fmt.Errorf("the preload failed: %s", b)
	default:
		return
	}
	select {
	case done <- report:
	default:
	}
}

// settle hands this process's freed memory back before a measured run beside it.
func settle() {
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
}

// results holds each figure's values per metric, N and tree, in the order first added.
type results map[string]map[int]map[*tree][]float64

var metricOrder []string

func (r results) add(metric string, n int, t *tree, v float64) {
	if r[metric] == nil {
		r[metric] = map[int]map[*tree][]float64{}
		metricOrder = append(metricOrder, metric)
	}
	if r[metric][n] == nil {
		r[metric][n] = map[*tree][]float64{}
	}
	r[metric][n][t] = append(r[metric][n][t], v)
}

func (r results) print(w io.Writer, trees []*tree) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\tN\t%s min / median / max\t%s min / median / max\tratio of medians\t\n", trees[0].name, trees[1].name)
	for _, m := range metricOrder {
		ns := make([]int, 0, len(r[m]))
		for n := range r[m] {
			ns = append(ns, n)
		}
		slices.Sort(ns)
		for _, n := range ns {
			label := "-"
			if n > 0 {
				label = strconv.Itoa(n)
			}
			base, this := stats(r[m][n][trees[0]]), stats(r[m][n][trees[1]])
			ratio := "-"
			if base[1] != 0 {
				ratio = fmt.Sprintf("%.2f×", this[1]/base[1])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", m, label, fmtStats(base), fmtStats(this), ratio)
		}
	}
	tw.Flush()
}

func stats(v []float64) [3]float64 {
	if len(v) == 0 {
		return [3]float64{}
	}
	s := slices.Sorted(slices.Values(v))
	return [3]float64{s[0], s[len(s)/2], s[len(s)-1]}
}

func fmtStats(s [3]float64) string {
	f := func(v float64) string {
		if v >= 100 || v == 0 {
			return strconv.FormatFloat(v, 'f', 0, 64)
		}
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return f(s[0]) + " / " + f(s[1]) + " / " + f(s[2])
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "memory bench: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
