package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/providers/usersessions/embedded"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore/sqlstoretest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// TestMain lets the test binary serve the embedded provider as a plugin, for the plugin
// sub-benchmarks of BenchmarkTouch64.
func TestMain(m *testing.M) {
	sqlstoretest.Main(m, func(log hclog.Logger) spi.Provider { return embedded.New(log) })
}

// openEmbedded returns an embedded provider on the file at path; the caller closes it.
func openEmbedded(t testing.TB, path string) *embedded.Provider {
	t.Helper()
	p := embedded.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{embedded.OptPath: path}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func newSession(id string, at time.Time) *usersessions.UserSession {
	return &usersessions.UserSession{
		ID: id, RealmID: "r", UserID: "u-" + id, State: usersessions.LoggedIn, AuthMethod: "openid-connect",
		Started: at, LastRefresh: at, ExpiresAt: at.Add(time.Hour),
		Clients: map[string]*usersessions.ClientSession{"app": {
			UserSessionID: id, RealmID: "r", ClientID: "app", Started: at, LastRefresh: at, ExpiresAt: at.Add(time.Hour),
			Scope: "openid", CurrentRefreshToken: "initial",
		}},
	}
}

func firstErr(errs []error, err error) error {
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// TestEmbeddedRotations runs 64 goroutines doing what refreshes with rotation do —
// PutClientSessions with a version check, then Touch — through one Writer over the real
// embedded provider, four goroutines per session so that rotations conflict. Afterwards,
// with the file reopened: every acknowledged rotation is there (the stored version is the
// number of acknowledged rotations plus one, no version was acknowledged twice, and the
// stored token is the last acknowledged one), every acknowledged touch is there (the user
// session's last refresh is the latest acknowledged), and store calls carried more than
// one item. It runs with one store call in flight at a time and with several.
func TestEmbeddedRotations(t *testing.T) {
	for _, slots := range []int{1, 4} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) { embeddedRotations(t, slots) })
	}
}

