// Command refresh measures refreshes per second of sessiond as an operator runs it
// (`sessiond start`, the PostgreSQL provider as a plugin process, durable commits) under
// HTTP load, beside `pgbench -N` against the same server, in interleaved rounds; and, with
// -soak, how a long run at one concurrency holds up and what it leaves in the tables.
//
//	go run ./bench/refresh -base f855959       # see README.md
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
	"github.com/sessiond/sessiond/internal/testpg"
)

type config struct {
	url        string
	ownServer  bool
	base       string
	before     string
	sessiond   string
	conc       []int
	rotation   []string
	rounds     int
	dur        time.Duration
	warmup     time.Duration
	perCaller  int
	inProcess  bool
	soak       time.Duration
	autovacuum []string
	pgbench    string
	skipPg     bool
	keepLogs   bool
	noAfter    bool
}

// variant is one sessiond build and how it runs its store.
type variant struct {
	label     string
	bin       string
	inProcess bool
}

func main() {
	var c config
	var conc, rot, av string
	flag.StringVar(&c.url, "url", benchURL(), "PostgreSQL URL (a superuser: the tool creates schemas, and the database if missing); each sessiond start gets a fresh schema")
	flag.BoolVar(&c.ownServer, "own-server", false, "create a throwaway PostgreSQL cluster with the default configuration (pg_createcluster) instead of -url")
	flag.StringVar(&c.base, "base", "", "also measure the tree at this commit (built from a git archive), as \"before\"")
	flag.StringVar(&c.before, "before", "", "with -base: a sessiond binary already built from that commit, instead of building it")
	flag.StringVar(&c.sessiond, "sessiond", "", "sessiond binary to measure as \"after\" (default: go build ./cmd/sessiond of this tree)")
	flag.StringVar(&conc, "c", "16,64", "concurrent callers (also pgbench clients), comma-separated")
	flag.StringVar(&rot, "rotation", "off,on", "refresh token rotation (Revoke Refresh Token) off, on, or both")
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved rounds")
	flag.DurationVar(&c.dur, "d", 10*time.Second, "measured time of each load and pgbench run")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each measured run")
	flag.IntVar(&c.perCaller, "sessions-per-caller", 16, "sessions each caller refreshes in turn (c × this sessions per realm)")
	flag.BoolVar(&c.inProcess, "in-process", false, "also measure this tree with the provider in-process (the plugin boundary's cost)")
	flag.DurationVar(&c.soak, "soak", 0, "soak mode: one run of this long at the first -c and -rotation, per build and -autovacuum setting")
	flag.StringVar(&av, "autovacuum", "default,off", "soak mode: autovacuum on the session tables as the server sets it (default), or off (ALTER TABLE … SET (autovacuum_enabled = false))")
	flag.StringVar(&c.pgbench, "pgbench", "", "pgbench binary (default: PATH, then /usr/lib/postgresql/*/bin)")
	flag.BoolVar(&c.skipPg, "skip-pgbench", false, "no pgbench rounds")
	flag.BoolVar(&c.noAfter, "only-before", false, "with -base: measure the base commit alone (e.g. a soak of the old layout)")
	flag.BoolVar(&c.keepLogs, "keep-logs", false, "keep sessiond's logs (the temporary directory is printed)")
	flag.Parse()
	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatalf("-c %q: want positive integers", conc)
		}
		c.conc = append(c.conc, n)
	}
	c.rotation = strings.Split(rot, ",")
	for _, r := range c.rotation {
		if r != "off" && r != "on" {
			fatalf("-rotation %q: want off, on or off,on", rot)
		}
	}
	c.autovacuum = strings.Split(av, ",")
	for _, a := range c.autovacuum {
		if a != "default" && a != "off" {
			fatalf("-autovacuum %q: want default, off or default,off", av)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err := run(ctx, c)
	fmt.Printf("load average at the end: %s; total %s\n", benchproc.LoadAvg(), time.Since(start).Round(time.Second))
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "refresh: "+format+"\n", args...)
	os.Exit(1)
}

