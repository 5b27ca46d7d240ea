package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/providers/usersessions/embedded"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore/sqlstoretest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

func TestMain(m *testing.M) {
	sqlstoretest.Main(m, func(log hclog.Logger) spi.Provider { return embedded.New(log) })
}

// open returns a provider on the file at path, closed when t ends.
func open(t testing.TB, path string) *embedded.Provider {
	t.Helper()
	p := embedded.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{embedded.OptPath: path}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func TestConformance(t *testing.T) {
	t.Run("in-process", func(t *testing.T) {
		t.Parallel()
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			return open(t, filepath.Join(t.TempDir(), "sessions.db"))
		})
	})
	t.Run("plugin", func(t *testing.T) {
		t.Parallel()
		// One plugin process for the whole suite; each check gets it with every table
		// emptied, through a connection of this process (SQLite's file locks keep the two
		// processes apart).
		path := filepath.Join(t.TempDir(), "sessions.db")
		p := sqlstoretest.StartPlugin(t, embedded.ID, spi.Config{embedded.OptPath: path})
		db, err := sqlx.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			for _, table := range []string{"client_session", "user_session", "record", "delivery"} {
				if _, err := db.Exec("DELETE FROM " + table); err != nil {
					t.Fatal(err)
				}
			}
			return p
		})
	})
}

func fullSession(id string, offline bool) *usersessions.UserSession {
	at := time.Date(2030, 3, 14, 15, 9, 26, 535897000, time.UTC)
	s := &usersessions.UserSession{
		ID: id, RealmID: "r1", UserID: "u1", LoginUsername: "u1@example.test", IPAddress: "192.0.2.7",
		UserAgent: "test", AuthMethod: "openid-connect", RememberMe: true, Offline: offline,
		State: usersessions.LoggedIn, Started: at, LastRefresh: at, ExpiresAt: at.Add(time.Hour),
		Notes: map[string]string{"k": "v ✓"},
		Clients: map[string]*usersessions.ClientSession{"app": {
			ClientID: "app", Started: at, LastRefresh: at, ExpiresAt: at.Add(time.Hour), Scope: "openid",
			Notes: map[string]string{"nonce": "n"}, CurrentRefreshToken: "rt", RotatedAt: at,
		}},
	}
	s.Clients["app"].UserSessionID, s.Clients["app"].RealmID, s.Clients["app"].Offline = id, "r1", offline
	return s
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

// TestSurvivesReopen: what was written is there after the provider is closed and a new
// one opens the same file, as after a restart of sessiond.
func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	first := embedded.New(nil)
	if err := first.Configure(t.Context(), spi.Config{embedded.OptPath: path}); err != nil {
		t.Fatal(err)
	}
	online, offline := fullSession("s1", false), fullSession("s1", true)
	mustCreate(t, first, online, offline)
	rec, err := first.PutRecord(t.Context(), &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("42")})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Enqueue(t.Context(), []*usersessions.Delivery{{ID: "d1", RealmID: "r1", Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Get(t.Context(), []usersessions.Key{online.Key()}); !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Get after Close: %v, want an error wrapping spi.ErrUnavailable", err)
	}

	second := open(t, path)
	got, err := second.Get(t.Context(), []usersessions.Key{online.Key(), offline.Key()})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*usersessions.UserSession{online, offline} {
		if got[i] == nil {
			t.Fatalf("%s/%s is gone after reopening", want.ID, map[bool]string{false: "online", true: "offline"}[want.Offline])
		}
		if got[i].UserID != want.UserID || !got[i].ExpiresAt.Equal(want.ExpiresAt) || got[i].Notes["k"] != "v ✓" ||
			got[i].Version != 1 || got[i].Clients["app"] == nil || got[i].Clients["app"].CurrentRefreshToken != "rt" {
			t.Errorf("after reopening: %+v, want %+v", got[i], want)
		}
	}
	recs, err := second.GetRecords(t.Context(), "not-before", []string{"r1"})
	if err != nil || recs[0] == nil || string(recs[0].Value) != "42" || recs[0].Version != rec.Version {
		t.Errorf("record after reopening: %v, %v", recs, err)
	}
	ds, err := second.ListDeliveries(t.Context(), usersessions.DeliveryFilter{})
	if err != nil || len(ds) != 1 || ds[0].ID != "d1" {
		t.Errorf("deliveries after reopening: %v, %v", ds, err)
	}
}

// TestDefaultPath: by default the file is data/sessiond.db under the working directory,
// whose data directory is created.
func TestDefaultPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	p := embedded.New(nil)
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	if err := p.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	mustCreate(t, p, fullSession("s1", false))
	if _, err := os.Stat(filepath.Join(dir, "data", "sessiond.db")); err != nil {
		t.Errorf("default database file: %v", err)
	}
}

