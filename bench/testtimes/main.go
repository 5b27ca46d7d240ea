// Command testtimes says where the time of a test run goes: it reads `go test -json`
// output and prints, per package and per top-level test, the elapsed seconds of each run;
// given runs of a baseline and of a change, min/median/max of each side and their ratio.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// event is the part of a test2json event this tool reads.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
}

// result is one package's or one top-level test's outcome in one run.
type result struct {
	action  string // pass, fail or skip
	elapsed float64
}

// run is one `go test -json` output: package and top-level test results by name
// ("pkg" for a package, "pkg.Test" for a test).
type run map[string]result

func read(r io.Reader, prefix string) (run, error) {
	out := run{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // go test's own lines (build output) between the events
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		if e.Action != "pass" && e.Action != "fail" && e.Action != "skip" || strings.Contains(e.Test, "/") {
			continue
		}
		name := strings.TrimPrefix(e.Package, prefix)
		if e.Test != "" {
			name += "." + e.Test
		}
		out[name] = result{e.Action, e.Elapsed}
	}
	return out, sc.Err()
}

func readFile(path, prefix string) (run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := read(f, prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// spread is min, median and max of the runs that have name, and how many failed.
type spread struct {
	min, med, max float64
	n, failed     int
}

func spreadOf(runs []run, name string) spread {
	var xs []float64
	var s spread
	for _, r := range runs {
		if res, ok := r[name]; ok {
			xs = append(xs, res.elapsed)
			if res.action == "fail" {
				s.failed++
			}
		}
	}
	if len(xs) == 0 {
		return s
	}
	sort.Float64s(xs)
	s.n, s.min, s.max = len(xs), xs[0], xs[len(xs)-1]
	if len(xs)%2 == 1 {
		s.med = xs[len(xs)/2]
	} else {
		s.med = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return s
}

func (s spread) String() string {
	if s.n == 0 {
		return fmt.Sprintf("%26s", "-")
	}
	f := ""
	if s.failed > 0 {
		f = fmt.Sprintf(" %dF", s.failed)
	}
	return fmt.Sprintf("%7.1f %7.1f %7.1f%s", s.min, s.med, s.max, f)
}

// report prints a row per package, then per test, slowest baseline median first; with
// changed runs, their spread and the ratio of medians (changed / baseline).
func report(w io.Writer, base, changed []run, top int) {
	names := map[string]bool{}
	for _, r := range slices.Concat(base, changed) {
		for n := range r {
			names[n] = true
		}
	}
	var pkgs, tests []string
	for n := range names {
		if i := strings.LastIndex(n, "."); i >= 0 && strings.HasPrefix(n[i+1:], "Test") || strings.Contains(n, ".Fuzz") {
			tests = append(tests, n)
		} else {
			pkgs = append(pkgs, n)
		}
	}
	key := func(n string) float64 { return max(spreadOf(base, n).med, spreadOf(changed, n).med) }
	byTime := func(a, b string) int {
		if c := -cmpFloat(key(a), key(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	}
	slices.SortFunc(pkgs, byTime)
	slices.SortFunc(tests, byTime)
	fmt.Fprintf(w, "%-70s %-26s", "elapsed s (min median max)", fmt.Sprintf("baseline ×%d", len(base)))
	if len(changed) > 0 {
		fmt.Fprintf(w, " %-26s %s", fmt.Sprintf("changed ×%d", len(changed)), "ratio")
	}
	fmt.Fprintln(w)
	row := func(n string) {
		b := spreadOf(base, n)
		fmt.Fprintf(w, "%-70s %s", n, b)
		if len(changed) > 0 {
			c := spreadOf(changed, n)
			ratio := "-"
			if b.n > 0 && c.n > 0 && b.med > 0 {
				ratio = fmt.Sprintf("%.2f", c.med/b.med)
			}
			fmt.Fprintf(w, " %s %s", c, ratio)
		}
		fmt.Fprintln(w)
	}
	for _, n := range pkgs {
		row(n)
	}
	fmt.Fprintln(w)
	for i, n := range tests {
		if top > 0 && i == top {
			fmt.Fprintf(w, "(%d more tests)\n", len(tests)-top)
			break
		}
		row(n)
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func main() {
	prefix := flag.String("prefix", "github.com/sessiond/sessiond/", "trimmed from package paths")
	top := flag.Int("top", 40, "tests shown (0: all)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testtimes [-top N] BASE.json... [-- CHANGED.json...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	var base, changed []run
	side := &base
	for _, a := range flag.Args() {
		if a == "--" {
			side = &changed
			continue
		}
		r, err := readFile(a, *prefix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtimes:", err)
			os.Exit(1)
		}
		*side = append(*side, r)
	}
	if len(base) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	report(os.Stdout, base, changed, *top)
}
