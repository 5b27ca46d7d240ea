package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// pgStore returns a Store over a fresh schema of the test database, with the postgres
// provider's migrations applied, its connections set with the URL parameters kv (name,
// value, …). An unreachable server fails the test.
func pgStore(t *testing.T, kv ...string) *Store {
	t.Helper()
	ctx := t.Context()
	admin, err := sqlx.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (run .ci/services, or set SESSIOND_TEST_POSTGRES_URL): %v", testpg.URL(), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_stream_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("timezone", "UTC")
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := Migrate(ctx, db.DB, goose.DialectPostgres, os.DirFS("../postgres/migrations"), true, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	return New(Config{Dialect: Postgres, DB: db})
}

// awkward is session i: strings that need quoting, escapes and non-ASCII in every column
// they can be in, an online and an offline session of one id for even i, zero to three
// client sessions, times at both ends of the range and before 1970.
func awkward(i int) []*usersessions.UserSession {
	t0 := time.Date(2026, 11, 4, 21, 17, 9, 537645000, time.UTC).Add(time.Duration(i) * time.Minute)
	weird := []string{"", `a "quoted" word`, `back\slash`, "comma, (parens)", "tab\tnew\nline", "ü ✓ 雪", "{}", `""`, " "}
	w := func(k int) string { return weird[(i+k)%len(weird)] }
	id := fmt.Sprintf("id %d,%s", i, w(1))
	if i%3 == 0 {
		id = fmt.Sprintf("plain-%d", i) // an id a row value holds unquoted
	}
	var out []*usersessions.UserSession
	for _, offline := range []bool{false, true} {
		if !offline && i%2 == 1 {
			continue
		}
		us := &usersessions.UserSession{
			ID: id, RealmID: "r", UserID: "u" + w(2), LoginUsername: w(3), IPAddress: "10.0.0." + fmt.Sprint(i),
			UserAgent: "Mozilla/5.0 (" + w(4) + ")", AuthMethod: "openid-connect", BrokerSessionID: w(5), BrokerUserID: w(6),
			RememberMe: i%3 == 0, Offline: offline, State: usersessions.LoggedIn,
			Started: t0.Add(-time.Hour), LastRefresh: t0, ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
			Notes:   map[string]string{"sessiond.offline_access": "true", w(7) + "k": w(8), `"x\y"`: "ü"},
			Clients: map[string]*usersessions.ClientSession{},
		}
		if i%4 == 0 {
			us.Notes = nil
		}
		for c := range i % 4 {
			id := fmt.Sprintf("client %d %s", c, w(c))
			us.Clients[id] = &usersessions.ClientSession{
				UserSessionID: us.ID, RealmID: "r", ClientID: id, Offline: offline,
				Started: time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC), LastRefresh: t0, ExpiresAt: t0.Add(24 * time.Hour),
				AuthMethod: "openid-connect", RedirectURI: "https://app.example.com/cb?x=" + w(c+1), Action: "AUTHENTICATE",
				Scope: "openid offline_access", Notes: map[string]string{"gen": w(c + 2)}, CurrentRefreshToken: "rt-" + w(c),
				CurrentRefreshTokenUseCount: c, PreviousRefreshToken: w(c + 3),
			}
			if c == 1 {
				us.Clients[id].RotatedAt = t0
				us.Clients[id].Notes = nil
			}
		}
		out = append(out, us)
	}
	return out
}

func create(t *testing.T, s *Store, sessions []*usersessions.UserSession) {
	t.Helper()
	for batch := range slices.Chunk(sessions, 500) {
		errs, err := s.Create(t.Context(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("create %s: %v", keyString(batch[i].Key()), err)
			}
		}
	}
}

// streamer is a store's Stream: the Store's own, or the Store's served as a plugin
// serves it (throughWire).
type streamer interface {
	Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error
}

// servedStore is a Store as a provider, to serve it over the plugin wire.
type servedStore struct{ *Store }

func (servedStore) Describe() spi.Descriptor {
	return spi.Descriptor{SPI: spi.UserSessions, ID: "sqlstore-test"}
}
func (servedStore) Configure(context.Context, spi.Config) error { return nil }
func (servedStore) Close(context.Context) error                 { return nil }
func (servedStore) Watch(ctx context.Context, _ func(usersessions.Change) error) error {
	<-ctx.Done()
	return nil
}

