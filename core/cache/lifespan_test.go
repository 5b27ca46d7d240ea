package cache_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/providers/cachelifespan/override"
	"github.com/sessiond/sessiond/providers/cachelifespan/remaining"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// offlineSession is an offline session of 30 days with client sessions that end at
// their own times.
func offlineSession(id string, clientEnds ...time.Duration) *usersessions.UserSession {
	s := &usersessions.UserSession{RealmID: "r", ID: id, UserID: "u-" + id, Offline: true, State: usersessions.LoggedIn,
		Started: t0, LastRefresh: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour), Clients: map[string]*usersessions.ClientSession{}}
	for i, end := range clientEnds {
		c := fmt.Sprint("app-", i)
		s.Clients[c] = &usersessions.ClientSession{RealmID: "r", UserSessionID: id, ClientID: c, Offline: true,
			Started: t0, LastRefresh: t0, ExpiresAt: t0.Add(end), CurrentRefreshToken: "rt-0"}
	}
	return s
}

func configuredOverride(t *testing.T, cfg spi.Config) *override.Provider {
	t.Helper()
	p := override.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

// How an entry holding a user session and its client sessions gets one lifespan out of
// the SPI's per-entry answers: the user-session answer, cut short by any client answer
// that is shorter than that client session's own remaining lifetime.
func TestProviderLifespansFoldClientSessionsIntoTheEntry(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name     string
		provider cachelifespan.Provider
		session  *usersessions.UserSession
		imported bool
		want     time.Duration // from t0
	}{
		{"default: the user session's own end", remaining.New(nil), offlineSession("a", 30*day), true, 30 * day},
		{"default: a client session ending first expires inside the entry", remaining.New(nil), offlineSession("a", time.Hour), true, 30 * day},
		{"user override alone", configuredOverride(t, spi.Config{override.OptOfflineSession: "2h"}), offlineSession("a", 30*day), true, 2 * time.Hour},
		{"client override shorter than the user override", configuredOverride(t, spi.Config{override.OptOfflineSession: "2h", override.OptOfflineClientSession: "10m"}), offlineSession("a", 30*day), true, 10 * time.Minute},
		{"client override longer than the user override", configuredOverride(t, spi.Config{override.OptOfflineSession: "10m", override.OptOfflineClientSession: "2h"}), offlineSession("a", 30*day), true, 10 * time.Minute},
		{"client override alone", configuredOverride(t, spi.Config{override.OptOfflineClientSession: "10m"}), offlineSession("a", 30*day), true, 10 * time.Minute},
		{"client override, but no client session", configuredOverride(t, spi.Config{override.OptOfflineClientSession: "10m"}), offlineSession("a"), true, 30 * day},
		{"client override longer than the client's own end: it ends by itself", configuredOverride(t, spi.Config{override.OptOfflineClientSession: "2h"}), offlineSession("a", time.Hour), true, 30 * day},
		{"the earliest of several client overrides", configuredOverride(t, spi.Config{override.OptOfflineClientSession: "10m"}), offlineSession("a", 30*day, 5*time.Minute+30*day), true, 10 * time.Minute},
		{"created here, not imported: no override", configuredOverride(t, spi.Config{override.OptOfflineSession: "2h", override.OptOfflineClientSession: "10m"}), offlineSession("a", 30*day), false, 30 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cache.ProviderLifespans(tt.provider)(t.Context(), []*usersessions.UserSession{tt.session}, tt.imported, t0)
			if err != nil {
				t.Fatal(err)
			}
			// The cache takes the earlier of this and the session's own end.
			if until := minTime(got[0], tt.session.ExpiresAt); !until.Equal(t0.Add(tt.want)) {
				t.Errorf("entry until %v after t0, want %v", until.Sub(t0), tt.want)
			}
		})
	}
}

