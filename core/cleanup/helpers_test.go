package cleanup

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/embedded"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const (
	minute = time.Minute
	hour   = time.Hour
	day    = 24 * time.Hour
)

// backend is a real user-sessions provider, fresh for each test.
type backend struct {
	name string
	open func(t *testing.T) usersessions.Provider
}

// backends are the three built-in stores: in memory, in a SQLite file, in PostgreSQL.
func backends() []backend {
	return []backend{
		{"memory", func(t *testing.T) usersessions.Provider { return memory.New(hclog.NewNullLogger()) }},
		{"embedded", openEmbedded},
		{"postgres", openPostgres},
	}
}

// forEachBackend runs fn as a subtest per backend, in parallel.
func forEachBackend(t *testing.T, fn func(t *testing.T, store usersessions.Provider)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func openEmbedded(t *testing.T) usersessions.Provider {
	t.Helper()
	p := embedded.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{embedded.OptPath: filepath.Join(t.TempDir(), "sessions.db")}); err != nil {
		t.Fatalf("embedded Configure: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("embedded Close: %v", err)
		}
	})
	return p
}

// openPostgres returns the postgres provider on an empty schema of the test database
// (internal/testpg), dropped when t ends. An unreachable server fails the test: it must
// never pass by not running.
func openPostgres(t *testing.T) usersessions.Provider {
	t.Helper()
	db, err := sql.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (run .ci/services, or set SESSIOND_TEST_POSTGRES_URL): %v", testpg.URL(), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "cleanup_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	p := postgres.New(hclog.NewNullLogger())
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	cfg[postgres.OptURL] = u.String()
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if err := p.Configure(cctx, cfg); err != nil {
		t.Fatalf("postgres Configure: %v", err)
	}
	// Cleanups run last-in first-out: the provider closes before its schema goes.
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("postgres Close: %v", err)
		}
	})
	return p
}

// t0 is a whole second, as JWT times are.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// clock is a controllable time source shared by the session service, the token service,
// the key manager and the cleaner.
type clock = testclock.Clock

// core is the session service over a store, as the runtime builds it, with a clock.
type core struct {
	clock  *clock
	store  usersessions.Provider
	realms *realm.Realms
	svc    *session.Service
}

func newCore(t *testing.T, store usersessions.Provider, start time.Time, realms ...*realm.Realm) *core {
	t.Helper()
	c := &core{clock: testclock.New(start), store: store}
	var err error
	if c.realms, _, err = realm.NewRealms(realms...); err != nil {
		t.Fatal(err)
	}
	keys, err := token.NewKeyManager(store, token.KeyOptions{Now: c.clock.Now, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tokens := token.New(keys, token.Options{IssuerBase: "https://sso.test", Now: c.clock.Now})
	c.svc = session.New(session.Deps{
		Store: store, Realms: c.realms, Tokens: tokens, Now: c.clock.Now,
		PersistentSessions: true, TransientSessions: true, Log: hclog.NewNullLogger(),
	})
	return c
}

// rules are the expiry rules the service applies to a realm now.
func (c *core) rules(t *testing.T, name string) expiry.Rules {
	t.Helper()
	r, ok := c.realms.Realm(name)
	if !ok {
		t.Fatalf("no realm %q", name)
	}
	return expiry.Rules{Realm: r, PersistentSessions: true}
}

// setTimeouts changes a realm's timeouts as the admin API would: a changed clone is put back.
func (c *core) setTimeouts(t *testing.T, name string, change func(*realm.Timeouts)) {
	t.Helper()
	r, ok := c.realms.Realm(name)
	if !ok {
		t.Fatalf("no realm %q", name)
	}
	next := r.Clone()
	change(&next.Timeouts)
	if _, err := c.realms.Put(next); err != nil {
		t.Fatal(err)
	}
}

func newCleaner(t *testing.T, store Store, now func() time.Time, o Options) *Cleaner {
	t.Helper()
	c, err := New(Deps{Store: store, Log: hclog.NewNullLogger(), Now: now}, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rows lists every stored row of a realm as "<id>/<online|offline>" for a user session
// and "<id>/<online|offline>/<client>" for a client session, with the stored sessions.
func rows(t *testing.T, store usersessions.Provider, realmName string) (map[string]bool, []*usersessions.UserSession) {
	t.Helper()
	out := map[string]bool{}
	var all []*usersessions.UserSession
	err := store.Stream(context.Background(), usersessions.StreamRequest{
		Filter: usersessions.Filter{RealmID: realmName, Offline: usersessions.Both}, PageSize: 500,
	}, func(page []*usersessions.UserSession) error {
		for _, us := range page {
			all = append(all, us)
			out[rowName(us, "")] = true
			for id := range us.Clients {
				out[rowName(us, id)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	return out, all
}

func rowName(us *usersessions.UserSession, clientID string) string {
	kind := "online"
	if us.Offline {
		kind = "offline"
	}
	if clientID == "" {
		return us.ID + "/" + kind
	}
	return us.ID + "/" + kind + "/" + clientID
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// diff lists what is in a and not in b.
func diff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func mustCreate(t *testing.T, store usersessions.Provider, sessions []*usersessions.UserSession) {
	t.Helper()
	for start := 0; start < len(sessions); start += 500 {
		errs, err := store.Create(context.Background(), sessions[start:min(start+500, len(sessions))])
		if err == nil {
			err = errors.Join(errs...)
		}
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
}
