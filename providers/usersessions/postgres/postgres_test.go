package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore/sqlstoretest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

func TestConformance(t *testing.T) {
	db := admin(t)
	t.Run("in-process", func(t *testing.T) {
		t.Parallel()
		// A fresh schema per check, migrated by the provider itself.
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			_, u := freshSchema(t, db)
			return open(t, spi.Config{postgres.OptURL: u})
		})
	})
	t.Run("plugin", func(t *testing.T) {
		t.Parallel()
		// One plugin process for the whole suite, since a process start costs more than a
		// check; each check gets it with every table emptied.
		schema, u := freshSchema(t, db)
		p := sqlstoretest.StartPlugin(t, postgres.ID, spi.Config{postgres.OptURL: u})
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			if _, err := db.Exec("TRUNCATE " + schema + ".user_session, " + schema + ".client_session, " +
				schema + ".record, " + schema + ".delivery"); err != nil {
				t.Fatal(err)
			}
			return p
		})
	})
}

func testSession(id string) *usersessions.UserSession {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &usersessions.UserSession{
		ID: id, RealmID: "r1", UserID: "u1", State: usersessions.LoggedIn,
		Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour),
		Clients: map[string]*usersessions.ClientSession{"app": {ClientID: "app", Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour)}},
	}
}

func mustCreate(t *testing.T, p usersessions.Provider, ss ...*usersessions.UserSession) {
	t.Helper()
	errs, err := p.Create(t.Context(), ss)
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// TestDatabaseGoingAway takes PostgreSQL away from a provider in two ways: its backends
// are terminated (what a server restart does to open connections), and new connections
// are refused too (the server is down). Calls fail with spi.ErrUnavailable, the change feed
// breaks the same way, and the provider serves again by itself once the server is back.
func TestDatabaseGoingAway(t *testing.T) {
	t.Parallel()
	db := admin(t)
	_, u := freshSchema(t, db)
	proxy := newProxy(t, u)
	app := randomName("sessiond_test_")
	p := open(t, spi.Config{postgres.OptURL: withParams(t, proxy.url, "application_name", app)})
	mustCreate(t, p, testSession("before"))
	key := usersessions.Key{RealmID: "r1", ID: "before"}

	terminate := func(t *testing.T) {
		t.Helper()
		var n int
		if err := db.Get(&n, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no backend of the provider to terminate")
		}
	}
	watchBreaks := func(t *testing.T) *feed {
		f := startWatch(t, p)
		f.subscribed(t, p, key)
		return f
	}

	t.Run("backends terminated", func(t *testing.T) {
		feed := watchBreaks(t)
		terminate(t)
		// Some call may land on a dead pooled connection; it fails as unavailable, and
		// the pool replaces the connection.
		var got *usersessions.UserSession
		waitFor(t, "a read to succeed after the backends were terminated", func() bool {
			ss, err := p.Get(t.Context(), []usersessions.Key{key})
			if err != nil && !errors.Is(err, spi.ErrUnavailable) {
				t.Fatalf("Get after termination: %v, want success or an error wrapping spi.ErrUnavailable", err)
			}
			if err == nil {
				got = ss[0]
			}
			return err == nil
		})
		if got == nil {
			t.Fatal("the session created before the fault is gone")
		}
		expectFeedBroken(t, feed)
	})

	t.Run("server unreachable", func(t *testing.T) {
		feed := watchBreaks(t)
		terminate(t)
		proxy.Cut()
		for _, call := range []struct {
			name string
			do   func() error
		}{
			{"Get", func() error { _, err := p.Get(t.Context(), []usersessions.Key{key}); return err }},
			{"Create", func() error {
				_, err := p.Create(t.Context(), []*usersessions.UserSession{testSession("during")})
				return err
			}},
			{"Count", func() error { _, err := p.Count(t.Context(), usersessions.Filter{RealmID: "r1"}); return err }},
			{"Watch", func() error {
				return p.Watch(t.Context(), func(usersessions.Change) error { return nil })
			}},
		} {
			if err := call.do(); !errors.Is(err, spi.ErrUnavailable) {
				t.Errorf("%s while the server is away: %v, want an error wrapping spi.ErrUnavailable", call.name, err)
			}
		}
		expectFeedBroken(t, feed)

		proxy.Restore()
		waitFor(t, "the provider to serve again", func() bool {
			_, err := p.Get(t.Context(), []usersessions.Key{key})
			return err == nil
		})
		mustCreate(t, p, testSession("after"))
		ss, err := p.Get(t.Context(), []usersessions.Key{key, {RealmID: "r1", ID: "after"}})
		if err != nil || ss[0] == nil || ss[1] == nil {
			t.Fatalf("after recovery Get = %v, %v; want both sessions", ss, err)
		}
		// The feed works again too.
		watchBreaks(t)
	})
}

func expectFeedBroken(t *testing.T, f *feed) {
	t.Helper()
	select {
	case err := <-f.done:
		f.done <- err // for startWatch's cleanup
		if !errors.Is(err, spi.ErrUnavailable) {
			t.Errorf("Watch ended with %v, want an error wrapping spi.ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Watch did not end after its connection was terminated")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchAcrossNodes: two providers on one database, as two sessiond nodes are; each
// sees the other's writes through Watch within a second, marked with the writer's node id.
func TestWatchAcrossNodes(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t, admin(t))
	a := open(t, spi.Config{postgres.OptURL: u, spi.HostNodeID: "node-a"})
	b := open(t, spi.Config{postgres.OptURL: u, spi.HostNodeID: "node-b"})

	feedA, feedB := startWatch(t, a), startWatch(t, b)
	for _, p := range []usersessions.Provider{a, b} {
		feedA.subscribed(t, p, usersessions.Key{RealmID: "probe", ID: "probe"})
		feedB.subscribed(t, p, usersessions.Key{RealmID: "probe", ID: "probe"})
	}

	expect := func(f *feed, what string, since time.Time, want func(usersessions.Change) bool) {
		t.Helper()
		if _, ok := f.wait(time.Second, want); !ok {
			t.Fatalf("%s: not seen within a second", what)
		}
		t.Logf("%s after %v", what, time.Since(since))
	}
	s := testSession("s1")
	start := time.Now()
	mustCreate(t, b, s)
	expect(feedA, "node a sees node b's create", start, func(c usersessions.Change) bool {
		return c.Kind == usersessions.Upserted && c.Session == s.Key() && c.Origin == "node-b"
	})
	expect(feedB, "node b sees its own create", start, func(c usersessions.Change) bool {
		return c.Kind == usersessions.Upserted && c.Session == s.Key() && c.Origin == "node-b"
	})
	start = time.Now()
	if _, err := a.Delete(t.Context(), []usersessions.Key{s.Key()}); err != nil {
		t.Fatal(err)
	}
	expect(feedB, "node b sees node a's logout", start, func(c usersessions.Change) bool {
		return c.Kind == usersessions.Removed && c.Session == s.Key() && c.Origin == "node-a"
	})
	start = time.Now()
	f := usersessions.Filter{RealmID: "r1", UserID: "u1", Offline: usersessions.Both, ActiveSince: time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)}
	mustCreate(t, a, testSession("s2"))
	if _, err := a.DeleteMatching(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	expect(feedB, "node b sees node a's flush with its filter", start, func(c usersessions.Change) bool {
		return c.Kind == usersessions.Flushed && c.Filter == f && c.Origin == "node-a"
	})
}

// feed is a running Watch.
type feed struct {
	changes chan usersessions.Change
	done    chan error
}

// startWatch runs p.Watch until t ends.
func startWatch(t *testing.T, p usersessions.Provider) *feed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{changes: make(chan usersessions.Change, 1000), done: make(chan error, 1)}
	go func() {
		f.done <- p.Watch(ctx, func(c usersessions.Change) error {
			select {
			case f.changes <- c:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after its context ended")
		}
	})
	return f
}

// subscribed touches key through writer (creating it first) until f reports it: Watch
// says nothing when it has subscribed.
func (f *feed) subscribed(t *testing.T, writer usersessions.Provider, key usersessions.Key) {
	t.Helper()
	s := testSession(key.ID)
	s.RealmID = key.RealmID
	writer.Create(t.Context(), []*usersessions.UserSession{s})
	waitFor(t, "the watch to be subscribed", func() bool {
		now := time.Now()
		if _, err := writer.Touch(t.Context(), []usersessions.Touch{{Session: key, LastRefresh: now, ExpiresAt: now.Add(time.Hour)}}); err != nil {
			t.Fatalf("probe touch: %v", err)
		}
		_, ok := f.wait(100*time.Millisecond, func(c usersessions.Change) bool { return c.Session == key })
		return ok
	})
}

// wait reads changes until one satisfies want or patience runs out.
func (f *feed) wait(patience time.Duration, want func(usersessions.Change) bool) (usersessions.Change, bool) {
	timeout := time.After(patience)
	for {
		select {
		case c := <-f.changes:
			if want(c) {
				return c, true
			}
		case err := <-f.done:
			f.done <- err
			return usersessions.Change{}, false
		case <-timeout:
			return usersessions.Change{}, false
		}
	}
}

// TestMigrations: with migrate=false the provider refuses a schema without the tables;
// several providers migrating one schema at once migrate it once.
func TestMigrations(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	p := postgres.New(nil)
	err := p.Configure(t.Context(), spi.Config{postgres.OptURL: u, postgres.OptMigrate: "false"})
	if !errors.Is(err, spi.ErrInvalid) {
		t.Fatalf("Configure with migrate=false on an empty schema: %v, want an error wrapping spi.ErrInvalid", err)
	}
	var tables int
	db.Get(&tables, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema)
	if tables != 0 {
		t.Errorf("migrate=false created %d tables", tables)
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { open(t, spi.Config{postgres.OptURL: u}) })
	}
	wg.Wait()
	var applied int
	if err := db.Get(&applied, "SELECT count(*) FROM "+schema+".sessiond_migrations WHERE version_id > 0"); err != nil {
		t.Fatal(err)
	}
	if applied != 2 {
		t.Errorf("%d migration rows after four concurrent starts, want 2 (one per migration)", applied)
	}
	open(t, spi.Config{postgres.OptURL: u, postgres.OptMigrate: "false"})
}

// TestIndexes checks that each query the store runs on a large table has an index to
// use: with sequential scans priced out, the plan names the index.
func TestIndexes(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	open(t, spi.Config{postgres.OptURL: u})
	conn, err := db.Connx(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Statistics of a realistic spread: many users, refreshes over days, expiries ahead.
	for _, q := range []string{
		"SET search_path = " + schema,
		`INSERT INTO user_session SELECT 'r', 's' || g, g % 2 = 0, 0, 'u' || (g % 1000), '', '', '', '', 'b' || g, '', false,
			'LOGGED_IN', now(), now() - g * interval '1 minute', now() + g * interval '1 second', '{}', 1
			FROM generate_series(1, 20000) g`,
		`INSERT INTO client_session SELECT 'r', 's' || g, g % 2 = 0, 'c' || (g % 50), now(), now(), now() + g * interval '1 second',
			'', '', '', '', '{}', '', 0, '', now(), 1 FROM generate_series(1, 20000) g`,
		"ANALYZE user_session", "ANALYZE client_session",
		"SET enable_seqscan = off",
	} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ query, index string }{
		{"SELECT realm_id, id, offline FROM user_session WHERE expires_hour <= now() AND expires_at < now() ORDER BY expires_hour LIMIT 100", "user_session_expires"},
		{"SELECT client_id FROM client_session WHERE expires_hour <= now() AND expires_at < now() ORDER BY expires_hour LIMIT 100", "client_session_expires"},
		{"SELECT id FROM user_session s WHERE s.realm_id = 'r' AND s.offline = true AND s.user_id = 'u'", "user_session_user"},
		{"SELECT id FROM user_session s WHERE s.realm_id = 'r' AND s.offline = false AND s.refresh_day >= now() AND s.last_refresh >= now()", "user_session_refresh"},
		{"SELECT id FROM user_session s WHERE s.realm_id = 'r' AND s.id > 'a' ORDER BY s.id, s.offline LIMIT 10", "user_session_pkey"},
		{"SELECT id FROM user_session s WHERE s.realm_id = 'r' AND s.broker_session_id = 'b'", "user_session_broker"},
		{"SELECT client_id, count(*) FROM client_session WHERE realm_id = 'r' AND offline = false GROUP BY client_id", "client_session_client"},
		{"SELECT id FROM delivery WHERE state = 'pending' AND next_attempt <= now() ORDER BY next_attempt, id LIMIT 10", "delivery_due"},
	} {
		var plan []string
		if err := conn.SelectContext(t.Context(), &plan, "EXPLAIN "+tc.query); err != nil {
			t.Fatalf("EXPLAIN %s: %v", tc.query, err)
		}
		if joined := strings.Join(plan, "\n"); !strings.Contains(joined, tc.index) {
			t.Errorf("%s\ndoes not use %s:\n%s", tc.query, tc.index, joined)
		}
	}
}

func TestDescribe(t *testing.T) {
	d := postgres.New(nil).Describe()
	if d.SPI != spi.UserSessions || d.ID != postgres.ID {
		t.Errorf("Describe = %s/%s", d.SPI, d.ID)
	}
	for _, tc := range []struct {
		name, def string
		typ       spi.OptionType
		secret    bool
	}{
		{postgres.OptURL, postgres.DefaultURL, spi.String, true},
		{postgres.OptMaxOpenConns, "16", spi.Int, false},
		{postgres.OptMaxIdleConns, "8", spi.Int, false},
		{postgres.OptConnMaxLifetime, "30m0s", spi.Duration, false},
		{postgres.OptStatementTimeout, "5s", spi.Duration, false},
		{postgres.OptMigrate, "true", spi.Bool, false},
	} {
		o, ok := d.Option(tc.name)
		if !ok || o.Default != tc.def || o.Type != tc.typ || o.Secret != tc.secret || o.Help == "" {
			t.Errorf("option %s = %+v, want default %q type %s secret %v and help", tc.name, o, tc.def, tc.typ, tc.secret)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, set := range []spi.Config{
		{postgres.OptMaxOpenConns: "0"},
		{postgres.OptStatementTimeout: "soon"},
		{postgres.OptMigrate: "perhaps"},
		{postgres.OptURL: "postgres://user:secret@[::1"},
	} {
		err := postgres.New(nil).Configure(t.Context(), set)
		if !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("Configure(%v) = %v, want an error wrapping spi.ErrInvalid", set, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// TestUnconfigured: calls before Configure fail as unavailable instead of panicking.
func TestUnconfigured(t *testing.T) {
	p := postgres.New(nil)
	if _, err := p.Get(t.Context(), []usersessions.Key{{RealmID: "r", ID: "s"}}); !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Get before Configure: %v", err)
	}
	if err := p.Watch(t.Context(), func(usersessions.Change) error { return nil }); !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Watch before Configure: %v", err)
	}
}

// TestPasswordNotLogged: issue 15, "`?password=` in a PostgreSQL URL is logged". The
// password, given in each form lib/pq takes, shows neither in the log line of a store that
// started nor in the error of one that could not connect.
func TestPasswordNotLogged(t *testing.T) {
	db := admin(t)
	_, ready := freshSchema(t, db)
	u, err := url.Parse(ready)
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "postgres://127.0.0.1:1/x?connect_timeout=1&sslmode=disable"
	for _, tc := range []struct{ name, url string }{
		{"query password, started", withParams(t, ready, "password", "hunter2")},
		// lib/pq passes sslpassword on to the server, which refuses it: the error must not show it.
		{"query sslpassword, refused", withParams(t, ready, "sslpassword", "hunter2")},
		{"user information, started", strings.Replace(ready, "://"+u.User.String()+"@", "://"+u.User.Username()+":hunter2@", 1)},
		{"query password, unreachable", withParams(t, unreachable, "password", "hunter2")},
		{"key=value password, unreachable", "host=127.0.0.1 port=1 connect_timeout=1 sslmode=disable password='hunter2'"},
		{"malformed URL", "postgres://u:hunter2@[::1/x?password=hunter2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			log := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace})
			p := postgres.New(log)
			err := p.Configure(t.Context(), spi.Config{postgres.OptURL: tc.url})
			if strings.HasSuffix(tc.name, "started") && err != nil {
				t.Errorf("Configure: %v", err)
			}
			if err == nil {
				t.Cleanup(func() { p.Close(context.Background()) })
				if !strings.Contains(out.String(), "session store ready") {
					t.Fatalf("no ready line in the log: %s", out.String())
				}
			}
			if strings.Contains(out.String(), "hunter2") {
				t.Errorf("the log shows the password: %s", out.String())
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
