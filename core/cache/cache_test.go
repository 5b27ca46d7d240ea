package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// counting counts the store reads that reach the provider.
type counting struct {
	usersessions.Provider
	gets atomic.Int64
}

func (c *counting) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	c.gets.Add(int64(len(keys)))
	return c.Provider.Get(ctx, keys)
}

func memoryStore(t *testing.T, node string) *counting {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{spi.HostNodeID: node}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return &counting{Provider: p}
}

// following starts c.Follow for the test and waits until imports are on.
func following(t *testing.T, c *cache.Cache) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Follow(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "the cache follows the feed", func() bool { return c.Stats().Following })
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var t0 = time.Now().UTC().Truncate(time.Microsecond)

func session(id string, clients ...string) *usersessions.UserSession {
	s := &usersessions.UserSession{RealmID: "r", ID: id, UserID: "u-" + id, State: usersessions.LoggedIn,
		Started: t0, LastRefresh: t0, ExpiresAt: t0.Add(time.Hour), Clients: map[string]*usersessions.ClientSession{}}
	for _, c := range clients {
		s.Clients[c] = &usersessions.ClientSession{RealmID: "r", UserSessionID: id, ClientID: c,
			Started: t0, LastRefresh: t0, ExpiresAt: t0.Add(time.Hour), CurrentRefreshToken: "rt-0"}
	}
	return s
}

func mustCreate(t *testing.T, s interface {
	Create(context.Context, []*usersessions.UserSession) ([]error, error)
}, sessions ...*usersessions.UserSession) {
	t.Helper()
	errs, err := s.Create(t.Context(), sessions)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		if e != nil {
			t.Fatal(e)
		}
	}
}

func get(t *testing.T, c *cache.Cache, k usersessions.Key) *usersessions.UserSession {
	t.Helper()
	got, err := c.Get(t.Context(), []usersessions.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	return got[0]
}

func TestReadsGoToTheStoreUntilTheFeedIsSubscribed(t *testing.T) {
	store := memoryStore(t, "n1")
	mustCreate(t, store, session("a", "app"))
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }})
	k := usersessions.Key{RealmID: "r", ID: "a"}
	for range 3 {
		get(t, c, k)
	}
	if n := store.gets.Load(); n != 3 {
		t.Fatalf("before the feed is subscribed: %d store reads for 3 gets, want 3", n)
	}
	following(t, c)
	for range 3 {
		if s := get(t, c, k); s == nil || s.Clients["app"] == nil {
			t.Fatalf("get = %+v", s)
		}
	}
	if n := store.gets.Load(); n != 4 {
		t.Errorf("after the feed is subscribed: %d store reads in all, want 4 (one miss, then hits)", n)
	}
	if st := c.Stats(); st.Hits != 2 || st.Imports != 1 {
		t.Errorf("stats %+v, want 2 hits and 1 import", st)
	}
}