// TestProviderLifespansSkipGaps: a batch a Get read holds nil where a key was not found;
// the provider is asked about the sessions only, and each gets its own answer.
func TestProviderLifespansSkipGaps(t *testing.T) {
	p := configuredOverride(t, spi.Config{override.OptOfflineSession: "2h"})
	got, err := cache.ProviderLifespans(p)(t.Context(), []*usersessions.UserSession{nil, offlineSession("a", time.Hour), nil}, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].IsZero() || !got[1].Equal(t0.Add(2*time.Hour)) || !got[2].IsZero() {
		t.Errorf("lifespans %v, want [zero, t0+2h, zero]", got)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// countingLifespans counts calls and checks that the cache asks without holding its lock
// (a plugin call under the lock would stall every reader for its round trip).
type countingLifespans struct {
	c               *cache.Cache
	calls, sessions atomic.Int64
	imported        []bool
	mu              sync.Mutex
	until           func(*usersessions.UserSession, time.Time) time.Time
	err             error
}

func (l *countingLifespans) fn(_ context.Context, ss []*usersessions.UserSession, imported bool, now time.Time) ([]time.Time, error) {
	l.c.Stats() // takes the cache's lock: deadlocks if the cache holds it
	l.calls.Add(1)
	l.sessions.Add(int64(len(ss)))
	l.mu.Lock()
	l.imported = append(l.imported, imported)
	l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		if l.until != nil {
			out[i] = l.until(s, now)
		}
	}
	return out, nil
}

func TestLifespansAreAskedOncePerBatchOutsideTheLock(t *testing.T) {
	store := memoryStore(t, "n1")
	var keys []usersessions.Key
	var sessions []*usersessions.UserSession
	for i := range 5 {
		s := session(fmt.Sprint("s", i), "app")
		sessions = append(sessions, s)
		keys = append(keys, s.Key())
	}
	mustCreate(t, store, sessions[:3]...)
	l := &countingLifespans{}
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }, Lifespans: l.fn})
	l.c = c
	following(t, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, err := c.Get(t.Context(), keys[:3]) // three misses: one question
		if err != nil || len(got) != 3 {
			t.Errorf("Get: %v %v", got, err)
		}
		mustCreate(t, c, sessions[3:]...) // two creates: one question
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the cache asked for lifespans while holding its lock")
	}
	if l.calls.Load() != 2 || l.sessions.Load() != 5 {
		t.Errorf("%d calls for %d sessions, want 2 calls for 5", l.calls.Load(), l.sessions.Load())
	}
	if !reflect.DeepEqual(l.imported, []bool{true, false}) {
		t.Errorf("imported flags %v, want [true false] (read from the store, then created)", l.imported)
	}
	// Cached now: no more questions, no store reads.
	reads := store.gets.Load()
	if got, err := c.Get(t.Context(), keys); err != nil || got[4] == nil {
		t.Fatal(got, err)
	}
	if l.calls.Load() != 2 || store.gets.Load() != reads {
		t.Errorf("hits asked again (%d calls) or read the store (%d reads)", l.calls.Load(), store.gets.Load()-reads)
	}
}

// A cache-lifespan provider that fails must not stop sessions from being cached or served:
// each keeps its own remaining lifetime, and the failure is logged (not for every call).
func TestFailingLifespansFallBackToTheSessionsOwnEnd(t *testing.T) {
	store := memoryStore(t, "n1")
	for i := range 3 {
		mustCreate(t, store, session(fmt.Sprint("s", i), "app"))
	}
	now := t0
	var log testlog.Buffer
	l := &countingLifespans{err: errors.New("plugin cache-lifespan/override is restarting")}
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return now }, Lifespans: l.fn,
		Log: hclog.New(&hclog.LoggerOptions{Output: &log})})
	l.c = c
	following(t, c)
	for i := range 3 {
		if s := get(t, c, usersessions.Key{RealmID: "r", ID: fmt.Sprint("s", i)}); s == nil {
			t.Fatal("a session was not served while the lifespan provider failed")
		}
	}
	if st := c.Stats(); st.Imports != 3 {
		t.Errorf("stats %+v, want the 3 sessions cached", st)
	}
	if n := strings.Count(log.String(), "cache-lifespan provider failed"); n != 1 || !strings.Contains(log.String(), "restarting") {
		t.Errorf("logged %d times, want once with the error:\n%s", n, log.String())
	}
	// Cached for the session's own lifetime (an hour): still a hit just before, gone after.
	reads := store.gets.Load()
	now = t0.Add(59 * time.Minute)
	get(t, c, usersessions.Key{RealmID: "r", ID: "s0"})
	if store.gets.Load() != reads {
		t.Error("an entry left the cache before its session's own end")
	}
	now = t0.Add(61 * time.Minute)
	get(t, c, usersessions.Key{RealmID: "r", ID: "s0"})
	if store.gets.Load() != reads+1 {
		t.Error("an entry outlived its session")
	}
}

