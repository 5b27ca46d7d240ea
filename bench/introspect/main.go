// Command introspect measures, in one run, how many requests per second answer "is this
// token live?" from outside the process, over loopback HTTP with wrk at each concurrency:
//
//   - sessiond as built from this tree: RFC 7662 introspection of a live access token,
//     the client authenticated with client_secret_basic, as a resource server calls it;
//   - sessiond as built from a base commit (-base, default the commit before the
//     verified-token cache): the same request, so "N× today" is measured beside it;
//   - Ory Kratos (-kratos, a binary built from Kratos's own source; README.md says how):
//     GET /sessions/whoami with the session token of a live session.
//
// Every measurement is -d long (default 10 s); the targets take turns within each round,
// in an order that rotates from round to round, so that load from elsewhere on the machine
// falls on all of them alike. Before each measurement a sessiond target gets a fresh token
// (its access tokens live 5 minutes), and every target is asked once and must answer live.
// Any non-2xx answer during a measurement fails the run.
//
//	go run ./bench/introspect -kratos /tmp/kratos      # see -h; README.md has results
package main

import (
	"context"
	"flag"
	"fmt"
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

	"github.com/sessiond/sessiond/bench/internal/benchproc"
)

type config struct {
	kratos  string
	base    string
	current string // a sessiond binary instead of building this tree
	baseBin string // a sessiond binary instead of building -base
	wrk     string
	threads int
	conns   []int
	dur     time.Duration
	rounds  int
	port    int
	keep    bool
	floor   bool
	warmup  time.Duration
}

func main() {
	var c config
	var conns string
	flag.StringVar(&c.kratos, "kratos", "", "Ory Kratos binary built from its source (README.md); empty: measure sessiond only")
	flag.StringVar(&c.base, "base", "f855959", "commit of this repository to build the baseline sessiond from; empty: no baseline")
	flag.StringVar(&c.current, "sessiond", "", "sessiond binary to measure instead of building ./cmd/sessiond")
	flag.StringVar(&c.baseBin, "base-sessiond", "", "baseline sessiond binary instead of building -base")
	flag.StringVar(&c.wrk, "wrk", "wrk", "wrk binary (Debian: apt-get install wrk)")
	flag.IntVar(&c.threads, "t", 2, "wrk threads")
	flag.StringVar(&conns, "c", "16,64", "concurrencies (open connections), comma separated")
	flag.DurationVar(&c.dur, "d", 10*time.Second, "length of one measurement")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; each measures every target at every concurrency once")
	flag.IntVar(&c.port, "port", 18480, "first of the loopback ports the targets listen on (uses 5 from here)")
	flag.BoolVar(&c.floor, "floor", true, "also measure a minimal net/http handler of the same request (the ceiling on this machine)")
	flag.DurationVar(&c.warmup, "warmup", 10*time.Second, "unmeasured load on each target before the first round (Kratos needs a few seconds to reach its pace)")
	flag.BoolVar(&c.keep, "keep", false, "keep the working directory (binaries, logs, Kratos's database)")
	flag.Parse()
	for _, s := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "introspect: -c %q: want positive whole numbers\n", conns)
			os.Exit(2)
		}
		c.conns = append(c.conns, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "introspect:", err)
		os.Exit(1)
	}
}

// target is one server under load.
type target struct {
	name   string
	url    string
	script string                      // wrk Lua script
	prime  func(context.Context) error // before each measurement: fresh credentials, one live answer
	stop   func()
}

// sample is one measurement.
type sample struct {
	round, conns int
	target       string
	rate         float64
}