// throughWire serves s over a real gRPC connection as a plugin process does, and returns
// the host's client of it: its Stream goes through StreamPages and the host's decoder.
func throughWire(t *testing.T, s *Store) streamer {
	t.Helper()
	set, err := wire.ServerPlugins(servedStore{s})
	if err != nil {
		t.Fatal(err)
	}
	p := set[wire.ProtocolVersion][spi.UserSessions].(plugin.GRPCPlugin)
	srv := grpc.NewServer()
	if err := p.GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Stop
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
	})
	client, err := p.GRPCClient(t.Context(), nil, cc)
	if err != nil {
		t.Fatal(err)
	}
	return client.(usersessions.Provider)
}

// lent streams with StreamLent, handing fn copies of each page: what StreamLent lends is
// rewritten by the pages after it, which is what the test would see otherwise.
type lent struct{ s *Store }

func (l lent) Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	return l.s.StreamLent(ctx, req, func(page []*usersessions.UserSession) error {
		copies := make([]*usersessions.UserSession, len(page))
		for i, us := range page {
			c := *us
			c.Notes = maps.Clone(us.Notes)
			c.Clients = map[string]*usersessions.ClientSession{}
			for id, cs := range us.Clients {
				cc := *cs
				cc.Notes = maps.Clone(cs.Notes)
				c.Clients[id] = &cc
			}
			copies[i] = &c
		}
		return fn(copies)
	})
}