// TestConcurrentWrites: many writers at once all succeed; none sees SQLITE_BUSY.
func TestConcurrentWrites(t *testing.T) {
	p := open(t, filepath.Join(t.TempDir(), "sessions.db"))
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				s := fullSession(fmt.Sprintf("w%d-%d", w, i), i%2 == 0)
				res, err := p.Create(context.Background(), []*usersessions.UserSession{s})
				if err == nil {
					err = res[0]
				}
				if err == nil {
					var touched []error
					touched, err = p.Touch(context.Background(), []usersessions.Touch{{Session: s.Key(), LastRefresh: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}})
					if err == nil {
						err = touched[0]
					}
				}
				if err == nil {
					_, err = p.Count(context.Background(), usersessions.Filter{RealmID: "r1", Offline: usersessions.Both})
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := p.Count(t.Context(), usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}); err != nil || n != 16*20 {
		t.Errorf("Count = %d, %v; want %d", n, err, 16*20)
	}
}

func TestDescribe(t *testing.T) {
	d := embedded.New(nil).Describe()
	if d.SPI != spi.UserSessions || d.ID != embedded.ID {
		t.Errorf("Describe = %s/%s", d.SPI, d.ID)
	}
	for _, tc := range []struct {
		name, def string
		typ       spi.OptionType
	}{
		{embedded.OptPath, embedded.DefaultPath, spi.String},
		{embedded.OptBusyTimeout, "5s", spi.Duration},
	} {
		if o, ok := d.Option(tc.name); !ok || o.Default != tc.def || o.Type != tc.typ || o.Help == "" {
			t.Errorf("option %s = %+v, want default %q type %s and help", tc.name, o, tc.def, tc.typ)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, set := range []spi.Config{
		{embedded.OptBusyTimeout: "a while"},
		{embedded.OptPath: filepath.Join(t.TempDir(), "what?.db")},
	} {
		if err := embedded.New(nil).Configure(t.Context(), set); !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("Configure(%v) = %v, want an error wrapping spi.ErrInvalid", set, err)
		}
	}
}

// TestEmbeddedStoreFileIs0600: the file holds the realms' signing keys and users'
// sessions. It, and the WAL and shared-memory files SQLite keeps beside it, are readable
// by sessiond's user alone, however permissive the umask and whether or not the folder
// already existed; a file an older sessiond left readable by others is made private, with
// a warning.
func TestEmbeddedStoreFileIs0600(t *testing.T) {
	old := syscall.Umask(0) // the most permissive: only the code's own modes count
	defer syscall.Umask(old)
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		warn  bool
	}{
		{"new file in a new folder", func(t *testing.T, path string) {}, false},
		{"new file in a folder that existed", func(t *testing.T, path string) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"file an older sessiond left 0644", func(t *testing.T, path string) {
			first := embedded.New(nil)
			if err := first.Configure(t.Context(), spi.Config{embedded.OptPath: path}); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, first, fullSession("kept", false))
			if err := first.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			// And a write-ahead log a crash left behind (an empty one is a valid one).
			if err := os.WriteFile(path+"-wal", nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{path, path + "-wal"} {
				if err := os.Chmod(f, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data", "sessiond.db")
			tt.setup(t, path)
			logs := &testlog.Buffer{}
			p := embedded.New(hclog.New(&hclog.LoggerOptions{Output: logs}))
			if err := p.Configure(t.Context(), spi.Config{embedded.OptPath: path}); err != nil {
				t.Fatal(err)
			}
			defer p.Close(t.Context())
			mustCreate(t, p, fullSession("s1", false)) // the WAL and its index exist now
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm != 0o600 {
					t.Errorf("%s has mode %v, want 0600", filepath.Base(f), perm)
				}
			}
			warned := strings.Contains(logs.String(), "readable by sessiond's user alone")
			if warned != tt.warn {
				t.Errorf("warned = %v, want %v; log:\n%s", warned, tt.warn, logs)
			}
			if tt.warn && !strings.Contains(logs.String(), "was=-rw-r--r--") {
				t.Errorf("the warning does not say what the mode was:\n%s", logs)
			}
			got, err := p.Get(t.Context(), []usersessions.Key{{RealmID: "r1", ID: "kept"}})
			if err != nil || (tt.warn && got[0] == nil) {
				t.Errorf("the older file's sessions after making it private: %v, %v", got, err)
			}
		})
	}
}

// Issue 19, point 11: a first start logs one line per migration at INFO, not every
// statement; the statements are at DEBUG.
func TestPoint11_firstStartLogsOneLinePerMigration(t *testing.T) {
	for _, tc := range []struct {
		level          hclog.Level
		wantStatements bool
	}{{hclog.Info, false}, {hclog.Debug, true}} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var logs testlog.Buffer
			p := embedded.New(hclog.New(&hclog.LoggerOptions{Output: &logs, Level: tc.level}))
			if err := p.Configure(context.Background(), spi.Config{embedded.OptPath: filepath.Join(t.TempDir(), "s.db")}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close(context.Background()) })
			migrations, _ := filepath.Glob("migrations/*.sql")
			if n := logs.Count("schema migration applied"); n != len(migrations) || n == 0 {
				t.Errorf("%d lines say a migration was applied, want one per migration (%d):\n%s", n, len(migrations), logs.String())
			}
			if got := strings.Contains(logs.String(), "CREATE TABLE"); got != tc.wantStatements {
				t.Errorf("at %s the log quotes statements: %v, want %v:\n%s", tc.level, got, tc.wantStatements, logs.String())
			}
		})
	}
}
