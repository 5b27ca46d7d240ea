package main

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
)

type pgbenchResult struct {
	tx      int64
	tps     float64
	elapsed time.Duration
}

var (
	tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	txRe  = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

// runPgbench creates c.pgbenchDB if missing, initialises it with `pgbench -i -s 1` and
// runs `pgbench -N -c <callers> -j <jobs> -T <d>` on it.
func runPgbench(ctx context.Context, path string, admin *sqlx.DB, c config) (*pgbenchResult, error) {
	if err := benchproc.EnsureDatabase(ctx, admin, c.pgbenchDB); err != nil {
		return nil, fmt.Errorf("the database for pgbench: %w", err)
	}
	pg, err := benchproc.NewPgbench(path, c.url, c.pgbenchDB)
	if err != nil {
		return nil, err
	}
	pgbench := func(args ...string) (string, error) { return pg.Run(ctx, args...) }
	if _, err := pgbench("-i", "-s", "1", "-q"); err != nil {
		return nil, err
	}
	secs := strconv.Itoa(max(1, int(math.Ceil(c.dur.Seconds()))))
	t0 := time.Now()
	out, err := pgbench("-N", "-c", strconv.Itoa(c.callers), "-j", strconv.Itoa(c.pgbenchJobs), "-T", secs)
	if err != nil {
		return nil, err
	}
	r := &pgbenchResult{elapsed: time.Since(t0)}
	m := tpsRe.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no tps in pgbench's output (with a short -d its %d connections may not all open in time):\n%s", c.callers, out)
	}
	r.tps, _ = strconv.ParseFloat(m[1], 64)
	if m := txRe.FindStringSubmatch(out); m != nil {
		r.tx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if d, err := strconv.Atoi(secs); err == nil && r.tx > 0 {
		r.elapsed = time.Duration(d) * time.Second
	}
	return r, nil
}