// streamed streams req and returns every session by key, failing on a page over its size
// or a session given twice.
func streamed(t *testing.T, s streamer, req usersessions.StreamRequest) map[usersessions.Key]*usersessions.UserSession {
	t.Helper()
	out := map[usersessions.Key]*usersessions.UserSession{}
	err := s.Stream(t.Context(), req, func(page []*usersessions.UserSession) error {
		if len(page) == 0 || len(page) > req.PageSize {
			return fmt.Errorf("a page of %d sessions for PageSize %d", len(page), req.PageSize)
		}
		for _, us := range page {
			if out[us.Key()] != nil {
				return fmt.Errorf("%s given twice", keyString(us.Key()))
			}
			out[us.Key()] = us
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Stream(%+v): %v", req, err)
	}
	return out
}

// normal is s with empty maps as nil, for comparing what two reads made of one row.
func normal(s *usersessions.UserSession) usersessions.UserSession {
	c := *s
	if len(c.Notes) == 0 {
		c.Notes = nil
	}
	c.Clients = map[string]*usersessions.ClientSession{}
	for id, cs := range s.Clients {
		cc := *cs
		if len(cc.Notes) == 0 {
			cc.Notes = nil
		}
		c.Clients[id] = &cc
	}
	return c
}

// TestStreamReadsWhatGetReads streams sessions with every awkward value a column can hold
// (the stream reads rows as PostgreSQL prints row values, with their own quoting) and
// compares each with what Get reads of it, in the session time zone the provider sets
// and in another one.
func TestStreamReadsWhatGetReads(t *testing.T) {
	t.Parallel()
	for _, tz := range []string{"UTC", "Asia/Kolkata"} {
		t.Run(tz, func(t *testing.T) {
			t.Parallel()
			s := pgStore(t, "timezone", tz)
			var all []*usersessions.UserSession
			for i := range 2100 { // pages of 1000, and a part of one
				all = append(all, awkward(i)...)
			}
			create(t, s, all)
			keys := make([]usersessions.Key, len(all))
			for i, us := range all {
				keys[i] = us.Key()
			}
			got, err := s.Get(t.Context(), keys)
			if err != nil {
				t.Fatal(err)
			}
			want := map[usersessions.Key]usersessions.UserSession{}
			for i, us := range got {
				if us == nil {
					t.Fatalf("Get lost %s", keyString(keys[i]))
				}
				want[us.Key()] = normal(us)
			}
			wired := throughWire(t, s)
			for _, c := range []struct {
				how   string
				s     streamer
				count int
				split int // Store.splitClients
			}{{"Stream", s, 0, splitClients}, {"Stream", s, 3, splitClients}, {"StreamLent", lent{s}, 0, splitClients}, {"StreamLent", lent{s}, 3, splitClients},
				{"StreamPages through the wire", wired, 0, splitClients}, {"StreamPages through the wire", wired, 3, splitClients},
				// Client sessions read on two connections.
				{"Stream, clients read in two", s, 0, 0}, {"StreamLent, clients read in two", lent{s}, 0, 0},
				{"StreamPages through the wire, clients read in two", wired, 0, 0}} {
				s.splitClients = c.split
				how, count := fmt.Sprintf("%s in %d partitions", c.how, c.count), c.count
				merged := map[usersessions.Key]*usersessions.UserSession{}
				for i := range max(count, 1) {
					part := streamed(t, c.s, usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r", Offline: usersessions.Both},
						PageSize: 1000, Partition: usersessions.Partition{Index: i, Count: count}})
					for k, us := range part {
						if merged[k] != nil {
							t.Fatalf("%s: %s in two partitions", how, keyString(k))
						}
						merged[k] = us
					}
				}
				if len(merged) != len(want) {
					t.Errorf("%s streamed %d sessions, want %d", how, len(merged), len(want))
				}
				for k, us := range merged {
					if w, ok := want[k]; !ok || !reflect.DeepEqual(normal(us), w) {
						t.Fatalf("%s streamed %s as\n%+v\nGet read\n%+v", how, keyString(k), normal(us), w)
					}
					for _, tm := range []time.Time{us.Started, us.LastRefresh, us.ExpiresAt} {
						if tm.Location() != time.UTC {
							t.Fatalf("%s: a time in %v, want UTC", keyString(k), tm.Location())
						}
					}
				}
			}
		})
	}
}

// TestStreamSplitsWhatItCannotHold streams a selection whose client sessions are more than
// a stream holds: it is read in parts, and still every session comes once, complete.
func TestStreamSplitsWhatItCannotHold(t *testing.T) {
	t.Parallel()
	s := pgStore(t)
	s.maxHeld = 5
	var all []*usersessions.UserSession
	for i := range 120 {
		all = append(all, awkward(i)...)
	}
	create(t, s, all)
	for _, tt := range []struct {
		f     usersessions.Filter
		count int
	}{
		{usersessions.Filter{RealmID: "r", Offline: usersessions.Both}, 0},
		{usersessions.Filter{RealmID: "r", Offline: usersessions.OfflineOnly}, 2},
		{usersessions.Filter{RealmID: "r", Offline: usersessions.Both, ActiveSince: all[0].LastRefresh.Add(30 * time.Minute)}, 3},
	} {
		want := map[usersessions.Key]usersessions.UserSession{}
		for _, us := range all {
			if tt.f.Offline != usersessions.Both && us.Offline != (tt.f.Offline == usersessions.OfflineOnly) || us.LastRefresh.Before(tt.f.ActiveSince) {
				continue
			}
			want[us.Key()] = normal(us)
		}
		got := map[usersessions.Key]*usersessions.UserSession{}
		for i := range max(tt.count, 1) {
			for k, us := range streamed(t, s, usersessions.StreamRequest{Filter: tt.f, PageSize: 7, Partition: usersessions.Partition{Index: i, Count: tt.count}}) {
				if got[k] != nil {
					t.Fatalf("%s in two partitions", keyString(k))
				}
				got[k] = us
			}
		}
		if len(got) != len(want) {
			t.Errorf("%+v in %d partitions: streamed %d sessions, want %d", tt.f, tt.count, len(got), len(want))
		}
		for k, us := range got {
			w := want[k]
			w.Version = 1
			for _, c := range w.Clients {
				c.Version = 1
			}
			if n := normal(us); !reflect.DeepEqual(n, w) {
				t.Fatalf("streamed %s as\n%+v\nwant\n%+v", keyString(k), n, w)
			}
		}
	}
}

// TestStreamStopsWhenTheDatabaseFails checks that a stream whose connection dies returns
// an error instead of a short stream.
func TestStreamStopsWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	s := pgStore(t, "application_name", "stream-killed")
	var all []*usersessions.UserSession
	for i := range 3000 {
		all = append(all, awkward(i)...)
	}
	create(t, s, all)
	killer := pgStoreAdmin(t)
	pages := 0
	err := s.Stream(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r", Offline: usersessions.Both}, PageSize: 10},
		func([]*usersessions.UserSession) error {
			if pages++; pages == 1 {
				if _, err := killer.ExecContext(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'stream-killed'"); err != nil {
					return err
				}
			}
			return nil
		})
	if err == nil || !strings.Contains(err.Error(), "stream user sessions") {
		t.Fatalf("Stream after its backend was killed returned %v after %d pages, want its error", err, pages)
	}
}