func embeddedRotations(t *testing.T, slots int) {
	const (
		sessions   = 16
		perSession = 4 // goroutines per session: 64 in all
		rotations  = 6
	)
	path := filepath.Join(t.TempDir(), "sessions.db")
	p := openEmbedded(t, path)
	w := groupcommit.New(p, groupcommit.Options{MaxInFlight: slots})
	base := time.Now().UTC().Truncate(time.Second)

	keys := make([]usersessions.Key, sessions)
	var wg sync.WaitGroup
	for i := range sessions {
		keys[i] = sessionKey(fmt.Sprintf("s%02d", i))
		wg.Go(func() {
			if err := firstErr(w.Create(t.Context(), []*usersessions.UserSession{newSession(keys[i].ID, base)})); err != nil {
				t.Errorf("Create %s: %v", keys[i].ID, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	type ack struct {
		version int64
		token   string
	}
	var (
		mu        sync.Mutex
		acked     = make([][]ack, sessions)     // per session: acknowledged rotations
		touched   = make([]time.Time, sessions) // per session: latest acknowledged touch
		conflicts int
		clock     atomic.Int64 // microseconds after base, one per touch
	)
	for g := range sessions * perSession {
		s := g % sessions
		key := keys[s]
		wg.Go(func() {
			for i := range rotations {
				for {
					got, err := p.Get(t.Context(), []usersessions.Key{key})
					if err != nil || got[0] == nil {
						t.Errorf("Get %s: %v", key.ID, err)
						return
					}
					next := *got[0].Clients["app"]
					next.PreviousRefreshToken = next.CurrentRefreshToken
					next.CurrentRefreshToken = fmt.Sprintf("g%02d-%02d", g, i)
					next.RotatedAt = base
					errs, err := w.PutClientSessions(t.Context(), []*usersessions.ClientSession{&next})
					if err != nil {
						t.Errorf("PutClientSessions: %v", err)
						return
					}
					if errors.Is(errs[0], spi.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue // another goroutine rotated first: read again
					}
					if errs[0] != nil {
						t.Errorf("PutClientSessions %s: %v", key.ID, errs[0])
						return
					}
					mu.Lock()
					acked[s] = append(acked[s], ack{next.Version + 1, next.CurrentRefreshToken})
					mu.Unlock()
					break
				}
				at := base.Add(time.Duration(clock.Add(1)) * time.Microsecond)
				touch := usersessions.Touch{Session: key, LastRefresh: at, ExpiresAt: at.Add(time.Hour), ClientID: "app", ClientExpiresAt: at.Add(time.Hour)}
				if err := firstErr(w.Touch(t.Context(), []usersessions.Touch{touch})); err != nil {
					t.Errorf("Touch %s: %v", key.ID, err)
					return
				}
				mu.Lock()
				if at.After(touched[s]) {
					touched[s] = at
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	w.Close()
	stats := w.Stats()
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}

	// Everything acknowledged is in the file, as a restarted sessiond finds it.
	p = openEmbedded(t, path)
	defer p.Close(context.Background())
	stored, err := p.Get(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for s, us := range stored {
		if us == nil {
			t.Errorf("session %s is missing", keys[s].ID)
			continue
		}
		cs := us.Clients["app"]
		versions := make([]int64, len(acked[s]))
		last := ack{version: 1, token: "initial"}
		for i, a := range acked[s] {
			versions[i] = a.version
			if a.version > last.version {
				last = a
			}
		}
		slices.Sort(versions)
		want := make([]int64, perSession*rotations)
		for i := range want {
			want[i] = int64(i + 2)
		}
		if !slices.Equal(versions, want) {
			t.Errorf("session %s: acknowledged rotations got versions %v, want each of 2..%d once", us.ID, versions, perSession*rotations+1)
		}
		if cs.Version != last.version || cs.CurrentRefreshToken != last.token {
			t.Errorf("session %s: stored version %d token %q, want the last acknowledged rotation: version %d token %q",
				us.ID, cs.Version, cs.CurrentRefreshToken, last.version, last.token)
		}
		if !us.LastRefresh.Equal(touched[s]) {
			t.Errorf("session %s: last refresh %v, want the latest acknowledged touch %v", us.ID, us.LastRefresh, touched[s])
		}
	}

	for name, c := range map[string]groupcommit.Counts{"Touch": stats.Touch, "PutClientSessions": stats.PutClientSessions} {
		if c.Batches >= c.Items {
			t.Errorf("%s: %d items in %d store calls: nothing was batched", name, c.Items, c.Batches)
		}
	}
	if stats.Total().Largest < 2 {
		t.Errorf("largest store call carried %d items, want more than one", stats.Total().Largest)
	}
	t.Logf("%d conflicts; touch %+v; put %+v; create %+v", conflicts, stats.Touch, stats.PutClientSessions, stats.Create)
}

// BenchmarkTouch64: 64 goroutines touching 64 distinct sessions (one each, with their
// client session, as a refresh without rotation does), straight to the store and through
// a Writer, over the embedded provider in process and as a plugin. items/s is touches
// acknowledged per second.
//
//	go test -run '^$' -bench Touch64 -benchtime 5s ./core/groupcommit/
func BenchmarkTouch64(b *testing.B) {
	const callers = 64
	setup := func(b *testing.B, p usersessions.Provider) []usersessions.Key {
		keys := make([]usersessions.Key, callers)
		ss := make([]*usersessions.UserSession, callers)
		at := time.Now().UTC().Truncate(time.Second)
		for i := range keys {
			keys[i] = sessionKey(fmt.Sprintf("s%02d", i))
			ss[i] = newSession(keys[i].ID, at)
		}
		if err := firstErr(p.Create(context.Background(), ss)); err != nil {
			b.Fatal(err)
		}
		return keys
	}
	inProcess := func(b *testing.B) usersessions.Provider {
		p := openEmbedded(b, filepath.Join(b.TempDir(), "sessions.db"))
		b.Cleanup(func() { p.Close(context.Background()) })
		return p
	}
	plugin := func(b *testing.B) usersessions.Provider {
		return sqlstoretest.StartPlugin(b, embedded.ID, spi.Config{embedded.OptPath: filepath.Join(b.TempDir(), "sessions.db")})
	}
	var clock atomic.Int64 // every touch moves the clock on
	for _, provider := range []struct {
		name string
		open func(b *testing.B) usersessions.Provider
	}{{"", inProcess}, {"plugin-", plugin}} {
		p := provider.open(b)
		keys := setup(b, p)
		base := time.Now().UTC()
		for _, grouped := range []bool{false, true} {
			name := provider.name + "direct"
			if grouped {
				name = provider.name + "groupcommit"
			}
			b.Run(name, func(b *testing.B) {
				var store groupcommit.Store = p
				var w *groupcommit.Writer
				if grouped {
					w = groupcommit.New(p, groupcommit.Options{})
					store = w
				}
				var n atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for g := range callers {
					wg.Go(func() {
						for n.Add(1) <= int64(b.N) {
							at := base.Add(time.Duration(clock.Add(1)) * time.Microsecond)
							t := usersessions.Touch{Session: keys[g], LastRefresh: at, ExpiresAt: at.Add(time.Hour), ClientID: "app", ClientExpiresAt: at.Add(time.Hour)}
							if err := firstErr(store.Touch(context.Background(), []usersessions.Touch{t})); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
				if w != nil {
					w.Close()
					s := w.Stats().Touch
					b.ReportMetric(float64(s.Items)/float64(max(s.Batches, 1)), "items/batch")
				}
			})
		}
	}
}