func TestWritesReachTheCacheOnlyOnceTheStoreTookThem(t *testing.T) {
	store := memoryStore(t, "n1")
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }})
	following(t, c)
	mustCreate(t, c, session("a", "app"))
	k := usersessions.Key{RealmID: "r", ID: "a"}
	ck := usersessions.ClientKey{Session: k, ClientID: "app"}

	// Rotation through the cache: the cached version must be the store's, so the next
	// versioned write succeeds, and a stale version still fails in the store.
	for gen := 1; gen <= 3; gen++ {
		s := get(t, c, k)
		cs := s.Clients["app"]
		cs.CurrentRefreshToken = fmt.Sprintf("rt-%d", gen)
		errs, err := c.PutClientSessions(t.Context(), []*usersessions.ClientSession{cs})
		if err != nil || errs[0] != nil {
			t.Fatalf("rotation %d: %v %v", gen, err, errs)
		}
	}
	stale := session("a", "app").Clients["app"]
	stale.Version = 1
	if errs, _ := c.PutClientSessions(t.Context(), []*usersessions.ClientSession{stale}); errs == nil || errs[0] == nil {
		t.Fatal("a stale version was accepted")
	}
	touch := usersessions.Touch{Session: k, LastRefresh: t0.Add(time.Minute), ExpiresAt: t0.Add(61 * time.Minute),
		ClientID: "app", ClientExpiresAt: t0.Add(61 * time.Minute)}
	if errs, err := c.Touch(t.Context(), []usersessions.Touch{touch}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	// The refused write left the cache unsure, so it dropped the session; one read brings
	// it back, the next is served from memory.
	get(t, c, k)
	touch.LastRefresh, touch.ExpiresAt, touch.ClientExpiresAt = t0.Add(2*time.Minute), t0.Add(62*time.Minute), t0.Add(62*time.Minute)
	if errs, err := c.Touch(t.Context(), []usersessions.Touch{touch}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	reads := store.gets.Load()
	s := get(t, c, k)
	stored, _ := store.Get(t.Context(), []usersessions.Key{k})
	if s.Clients["app"].CurrentRefreshToken != "rt-3" || s.Clients["app"].Version != stored[0].Clients["app"].Version ||
		!s.LastRefresh.Equal(touch.LastRefresh) || !s.Clients["app"].ExpiresAt.Equal(touch.ClientExpiresAt) {
		t.Errorf("cached %+v / %+v\nstored %+v / %+v", s, s.Clients["app"], stored[0], stored[0].Clients["app"])
	}
	if store.gets.Load() != reads+1 { // the +1 is this test's own store.Get
		t.Errorf("the cached read went to the store")
	}

	if err := c.DeleteClientSessions(t.Context(), []usersessions.ClientKey{ck}); err != nil {
		t.Fatal(err)
	}
	if s := get(t, c, k); s == nil || s.Clients["app"] != nil {
		t.Errorf("after DeleteClientSessions: %+v", s)
	}
	if _, err := c.Delete(t.Context(), []usersessions.Key{k}); err != nil {
		t.Fatal(err)
	}
	if s := get(t, c, k); s != nil {
		t.Errorf("after Delete: %+v", s)
	}
}

func TestCallersCannotChangeTheCachedCopy(t *testing.T) {
	store := memoryStore(t, "n1")
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }})
	following(t, c)
	mustCreate(t, c, session("a", "app"))
	k := usersessions.Key{RealmID: "r", ID: "a"}
	s := get(t, c, k)
	s.UserID = "mallory"
	s.Clients["app"].Scope = "admin"
	s.Clients["evil"] = &usersessions.ClientSession{}
	again := get(t, c, k)
	if again.UserID != "u-a" || again.Clients["app"].Scope != "" || again.Clients["evil"] != nil {
		t.Errorf("the cached copy changed with the caller's: %+v", again)
	}
}

func TestBoundsAndLifespan(t *testing.T) {
	now := t0
	store := memoryStore(t, "n1")
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprint("s", i))
		mustCreate(t, store, session(ids[i]))
	}
	c := cache.New(store, cache.Options{NodeID: "n1", MaxEntries: 3, Now: func() time.Time { return now },
		Lifespans: func(_ context.Context, ss []*usersessions.UserSession, _ bool, now time.Time) ([]time.Time, error) {
			out := make([]time.Time, len(ss))
			for i := range out {
				out[i] = now.Add(10 * time.Minute)
			}
			return out, nil
		}})
	following(t, c)
	for _, id := range ids {
		get(t, c, usersessions.Key{RealmID: "r", ID: id})
	}
	if st := c.Stats(); st.Entries != 3 || st.Evictions != 2 {
		t.Fatalf("after 5 reads with MaxEntries 3: %+v", st)
	}
	// The oldest two were forgotten, not deleted.
	before := store.gets.Load()
	if s := get(t, c, usersessions.Key{RealmID: "r", ID: "s0"}); s == nil {
		t.Fatal("an evicted session is gone from the store")
	}
	if store.gets.Load() != before+1 {
		t.Error("an evicted session was served without a store read")
	}
	// Past the lifespan, a read goes to the store again and still finds the session.
	now = now.Add(11 * time.Minute)
	before = store.gets.Load()
	if s := get(t, c, usersessions.Key{RealmID: "r", ID: "s0"}); s == nil {
		t.Fatal("session gone after its cache lifespan")
	}
	if store.gets.Load() != before+1 {
		t.Error("a session past its cache lifespan was served from memory")
	}
}