func run(ctx context.Context, c config) error {
	if _, err := exec.LookPath(c.wrk); err != nil {
		return fmt.Errorf("wrk not found (%v): install it (Debian, Ubuntu: apt-get install wrk) or pass -wrk", err)
	}
	dir, err := os.MkdirTemp("", "bench-introspect-")
	if err != nil {
		return err
	}
	if c.keep {
		fmt.Println("working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root, err := benchproc.RepoRoot(ctx)
	if err != nil {
		return err
	}
	realmFile := filepath.Join(root, "docs", "quickstart-realm.json")

	var targets []*target
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	current := c.current
	if current == "" {
		fmt.Println("building ./cmd/sessiond …")
		current = filepath.Join(dir, "sessiond")
		if err := benchproc.Build(ctx, root, current); err != nil {
			return err
		}
	}
	baseBin := c.baseBin
	if baseBin == "" && c.base != "" {
		fmt.Printf("building sessiond at %s (git archive) …\n", c.base)
		baseBin = filepath.Join(dir, "sessiond-base")
		if err := benchproc.BuildAt(ctx, root, c.base, baseBin); err != nil {
			return err
		}
	}
	t, err := startSessiond(ctx, "sessiond", current, realmFile, filepath.Join(dir, "current"), c.port)
	if err != nil {
		return err
	}
	targets = append(targets, t)
	if baseBin != "" {
		name := "sessiond " + c.base
		if c.baseBin != "" {
			name = "sessiond (base)"
		}
		t, err := startSessiond(ctx, name, baseBin, realmFile, filepath.Join(dir, "base"), c.port+1)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if c.kratos != "" {
		t, err := startKratos(ctx, c.kratos, filepath.Join(dir, "kratos"), c.port+2, c.port+3)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	} else {
		fmt.Println("no -kratos: Kratos is not measured (README.md says how to build it)")
	}
	if c.floor {
		t, err := startFloor(filepath.Join(dir, "floor"), c.port+4)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}

	fmt.Printf("\n%d rounds × %v × %d targets × c=%v, wrk -t%d; load average %s\n", c.rounds, c.dur, len(targets), c.conns, c.threads, benchproc.LoadAvg())
	if c.warmup > 0 {
		warm := c
		warm.dur = c.warmup
		for _, t := range targets {
			if err := t.prime(ctx); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if _, err := load(ctx, warm, t, slices.Max(c.conns)); err != nil {
				return fmt.Errorf("%s, warm-up: %w", t.name, err)
			}
		}
		fmt.Printf("  warmed up: %v of load on each target, not measured\n", c.warmup)
	}
	var samples []sample
	for r := range c.rounds {
		for _, n := range c.conns {
			for i := range targets {
				t := targets[(i+r)%len(targets)] // rotate the order from round to round
				if err := t.prime(ctx); err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				rate, err := load(ctx, c, t, n)
				if err != nil {
					return fmt.Errorf("%s, c=%d: %w", t.name, n, err)
				}
				fmt.Printf("  round %d  c=%-3d %-18s %9.0f req/s   (load average %s)\n", r+1, n, t.name, rate, benchproc.LoadAvg())
				samples = append(samples, sample{round: r, conns: n, target: t.name, rate: rate})
			}
		}
	}
	report(os.Stdout, c, targets, samples)
	return nil
}

// report prints min/median/max of each target and of the ratios of each pair within the
// same round (both measured within the same minute or so).
func report(out *os.File, c config, targets []*target, samples []sample) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(out)
	fmt.Fprintln(tw, "target\tc\tmin\tmedian\tmax\treq/s\t")
	for _, t := range targets {
		for _, n := range c.conns {
			var rs []float64
			for _, s := range samples {
				if s.target == t.name && s.conns == n {
					rs = append(rs, s.rate)
				}
			}
			lo, med, hi := stats(rs)
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t\t\n", t.name, n, lo, med, hi)
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
	fmt.Fprintln(tw, "ratio (same round)\tc\tmin\tmedian\tmax\t")
	for i, a := range targets {
		for _, b := range targets[i+1:] {
			for _, n := range c.conns {
				var rs []float64
				for r := range c.rounds {
					x, y := rateOf(samples, r, n, a.name), rateOf(samples, r, n, b.name)
					if x > 0 && y > 0 {
						rs = append(rs, x/y)
					}
				}
				lo, med, hi := stats(rs)
				fmt.Fprintf(tw, "%s / %s\t%d\t%.2f×\t%.2f×\t%.2f×\t\n", a.name, b.name, n, lo, med, hi)
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "\nload average at the end %s\n", benchproc.LoadAvg())
}

func rateOf(samples []sample, round, conns int, target string) float64 {
	for _, s := range samples {
		if s.round == round && s.conns == conns && s.target == target {
			return s.rate
		}
	}
	return 0
}

func stats(xs []float64) (lo, med, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	xs = slices.Sorted(slices.Values(xs))
	med = xs[len(xs)/2]
	if len(xs)%2 == 0 {
		med = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return xs[0], med, xs[len(xs)-1]
}