// The override provider through the cache: an imported offline session leaves the cache
// at its override, the next read reloads it from the store (where it still is) and caches
// it again for another lifespan; a session created on this node is not shortened.
func TestOverriddenEntryIsEvictedAndReloaded(t *testing.T) {
	store := memoryStore(t, "n1")
	stored := offlineSession("imported", 30*24*time.Hour)
	mustCreate(t, store, stored)
	now := t0
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return now },
		Lifespans: cache.ProviderLifespans(configuredOverride(t, spi.Config{override.OptOfflineSession: "1h", override.OptOfflineClientSession: "10m"}))})
	following(t, c)
	mustCreate(t, c, offlineSession("created", 30*24*time.Hour))
	k := stored.Key()
	created := usersessions.Key{RealmID: "r", ID: "created", Offline: true}

	get(t, c, k)
	reads := store.gets.Load()
	now = t0.Add(9 * time.Minute)
	get(t, c, k)
	get(t, c, created)
	if store.gets.Load() != reads {
		t.Fatal("read from the store within the lifespan")
	}
	now = t0.Add(11 * time.Minute) // past the client-session override of 10m
	if s := get(t, c, k); s == nil || s.Clients["app-0"] == nil {
		t.Fatalf("after the lifespan the session is gone: %+v", s)
	}
	if store.gets.Load() != reads+1 {
		t.Errorf("%d store reads after the lifespan, want 1", store.gets.Load()-reads)
	}
	if st := c.Stats(); st.Evictions != 1 {
		t.Errorf("stats %+v, want 1 eviction", st)
	}
	get(t, c, k) // cached again
	get(t, c, created)
	if store.gets.Load() != reads+1 {
		t.Errorf("the reloaded session was not cached again, or the created one was evicted")
	}
}

// The compact form gives back what was put in, field for field (times in UTC).
func TestCachedCopyIsFaithful(t *testing.T) {
	store := memoryStore(t, "n1")
	s := session("full", "app", "other")
	s.LoginUsername, s.IPAddress, s.UserAgent, s.AuthMethod = "alice", "10.0.0.1", "curl/8", "openid-connect"
	s.BrokerSessionID, s.BrokerUserID, s.RememberMe = "b-1", "bu-1", true
	s.Notes = map[string]string{"k": "v", "long": strings.Repeat("x", 40)}
	cs := s.Clients["app"]
	cs.AuthMethod, cs.RedirectURI, cs.Action, cs.Scope = "openid-connect", "https://app/cb", "AUTHENTICATE", "openid offline_access"
	cs.Notes = map[string]string{}
	cs.CurrentRefreshTokenUseCount, cs.PreviousRefreshToken, cs.RotatedAt = 2, "rt-prev", t0.Add(time.Second)
	mustCreate(t, store, s)
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }})
	following(t, c)
	want := get(t, c, s.Key()) // from the store
	got := get(t, c, s.Key())  // from the cache
	if c.Stats().Hits != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
	utc := func(x *usersessions.UserSession) *usersessions.UserSession {
		x.Started, x.LastRefresh, x.ExpiresAt = x.Started.UTC(), x.LastRefresh.UTC(), x.ExpiresAt.UTC()
		for _, cs := range x.Clients {
			cs.Started, cs.LastRefresh, cs.ExpiresAt = cs.Started.UTC(), cs.LastRefresh.UTC(), cs.ExpiresAt.UTC()
			if !cs.RotatedAt.IsZero() {
				cs.RotatedAt = cs.RotatedAt.UTC()
			}
		}
		return x
	}
	if !reflect.DeepEqual(utc(got), utc(want)) {
		t.Errorf("cached copy differs\n got %+v\nwant %+v", got, want)
		for id := range want.Clients {
			t.Errorf("client %s\n got %+v\nwant %+v", id, got.Clients[id], want.Clients[id])
		}
	}
}