func pgStoreAdmin(t *testing.T) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestStreamOutlastsTheStatementTimeout checks that a stream read slowly is bounded by its
// caller, not by statement-timeout: each table is read by one statement, which lasts as
// long as its reader takes.
func TestStreamOutlastsTheStatementTimeout(t *testing.T) {
	t.Parallel()
	s := pgStore(t)
	var all []*usersessions.UserSession
	for i := range 40 {
		for _, us := range awkward(i) {
			// Rows larger than the socket's buffers can hold: PostgreSQL waits on the
			// reader to send the rest.
			if us.Notes == nil {
				us.Notes = map[string]string{}
			}
			us.Notes["large"] = strings.Repeat("x", 200<<10)
			all = append(all, us)
		}
	}
	create(t, s, all)
	// From here the store has one connection, whose statements time out after 20 ms.
	s.db.SetMaxOpenConns(1)
	if _, err := s.db.ExecContext(t.Context(), "SET statement_timeout = 20"); err != nil {
		t.Fatal(err)
	}
	start, n := time.Now(), 0
	err := s.Stream(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r", Offline: usersessions.Both}, PageSize: 5},
		func(page []*usersessions.UserSession) error {
			if n += len(page); n == len(page) {
				time.Sleep(300 * time.Millisecond) // PostgreSQL, blocked on a full socket, waits meanwhile
			}
			return nil
		})
	if err != nil {
		t.Fatalf("Stream read for %s (statement_timeout 20 ms) failed after %d sessions: %v", time.Since(start), n, err)
	}
	if n != len(all) {
		t.Fatalf("Stream read %d sessions, want %d", n, len(all))
	}

	// The caller's context still ends it.
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	err = s.Stream(ctx, usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r", Offline: usersessions.Both}, PageSize: 5},
		func([]*usersessions.UserSession) error {
			time.Sleep(10 * time.Millisecond)
			return nil
		})
	if err == nil {
		t.Fatal("Stream past its context's deadline returned nil")
	}
}

// TestHolderMerge holds rows in two holders, as the two connections of a stream that reads
// its client sessions in two do, and checks that the merged holder gives each user
// session all of its rows, those read by both included.
func TestHolderMerge(t *testing.T) {
	for _, tt := range []struct {
		name        string
		mine, their []string
		want        map[string][]string // by user session id (offline), its rows in any order
	}{
		{"apart", []string{"(a,t,1)", "(b,t,1)"}, []string{"(c,t,1)"},
			map[string][]string{"a": {"(a,t,1)"}, "b": {"(b,t,1)"}, "c": {"(c,t,1)"}}},
		{"one row each side", []string{"(a,t,1)"}, []string{"(a,t,2)"},
			map[string][]string{"a": {"(a,t,1)", "(a,t,2)"}}},
		{"more on each side", []string{"(a,t,1)", "(a,t,2)", "(b,t,1)"}, []string{"(a,t,3)", "(a,t,4)", "(b,t,2)", "(b,t,3)"},
			map[string][]string{"a": {"(a,t,1)", "(a,t,2)", "(a,t,3)", "(a,t,4)"}, "b": {"(b,t,1)", "(b,t,2)", "(b,t,3)"}}},
		{"more on their side only", []string{"(a,t,1)"}, []string{"(b,t,1)", "(b,t,2)", "(a,t,2)"},
			map[string][]string{"a": {"(a,t,1)", "(a,t,2)"}, "b": {"(b,t,1)", "(b,t,2)"}}},
		{"nothing of mine", nil, []string{"(a,t,1)", "(a,t,2)"},
			map[string][]string{"a": {"(a,t,1)", "(a,t,2)"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newStreamDecoder("r", nil)
			d.holdAbout(4, 100, usersessions.OfflineOnly)
			var their holder
			their.holdAbout(4, 100, usersessions.OfflineOnly)
			for _, r := range tt.mine {
				if err := d.hold([]byte(r)); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range tt.their {
				if err := their.hold([]byte(r)); err != nil {
					t.Fatal(err)
				}
			}
			d.merge(&their)
			if d.held != len(tt.mine)+len(tt.their) {
				t.Errorf("held %d, want %d", d.held, len(tt.mine)+len(tt.their))
			}
			got := map[string][]string{}
			for id, h := range d.clients[1] {
				if err := d.eachRow(h, func(row []byte) error {
					got[id] = append(got[id], string(row))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if n := d.count(h); n != len(got[id]) {
					t.Errorf("%s: count %d, rows %d", id, n, len(got[id]))
				}
				slices.Sort(got[id])
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("merged %v, want %v", got, tt.want)
			}
			if their.held != 0 || their.clients[1] != nil {
				t.Error("the merged holder still holds rows")
			}
		})
	}
}