// TestTwoNodesOnOnePostgres: a change made on one node reaches the other node's cache
// through the store's change feed (LISTEN/NOTIFY) within a second.
func TestTwoNodesOnOnePostgres(t *testing.T) {
	url := freshSchema(t)
	a, b := pgNode(t, url, "node-a"), pgNode(t, url, "node-b")
	mustCreate(t, a, session("x", "app"))
	k := usersessions.Key{RealmID: "r", ID: "x"}
	if s := get(t, b, k); s == nil {
		t.Fatal("node b does not see node a's session")
	}
	get(t, b, k) // now cached on b

	cs := get(t, a, k).Clients["app"]
	cs.CurrentRefreshToken = "rt-1"
	if errs, err := a.PutClientSessions(t.Context(), []*usersessions.ClientSession{cs}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	eventually(t, "node b sees node a's rotation", func() bool {
		return get(t, b, k).Clients["app"].CurrentRefreshToken == "rt-1"
	})
	if _, err := a.Delete(t.Context(), []usersessions.Key{k}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "node b sees node a's logout", func() bool { return get(t, b, k) == nil })
	if d := time.Since(start); d > time.Second {
		t.Errorf("node b saw the logout after %v, want within a second", d)
	}
}

func pgNode(t *testing.T, url, node string) *cache.Cache {
	t.Helper()
	p := postgres.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{postgres.OptURL: url, spi.HostNodeID: node}); err != nil {
		t.Fatalf("configure postgres: %v", err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	c := cache.New(p, cache.Options{NodeID: node})
	following(t, c)
	return c
}

// freshSchema returns a URL of the test database whose search_path is a new schema,
// dropped when t ends. An unreachable PostgreSQL fails the test.
func freshSchema(t *testing.T) string {
	t.Helper()
	db, err := sqlx.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("PostgreSQL at %s (run .ci/services): %v", testpg.URL(), err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestRotateReachesTheCachedRecord: a refresh's rotation and touch in one call (Rotate)
// rewrite the cached record as the two calls would: the client session at the store's new
// version, the user session's clocks moved, and the next read served from memory.
func TestRotateReachesTheCachedRecord(t *testing.T) {
	store := memoryStore(t, "n1")
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }})
	following(t, c)
	mustCreate(t, c, session("a", "app"))
	k := usersessions.Key{RealmID: "r", ID: "a"}
	for gen := 1; gen <= 3; gen++ {
		cs := get(t, c, k).Clients["app"]
		cs.CurrentRefreshToken = fmt.Sprintf("rt-%d", gen)
		at := t0.Add(time.Duration(gen) * time.Minute)
		errs, err := c.Rotate(t.Context(), []usersessions.Rotation{{Client: cs, LastRefresh: at, ExpiresAt: at.Add(time.Hour)}})
		if err != nil || errs[0] != nil {
			t.Fatalf("rotation %d: %v %v", gen, err, errs)
		}
	}
	reads := store.gets.Load()
	s := get(t, c, k)
	stored, _ := store.Get(t.Context(), []usersessions.Key{k})
	if s.Clients["app"].CurrentRefreshToken != "rt-3" || s.Clients["app"].Version != stored[0].Clients["app"].Version ||
		!s.LastRefresh.Equal(t0.Add(3*time.Minute)) || !s.ExpiresAt.Equal(stored[0].ExpiresAt) {
		t.Errorf("cached %+v / %+v\nstored %+v / %+v", s, s.Clients["app"], stored[0], stored[0].Clients["app"])
	}
	if store.gets.Load() != reads+1 { // the +1 is this test's own store.Get
		t.Errorf("the cached read went to the store")
	}
	// A stale rotation fails in the store and leaves the cache unsure: it reads again.
	stale := session("a", "app").Clients["app"]
	stale.Version = 1
	if errs, _ := c.Rotate(t.Context(), []usersessions.Rotation{{Client: stale, LastRefresh: t0, ExpiresAt: t0}}); errs == nil || errs[0] == nil {
		t.Fatal("a stale version was accepted")
	}
	if s := get(t, c, k); s.Clients["app"].CurrentRefreshToken != "rt-3" {
		t.Errorf("after a refused rotation the cache serves %q", s.Clients["app"].CurrentRefreshToken)
	}
}