func TestPreloadWindow(t *testing.T) {
	store := memoryStore(t, "n1")
	c := cache.New(store, cache.Options{NodeID: "n1", MaxEntries: 4, Now: func() time.Time { return t0 }})
	if _, err := c.BeginPreload(); !errors.Is(err, cache.ErrNotFollowing) {
		t.Fatalf("BeginPreload before the feed = %v, want ErrNotFollowing", err)
	}
	following(t, c)
	mustCreate(t, c, session("cached", "app")) // cached by this node
	p, err := c.BeginPreload()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.BeginPreload(); err == nil {
		t.Error("a second window opened")
	}
	// Written through this cache after the window opened: not imported from a page.
	mustCreate(t, store, session("touched", "app"))
	if _, err := c.Touch(t.Context(), []usersessions.Touch{{Session: usersessions.Key{RealmID: "r", ID: "touched"}, LastRefresh: t0, ExpiresAt: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	stale := session("cached", "app")
	stale.UserID = "stale"
	expired := session("expired")
	expired.ExpiresAt = t0
	page := []*usersessions.UserSession{session("p1"), stale, session("touched"), expired, session("p2"), session("p3"), session("p4")}
	n, full, err := p.Import(t.Context(), page)
	if err != nil || n != 3 || !full {
		t.Errorf("Import = %d, %v, %v; want 3 (p1, p2, p3), full", n, full, err)
	}
	if s := get(t, c, usersessions.Key{RealmID: "r", ID: "cached"}); s.UserID != "u-cached" {
		t.Errorf("a cached session was replaced by the page's copy: %+v", s)
	}
	if st := c.Stats(); st.Preloaded != 3 || st.Entries != 4 || st.Evictions != 0 {
		t.Errorf("stats %+v", st)
	}
	// A page that arrives once the preload was cut short is not imported: its lifespans
	// could not be asked.
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if n, _, err := p.Import(cancelled, []*usersessions.UserSession{session("late")}); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Import with its context done = %d, %v; want 0, context.Canceled", n, err)
	}
	p.Close()
	if _, _, err := p.Import(t.Context(), page); !errors.Is(err, cache.ErrPreloadBroken) {
		t.Errorf("Import after Close = %v", err)
	}
	p2, err := c.BeginPreload()
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	c.Forget()
	if _, _, err := p2.Import(t.Context(), page); !errors.Is(err, cache.ErrPreloadBroken) || !strings.Contains(err.Error(), "emptied") {
		t.Errorf("Import after Forget = %v", err)
	}
}

// A flush (sign out all, a user's logout) during the preload keeps the sessions it selects
// out of the cache.
func TestFlushDuringThePreload(t *testing.T) {
	store := memoryStore(t, "n1")
	c := cache.New(store, cache.Options{NodeID: "n1", Now: func() time.Time { return t0 }})
	following(t, c)
	p, err := c.BeginPreload()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := c.DeleteMatching(t.Context(), usersessions.Filter{RealmID: "r", UserID: "u-a", Offline: usersessions.Both}); err != nil {
		t.Fatal(err)
	}
	n, _, err := p.Import(t.Context(), []*usersessions.UserSession{session("a"), session("b")})
	if err != nil || n != 1 {
		t.Errorf("Import = %d, %v; want only b", n, err)
	}
}