func run(ctx context.Context, c config) error {
	work, err := os.MkdirTemp("", "bench-refresh-")
	if err != nil {
		return err
	}
	if c.keepLogs {
		fmt.Printf("logs in %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	if c.ownServer {
		s, err := newOwnServer(ctx)
		if err != nil {
			return err
		}
		defer s.drop()
		c.url = s.url()
		fmt.Printf("own PostgreSQL cluster %s/%s on port %d (default configuration)\n", s.version, s.name, s.port)
	}
	if err := ensureDatabase(ctx, c.url); err != nil {
		return err
	}
	admin, err := sqlx.Open("postgres", c.url)
	if err != nil {
		return err
	}
	defer admin.Close()
	admin.SetMaxOpenConns(2)
	var version string
	if err := admin.GetContext(ctx, &version, "SELECT version()"); err != nil {
		return fmt.Errorf("connect %s: %w", c.url, err)
	}
	settings := map[string]string{}
	for _, k := range []string{"synchronous_commit", "fsync", "autovacuum", "shared_buffers", "max_connections"} {
		var v string
		if err := admin.GetContext(ctx, &v, "SELECT current_setting($1)", k); err != nil {
			return err
		}
		settings[k] = v
	}
	if settings["synchronous_commit"] != "on" || settings["fsync"] != "on" {
		return fmt.Errorf("synchronous_commit=%s fsync=%s: a refresh would not be durable when acknowledged; refusing to measure", settings["synchronous_commit"], settings["fsync"])
	}
	fmt.Printf("%s\nserver: synchronous_commit=%s fsync=%s autovacuum=%s shared_buffers=%s max_connections=%s\n", version,
		settings["synchronous_commit"], settings["fsync"], settings["autovacuum"], settings["shared_buffers"], settings["max_connections"])
	fmt.Printf("load average at start: %s\n", benchproc.LoadAvg())

	root, err := benchproc.RepoRoot(ctx)
	if err != nil {
		return err
	}
	var variants []variant
	if c.base != "" {
		bin := c.before
		if bin == "" {
			bin = filepath.Join(work, "sessiond-before")
			if err := benchproc.BuildAt(ctx, root, c.base, bin); err != nil {
				return err
			}
		}
		variants = append(variants, variant{label: "before " + c.base, bin: bin})
	}
	after := c.sessiond
	if c.noAfter {
		if len(variants) == 0 {
			return fmt.Errorf("-only-before needs -base")
		}
		return measure(ctx, c, admin, work, variants)
	}
	if after == "" {
		after = filepath.Join(work, "sessiond-after")
		if err := benchproc.Build(ctx, root, after); err != nil {
			return err
		}
	}
	head, _ := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	variants = append(variants, variant{label: "after " + strings.TrimSpace(string(head)), bin: after})
	if c.inProcess {
		variants = append(variants, variant{label: "after, in-process", bin: after, inProcess: true})
	}
	return measure(ctx, c, admin, work, variants)
}

// measure runs the rounds, or the soaks, of the variants.
func measure(ctx context.Context, c config, admin *sqlx.DB, work string, variants []variant) error {
	realms, err := realmFile(work)
	if err != nil {
		return err
	}
	var pg *pgbench
	if !c.skipPg && c.soak == 0 {
		path, err := benchproc.FindPgbench(c.pgbench)
		if err != nil {
			return err
		}
		if pg, err = newPgbench(ctx, path, admin, c.url, "sessiond_bench"); err != nil {
			return err
		}
	}
	b := &bench{c: c, admin: admin, realms: realms, work: work, pg: pg}
	if c.soak > 0 {
		return b.soakAll(ctx, variants)
	}
	return b.rounds(ctx, variants)
}

type bench struct {
	c      config
	admin  *sqlx.DB
	realms string
	work   string
	pg     *pgbench
	seq    int
}

// cell is one measured load: a variant at a concurrency and rotation setting, one round.
type cell struct {
	variant  string
	rotation string
	c, round int
	rate     float64
	cpuPerOp float64 // ms of sessiond's and its plugin's CPU per refresh
	hot      float64 // % of the session tables' updates that were HOT
	failed   int64
}

// session is one sessiond start on a fresh schema, with its sessions opened.
type session struct {
	d      *daemon
	schema string
	toks   map[string][]string // realm → refresh tokens
}

func (b *bench) startOn(ctx context.Context, v variant, callers int, autovacuumOff bool) (*session, error) {
	b.seq++
	schema := fmt.Sprintf("bench_refresh_%d_%d", time.Now().Unix(), b.seq)
	if _, err := b.admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, err
	}
	label := fmt.Sprintf("%02d-%s", b.seq, strings.Fields(v.label)[0])
	d, err := startSessiond(ctx, v.bin, b.realms, b.c.url, schema, b.work, label, v.inProcess)
	if err != nil {
		b.dropSchema(schema)
		return nil, err
	}
	s := &session{d: d, schema: schema, toks: map[string][]string{}}
	if autovacuumOff {
		if _, err := b.admin.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %[1]s.user_session SET (autovacuum_enabled = false); ALTER TABLE %[1]s.client_session SET (autovacuum_enabled = false)", schema)); err != nil {
			b.stopSession(s)
			return nil, err
		}
	}
	hc := client(callers)
	for _, rot := range b.c.rotation {
		realm := "rot-" + rot
		toks, err := open(ctx, hc, d, realm, callers*b.c.perCaller, 16)
		if err != nil {
			b.stopSession(s)
			return nil, fmt.Errorf("%s: %w (log %s)", v.label, err, d.Log)
		}
		s.toks[realm] = toks
	}
	// What autovacuum's ANALYZE gives a server in steady state: plans for the batch
	// statements by primary key, not by a guess over empty tables.
	if _, err := b.admin.ExecContext(ctx, fmt.Sprintf("ANALYZE %[1]s.user_session; ANALYZE %[1]s.client_session", schema)); err != nil {
		b.stopSession(s)
		return nil, err
	}
	return s, nil
}

