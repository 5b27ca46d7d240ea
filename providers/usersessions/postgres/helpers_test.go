package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore/sqlstoretest"
	"github.com/sessiond/sessiond/spi"
)

func TestMain(m *testing.M) {
	sqlstoretest.Main(m, func(log hclog.Logger) spi.Provider { return postgres.New(log) })
}

// serverURL is the test database.
func serverURL() string { return testpg.URL() }

// admin connects to the test database for set-up. An unreachable server fails the test:
// these tests must never pass by not running.
func admin(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", serverURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (run .ci/services, or set SESSIOND_TEST_POSTGRES_URL): %v", serverURL(), err)
	}
	return db
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// withParams returns raw with the query parameters kv (name, value, …) set.
func withParams(t testing.TB, raw string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// freshSchema creates an empty schema, dropped when t ends, and returns its name and a
// URL whose search_path is it.
func freshSchema(t testing.TB, db *sqlx.DB) (string, string) {
	t.Helper()
	schema := randomName("t_")
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema, withParams(t, serverURL(), "search_path", schema)
}

// open returns a provider configured with set over the defaults, closed when t ends.
func open(t testing.TB, set spi.Config) *postgres.Provider {
	t.Helper()
	p := postgres.New(hclog.NewNullLogger())
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	for k, v := range set {
		cfg[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}
