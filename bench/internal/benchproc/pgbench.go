package benchproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// FindPgbench is the pgbench to run: flagPath's, the one on PATH, or the newest major
// version's under /usr/lib/postgresql (Debian's layout).
func FindPgbench(flagPath string) (string, error) {
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
		return newestMajor(found), nil
	}
	return "", errors.New(`pgbench not found (not on PATH, not in /usr/lib/postgresql/*/bin).
  The baseline of this benchmark is "pgbench -N" on the same server. Install pgbench:
    Debian/Ubuntu:  apt-get install postgresql-contrib   (or the server package postgresql-<major>, which ships it)
    RHEL/Fedora:    dnf install postgresql-contrib
    macOS:          brew install postgresql
  or pass -pgbench /path/to/pgbench, or run without it: -skip-pgbench`)
}

// newestMajor is the path of /usr/lib/postgresql/<major>/bin/… with the highest major
// as a number (9.6 is older than 15, though it sorts after it as text).
func newestMajor(paths []string) string {
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	return slices.MaxFunc(paths, func(a, b string) int {
		switch ma, mb := major(a), major(b); {
		case ma < mb:
			return -1
		case ma > mb:
			return 1
		}
		return 0
	})
}

// Pgbench runs pgbench against one database of a server.
type Pgbench struct {
	Path string
	Env  []string // PG* variables for the server and database
}

// NewPgbench is pgbench at path pointed at database db of the server rawURL names, by
// libpq's environment variables (pgbench takes no URL).
func NewPgbench(path, rawURL, db string) (*Pgbench, error) {
	env, err := pgEnv(rawURL, db)
	if err != nil {
		return nil, err
	}
	return &Pgbench{Path: path, Env: append(os.Environ(), env...)}, nil
}

func pgEnv(rawURL, db string) ([]string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL URL: %w", err)
	}
	var env []string
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

// Run runs pgbench with args and returns its output (standard output and error).
func (p *Pgbench) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.Path, args...)
	cmd.Env = p.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %v: %w\n%s", p.Path, args, err, out.String())
	}
	return out.String(), nil
}

// EnsureDatabase creates database name on admin's server if it does not exist (pgbench
// runs in a database of its own, which the tools make on first use).
func EnsureDatabase(ctx context.Context, admin *sqlx.DB, name string) error {
	var exists bool
	if err := admin.GetContext(ctx, &exists, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name); err != nil {
		return fmt.Errorf("looking for database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// SchemaURL is rawURL with search_path set to schema: a bench's throwaway schema in the
// server's database.
func SchemaURL(rawURL, schema string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