func (b *bench) stopSession(s *session) {
	s.d.Stop()
	b.dropSchema(s.schema)
}

func (b *bench) dropSchema(schema string) {
	b.admin.Exec("DROP SCHEMA " + schema + " CASCADE") //nolint:errcheck // best effort
}

func (b *bench) updates(ctx context.Context, schema string) (upd, hot int64) {
	time.Sleep(1200 * time.Millisecond) // backends report their counts at their next idle moment (at most 1 s)
	st, _ := stats(ctx, b.admin, schema)
	for _, t := range st {
		upd += t.Upd
		hot += t.HotUpd
	}
	return upd, hot
}

// rounds runs the interleaved rounds: per round and concurrency, pgbench, then each
// variant (in an order that moves by one each round) with each rotation setting.
func (b *bench) rounds(ctx context.Context, variants []variant) error {
	var cells []cell
	tps := map[[2]int]float64{} // {c, round} → pgbench tps
	for round := 1; round <= b.c.rounds; round++ {
		for _, callers := range b.c.conc {
			if b.pg != nil {
				t, err := b.pg.tps(ctx, callers, b.c.dur)
				if err != nil {
					return err
				}
				tps[[2]int{callers, round}] = t
				fmt.Printf("round %d c=%-3d %-28s %8.0f tps\n", round, callers, "pgbench -N", t)
			}
			for k := range variants {
				v := variants[(k+round-1)%len(variants)]
				s, err := b.startOn(ctx, v, callers, false)
				if err != nil {
					return err
				}
				hc := client(callers)
				for _, rot := range b.c.rotation {
					realm := "rot-" + rot
					upd0, hot0 := b.updates(ctx, s.schema)
					var cpu0 float64
					r := refresh(ctx, hc, s.d, realm, s.toks[realm], callers, b.c.warmup, b.c.dur, func() { cpu0 = cpuSeconds(s.d.pids()) }, nil)
					cpu := cpuSeconds(s.d.pids()) - cpu0
					upd1, hot1 := b.updates(ctx, s.schema)
					ce := cell{variant: v.label, rotation: rot, c: callers, round: round, rate: r.rate(), failed: r.failed,
						cpuPerOp: 1000 * cpu / float64(max(1, r.ok))}
					if upd1 > upd0 {
						ce.hot = 100 * float64(hot1-hot0) / float64(upd1-upd0)
					}
					cells = append(cells, ce)
					fmt.Printf("round %d c=%-3d %-28s rotation %-3s %8.0f refreshes/s  %5.2f ms CPU each (sessiond+plugins)  HOT %5.1f%%  failed %d %s\n",
						round, callers, v.label, rot, ce.rate, ce.cpuPerOp, ce.hot, r.failed, r.firstErr)
					if ctx.Err() != nil {
						b.stopSession(s)
						return ctx.Err()
					}
				}
				b.stopSession(s)
			}
		}
	}
	b.summary(cells, tps, variants)
	return nil
}

