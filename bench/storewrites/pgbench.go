package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// findPgbench returns the pgbench to run: the flag's, the one on PATH, or the newest
// under /usr/lib/postgresql (Debian's layout).
func findPgbench(flagPath string) (string, error) {
	if flagPath != "" {
		p, err := exec.LookPath(flagPath)
		if err != nil {
			return "", fmt.Errorf("-pgbench %s: %w", flagPath, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench"); len(found) > 0 {
		slices.SortFunc(found, func(a, b string) int { return pgMajor(a) - pgMajor(b) })
		return found[len(found)-1], nil
	}
	return "", errors.New(`pgbench not found (not on PATH, not in /usr/lib/postgresql/*/bin).
  The baseline (b) of this benchmark is "pgbench -N" on the same server. Install pgbench:
    Debian/Ubuntu:  apt-get install postgresql-contrib   (or the server package postgresql-<major>, which ships it)
    RHEL/Fedora:    dnf install postgresql-contrib
    macOS:          brew install postgresql
  or pass -pgbench /path/to/pgbench, or run without it: -skip-pgbench`)
}

func pgMajor(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

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
	var exists bool
	if err := admin.GetContext(ctx, &exists, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", c.pgbenchDB); err != nil {
		return nil, err
	}
	if !exists {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(c.pgbenchDB)); err != nil {
			return nil, fmt.Errorf("create database %s for pgbench: %w", c.pgbenchDB, err)
		}
	}
	env, err := pgEnv(c.url, c.pgbenchDB)
	if err != nil {
		return nil, err
	}
	pgbench := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil {
			return out.String(), fmt.Errorf("%s %v: %w\n%s", path, args, err, out.String())
		}
		return out.String(), nil
	}
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

// pgEnv is the environment that points pgbench at the server of rawURL, database db.
func pgEnv(rawURL, db string) ([]string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	env := os.Environ()
	set := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	set("PGHOST", u.Hostname())
	set("PGPORT", u.Port())
	set("PGUSER", u.User.Username())
	if pw, ok := u.User.Password(); ok {
		set("PGPASSWORD", pw)
	}
	set("PGSSLMODE", u.Query().Get("sslmode"))
	set("PGDATABASE", db)
	return env, nil
}