func mmm(xs []float64) (lo, med, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

func (b *bench) summary(cells []cell, tps map[[2]int]float64, variants []variant) {
	fmt.Printf("\nmin / median / max over %d interleaved rounds of %s (ratios are per round: the variant's refreshes/s over the same round's figure)\n", b.c.rounds, b.c.dur)
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "c\trotation\tvariant\trefreshes/s\t÷ pgbench -N tps\t÷ first variant\tCPU ms/refresh\tHOT %\t")
	for _, callers := range b.c.conc {
		var pgs []float64
		for round := 1; round <= b.c.rounds; round++ {
			if t, ok := tps[[2]int{callers, round}]; ok {
				pgs = append(pgs, t)
			}
		}
		if len(pgs) > 0 {
			lo, med, hi := mmm(pgs)
			fmt.Fprintf(tw, "%d\t\tpgbench -N (tps)\t%.0f / %.0f / %.0f\t\t\t\t\t\n", callers, lo, med, hi)
		}
		for _, rot := range b.c.rotation {
			for _, v := range variants {
				var rates, vsPg, vsFirst, cpu, hot []float64
				for _, ce := range cells {
					if ce.c != callers || ce.rotation != rot || ce.variant != v.label {
						continue
					}
					rates = append(rates, ce.rate)
					cpu = append(cpu, ce.cpuPerOp)
					hot = append(hot, ce.hot)
					if t := tps[[2]int{callers, ce.round}]; t > 0 {
						vsPg = append(vsPg, ce.rate/t)
					}
					for _, f := range cells {
						if f.c == callers && f.rotation == rot && f.round == ce.round && f.variant == variants[0].label && f.rate > 0 {
							vsFirst = append(vsFirst, ce.rate/f.rate)
						}
					}
				}
				row := func(xs []float64, format string) string {
					if len(xs) == 0 {
						return "-"
					}
					lo, med, hi := mmm(xs)
					return fmt.Sprintf(format+" / "+format+" / "+format, lo, med, hi)
				}
				_, cpuMed, _ := mmm(cpu)
				_, hotMed, _ := mmm(hot)
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.1f\t\n", callers, rot, v.label, row(rates, "%.0f"),
					row(vsPg, "%.2f×"), row(vsFirst, "%.2f×"), cpuMed, hotMed)
			}
		}
	}
	tw.Flush()
}

// soakAll runs one soak per variant and autovacuum setting, in turn.
func (b *bench) soakAll(ctx context.Context, variants []variant) error {
	callers, rot := b.c.conc[0], b.c.rotation[0]
	type result struct {
		label        string
		first, last  float64
		before, done []tableStats
	}
	var results []result
	for _, av := range b.c.autovacuum {
		for _, v := range variants {
			label := fmt.Sprintf("%s, autovacuum %s", v.label, av)
			fmt.Printf("\nsoak: %s, c=%d, rotation %s, %s\n", label, callers, rot, b.c.soak)
			s, err := b.startOn(ctx, v, callers, av == "off")
			if err != nil {
				return err
			}
			st0, _ := stats(ctx, b.admin, s.schema)
			for _, t := range st0 {
				fmt.Printf("  0:00  %s\n", t)
			}
			hc := client(callers)
			realm := "rot-" + rot
			var minute int64
			r := refresh(ctx, hc, s.d, realm, s.toks[realm], callers, b.c.warmup, b.c.soak, nil, func(sec int, n int64) {
				minute += n
				if sec%60 == 0 {
					st, err := stats(ctx, b.admin, s.schema)
					fmt.Printf("  %d:00  %8.0f refreshes/s over the minute  load %s\n", sec/60, float64(minute)/60, benchproc.LoadAvg())
					if err == nil {
						for _, t := range st {
							fmt.Printf("        %s\n", t)
						}
					}
					minute = 0
				}
			})
			time.Sleep(1200 * time.Millisecond)
			st1, _ := stats(ctx, b.admin, s.schema)
			res := result{label: label, before: st0, done: st1}
			if n := len(r.perSecond); n >= 120 {
				res.first, res.last = sum(r.perSecond[:60])/60, sum(r.perSecond[n-60:])/60
			}
			results = append(results, res)
			fmt.Printf("  failed %d %s\n", r.failed, r.firstErr)
			b.stopSession(s)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	fmt.Printf("\nsoak summary (c=%d, rotation %s, %s each; %d sessions per run)\n", callers, rot, b.c.soak, callers*b.c.perCaller)
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tfirst minute /s\tlast minute /s\tlast ÷ first\ttables at the end (heap + indexes, dead rows)\t")
	for _, r := range results {
		var tables []string
		for _, t := range r.done {
			tables = append(tables, fmt.Sprintf("%s %s+%s dead %d", t.Table, size(t.Heap), size(t.Indexes), t.Dead))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%s\t\n", r.label, r.first, r.last, r.last/cmp.Or(r.first, 1), strings.Join(tables, "; "))
	}
	tw.Flush()
	return nil
}

func sum(xs []int64) float64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return float64(s)
}

// benchURL is the test server's database sessiond_bench (pgbench's too): a database of
// its own, so that the long transactions of tests running against the same server (in
// their database) do not hold back the pruning of the session tables' dead row versions.
func benchURL() string {
	u, err := url.Parse(testpg.URL())
	if err != nil {
		return testpg.URL()
	}
	u.Path = "/sessiond_bench"
	return u.String()
}
