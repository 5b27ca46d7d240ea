package volatile_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/volatile"
	"github.com/sessiond/sessiond/providers/usersessions/embedded"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

const node = "node-1"

// openMemory returns a configured memory provider; the caller closes it (through a Store).
func openMemory(t *testing.T) *memory.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{spi.HostNodeID: node}); err != nil {
		t.Fatalf("Configure memory: %v", err)
	}
	return p
}

// openEmbedded returns an embedded provider on the file at path; the caller closes it.
func openEmbedded(t *testing.T, path string) *embedded.Provider {
	t.Helper()
	p := embedded.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{embedded.OptPath: path, spi.HostNodeID: node}); err != nil {
		t.Fatalf("Configure embedded: %v", err)
	}
	return p
}

// closeWith closes v when t ends.
func closeWith(t *testing.T, v *volatile.Store) *volatile.Store {
	t.Cleanup(func() {
		if err := v.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return v
}

func TestConformance(t *testing.T) {
	t.Run("memory+memory", func(t *testing.T) {
		t.Parallel()
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			return closeWith(t, volatile.New(openMemory(t), openMemory(t)))
		})
	})
	t.Run("memory+embedded", func(t *testing.T) {
		t.Parallel()
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			store := openEmbedded(t, filepath.Join(t.TempDir(), "sessions.db"))
			return closeWith(t, volatile.New(openMemory(t), store))
		})
	})
}

var base = time.Date(2030, time.March, 14, 15, 9, 26, 535897000, time.UTC)

func session(id string, offline bool, clients ...string) *usersessions.UserSession {
	s := &usersessions.UserSession{
		ID: id, RealmID: "r1", UserID: "u1", Offline: offline, State: usersessions.LoggedIn,
		Started: base.Add(-time.Hour), LastRefresh: base.Add(-time.Minute), ExpiresAt: base.Add(time.Hour),
		Notes:   map[string]string{"k": "v"},
		Clients: map[string]*usersessions.ClientSession{},
	}
	for _, c := range clients {
		s.Clients[c] = client(s, c)
	}
	return s
}

func client(s *usersessions.UserSession, id string) *usersessions.ClientSession {
	return &usersessions.ClientSession{
		UserSessionID: s.ID, RealmID: s.RealmID, ClientID: id, Offline: s.Offline,
		Started: base.Add(-time.Hour), LastRefresh: base.Add(-time.Minute), ExpiresAt: base.Add(30 * time.Minute),
		Scope: "openid",
	}
}

func kind(offline bool) usersessions.OfflineSelector {
	if offline {
		return usersessions.OfflineOnly
	}
	return usersessions.OnlineOnly
}

func kindName(offline bool) string {
	if offline {
		return "offline"
	}
	return "online"
}

func create(t *testing.T, p usersessions.Provider, ss ...*usersessions.UserSession) {
	t.Helper()
	errs, err := p.Create(t.Context(), ss)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("Create of %s: %v", keyString(ss[i].Key()), e)
		}
	}
}

func mustGet(t *testing.T, p usersessions.Provider, k usersessions.Key) *usersessions.UserSession {
	t.Helper()
	got, err := p.Get(t.Context(), []usersessions.Key{k})
	if err != nil || len(got) != 1 || got[0] == nil {
		t.Fatalf("Get(%s) = %v, %v", keyString(k), got, err)
	}
	return got[0]
}

func keyString(k usersessions.Key) string {
	return k.ID + "/" + kindName(k.Offline)
}

func keyStrings(ss []*usersessions.UserSession) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = keyString(s.Key())
	}
	return out
}

func count(t *testing.T, p usersessions.Provider, sel usersessions.OfflineSelector) int64 {
	t.Helper()
	n, err := p.Count(t.Context(), usersessions.Filter{RealmID: "r1", Offline: sel})
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

// spy wraps the store and records every session call that reaches it, and every online
// key or online-selecting filter among them.
type spy struct {
	usersessions.Provider
	mu     sync.Mutex
	calls  []string
	online []string
}

func (s *spy) saw(method string, online ...bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, method)
	for _, on := range online {
		if on {
			s.online = append(s.online, method)
		}
	}
}

func (s *spy) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.online = nil, nil
}

func (s *spy) seen() (calls, online []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), slices.Clone(s.online)
}

func onlineSessions(ss []*usersessions.UserSession) []bool {
	var out []bool
	for _, s := range ss {
		out = append(out, s != nil && !s.Offline)
	}
	return out
}

func onlineFilter(f usersessions.Filter) bool { return f.Offline != usersessions.OfflineOnly }

func (s *spy) Create(ctx context.Context, ss []*usersessions.UserSession) ([]error, error) {
	s.saw("Create", onlineSessions(ss)...)
	return s.Provider.Create(ctx, ss)
}

func (s *spy) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	for _, k := range keys {
		s.saw("Get", !k.Offline)
	}
	return s.Provider.Get(ctx, keys)
}

func (s *spy) Update(ctx context.Context, ss []*usersessions.UserSession) ([]error, error) {
	s.saw("Update", onlineSessions(ss)...)
	return s.Provider.Update(ctx, ss)
}

func (s *spy) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	for _, t := range touches {
		s.saw("Touch", !t.Session.Offline)
	}
	return s.Provider.Touch(ctx, touches)
}

func (s *spy) PutClientSessions(ctx context.Context, cs []*usersessions.ClientSession) ([]error, error) {
	for _, c := range cs {
		s.saw("PutClientSessions", c != nil && !c.Offline)
	}
	return s.Provider.PutClientSessions(ctx, cs)
}

func (s *spy) DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error {
	for _, k := range keys {
		s.saw("DeleteClientSessions", !k.Session.Offline)
	}
	return s.Provider.DeleteClientSessions(ctx, keys)
}

func (s *spy) Delete(ctx context.Context, keys []usersessions.Key) (int, error) {
	for _, k := range keys {
		s.saw("Delete", !k.Offline)
	}
	return s.Provider.Delete(ctx, keys)
}

func (s *spy) DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error) {
	s.saw("DeleteMatching", onlineFilter(f))
	return s.Provider.DeleteMatching(ctx, f)
}

func (s *spy) List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error) {
	s.saw("List", onlineFilter(f))
	return s.Provider.List(ctx, f, p)
}

func (s *spy) Count(ctx context.Context, f usersessions.Filter) (int64, error) {
	s.saw("Count", onlineFilter(f))
	return s.Provider.Count(ctx, f)
}

func (s *spy) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	s.saw("CountByClient", !offline)
	return s.Provider.CountByClient(ctx, realmID, offline, liveAt)
}

func (s *spy) Stream(ctx context.Context, req usersessions.StreamRequest, fn func([]*usersessions.UserSession) error) error {
	s.saw("Stream", onlineFilter(req.Filter))
	return s.Provider.Stream(ctx, req, fn)
}

func wantNoErrs(t *testing.T, what string, errs []error, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("%s, item %d: %v", what, i, e)
		}
	}
}

// sessionOps are the session calls of the contract, each made on a session s of one kind
// that exists beforehand unless fresh is set.
var sessionOps = []struct {
	name  string
	fresh bool
	run   func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession)
}{
	{"Create", true, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		create(t, v, s)
	}},
	{"Get", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		mustGet(t, v, s.Key())
	}},
	{"Update", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		u := *s
		u.Version = 1
		u.State = usersessions.LoggingOut
		errs, err := v.Update(t.Context(), []*usersessions.UserSession{&u})
		wantNoErrs(t, "Update", errs, err)
	}},
	{"Touch", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		errs, err := v.Touch(t.Context(), []usersessions.Touch{{Session: s.Key(), LastRefresh: base, ExpiresAt: base.Add(2 * time.Hour),
			ClientID: "app", ClientExpiresAt: base.Add(time.Hour)}})
		wantNoErrs(t, "Touch", errs, err)
	}},
	{"PutClientSessions", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		errs, err := v.PutClientSessions(t.Context(), []*usersessions.ClientSession{client(s, "spa")})
		wantNoErrs(t, "PutClientSessions", errs, err)
	}},
	{"DeleteClientSessions", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		if err := v.DeleteClientSessions(t.Context(), []usersessions.ClientKey{{Session: s.Key(), ClientID: "app"}}); err != nil {
			t.Fatal(err)
		}
	}},
	{"Delete", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		if n, err := v.Delete(t.Context(), []usersessions.Key{s.Key()}); err != nil || n != 1 {
			t.Fatalf("Delete = %d, %v", n, err)
		}
	}},
	{"DeleteMatching", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		if n, err := v.DeleteMatching(t.Context(), usersessions.Filter{RealmID: "r1", UserID: "u1", Offline: kind(s.Offline)}); err != nil || n != 1 {
			t.Fatalf("DeleteMatching = %d, %v", n, err)
		}
	}},
	{"List", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		page, err := v.List(t.Context(), usersessions.Filter{RealmID: "r1", Offline: kind(s.Offline)}, usersessions.Page{})
		if err != nil || len(page) != 1 {
			t.Fatalf("List = %v, %v", page, err)
		}
	}},
	{"Count", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		if n := count(t, v, kind(s.Offline)); n != 1 {
			t.Fatalf("Count = %d", n)
		}
	}},
	{"Stream", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		n := 0
		err := v.Stream(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1", Offline: kind(s.Offline)}},
			func(page []*usersessions.UserSession) error { n += len(page); return nil })
		if err != nil || n != 1 {
			t.Fatalf("Stream gave %d sessions, %v", n, err)
		}
	}},
	{"CountByClient", false, func(t *testing.T, v usersessions.Provider, s *usersessions.UserSession) {
		got, err := v.CountByClient(t.Context(), "r1", s.Offline, time.Time{})
		if err != nil || got["app"] != 1 {
			t.Fatalf("CountByClient = %v, %v", got, err)
		}
	}},
}

// TestOnlineSessionsNeverReachTheStore makes each session call on an online and on an
// offline session and checks, with a spy on the store, that the online ones never reach
// the store and the offline ones do, and then that each provider holds only its kind.
func TestOnlineSessionsNeverReachTheStore(t *testing.T) {
	for _, op := range sessionOps {
		for _, offline := range []bool{false, true} {
			t.Run(op.name+"/"+kindName(offline), func(t *testing.T) {
				online, raw := openMemory(t), openMemory(t)
				store := &spy{Provider: raw}
				v := closeWith(t, volatile.New(online, store))
				s := session("s1", offline, "app")
				if !op.fresh {
					create(t, v, s)
				}
				store.reset()
				op.run(t, v, s)

				calls, onlineCalls := store.seen()
				if len(onlineCalls) > 0 {
					t.Errorf("online sessions reached the store through %v", onlineCalls)
				}
				if offline && len(calls) == 0 {
					t.Errorf("%s of an offline session never reached the store", op.name)
				}
				if !offline && len(calls) > 0 {
					t.Errorf("%s of an online session called the store: %v", op.name, calls)
				}
				if n := count(t, raw, usersessions.Both); !offline && n != 0 {
					t.Errorf("the store holds %d sessions after online writes", n)
				}
				if n := count(t, online, usersessions.Both); offline && n != 0 {
					t.Errorf("the in-memory provider holds %d sessions after offline writes", n)
				}
			})
		}
	}
}

// TestBothSelectsOnlyOfflineFromTheStore checks that the calls that select both kinds ask
// the store for offline sessions only.
func TestBothSelectsOnlyOfflineFromTheStore(t *testing.T) {
	both := usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}
	tests := []struct {
		name string
		run  func(t *testing.T, v usersessions.Provider) int
	}{
		{"List", func(t *testing.T, v usersessions.Provider) int {
			page, err := v.List(t.Context(), both, usersessions.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return len(page)
		}},
		{"Count", func(t *testing.T, v usersessions.Provider) int { return int(count(t, v, usersessions.Both)) }},
		{"Stream", func(t *testing.T, v usersessions.Provider) int {
			n := 0
			err := v.Stream(t.Context(), usersessions.StreamRequest{Filter: both, PageSize: 1},
				func(page []*usersessions.UserSession) error { n += len(page); return nil })
			if err != nil {
				t.Fatal(err)
			}
			return n
		}},
		{"DeleteMatching", func(t *testing.T, v usersessions.Provider) int {
			n, err := v.DeleteMatching(t.Context(), both)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &spy{Provider: openMemory(t)}
			v := closeWith(t, volatile.New(openMemory(t), store))
			create(t, v, session("a", false, "app"), session("a", true, "app"), session("b", false), session("c", true))
			store.reset()
			if n := tt.run(t, v); n != 4 {
				t.Errorf("%s with Both saw %d sessions, want 4", tt.name, n)
			}
			calls, onlineCalls := store.seen()
			if len(calls) == 0 || len(onlineCalls) > 0 {
				t.Errorf("store calls %v, of which selecting online sessions %v; want some, none", calls, onlineCalls)
			}
		})
	}
}

// TestEmbeddedStoreHoldsOnlyOfflineSessions writes through a Store over an embedded file
// and reads the file directly, then restarts: the offline sessions (and records) are
// still there, the online ones are gone.
func TestEmbeddedStoreHoldsOnlyOfflineSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	online, file := openMemory(t), openEmbedded(t, path)
	v := volatile.New(online, file)

	onA, offA := session("a", false, "app"), session("a", true, "app")
	offB, onC := session("b", true, "app"), session("c", false, "app")
	create(t, v, onA, offA, offB, onC)
	// Writes after the creation, of both kinds.
	for _, s := range []*usersessions.UserSession{onC, offB} {
		u := mustGet(t, v, s.Key())
		u.State = usersessions.LoggingOut
		errs, err := v.Update(t.Context(), []*usersessions.UserSession{u})
		wantNoErrs(t, "Update", errs, err)
		errs, err = v.PutClientSessions(t.Context(), []*usersessions.ClientSession{client(s, "spa")})
		wantNoErrs(t, "PutClientSessions", errs, err)
		errs, err = v.Touch(t.Context(), []usersessions.Touch{{Session: s.Key(), LastRefresh: base, ExpiresAt: base.Add(2 * time.Hour)}})
		wantNoErrs(t, "Touch", errs, err)
	}
	if _, err := v.PutRecord(t.Context(), &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		s          *usersessions.UserSession
		inFile     bool
		wantState  usersessions.State
		wantClient []string
		wantLast   time.Time
	}{
		{onA, false, usersessions.LoggedIn, []string{"app"}, onA.LastRefresh},
		{offA, true, usersessions.LoggedIn, []string{"app"}, offA.LastRefresh},
		{offB, true, usersessions.LoggingOut, []string{"app", "spa"}, base},
		{onC, false, usersessions.LoggingOut, []string{"app", "spa"}, base},
	}
	check := func(t *testing.T, when string, p usersessions.Provider, present func(inFile bool) bool) {
		t.Helper()
		for _, tt := range tests {
			got, err := p.Get(t.Context(), []usersessions.Key{tt.s.Key()})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !present(tt.inFile) && got[0] != nil:
				t.Errorf("%s: %s is there, want it gone", when, keyString(tt.s.Key()))
			case present(tt.inFile) && got[0] == nil:
				t.Errorf("%s: %s is missing", when, keyString(tt.s.Key()))
			case got[0] != nil:
				var clients []string
				for c := range got[0].Clients {
					clients = append(clients, c)
				}
				slices.Sort(clients)
				if got[0].State != tt.wantState || !slices.Equal(clients, tt.wantClient) || !got[0].LastRefresh.Equal(tt.wantLast) {
					t.Errorf("%s: %s = state %s, clients %v, last refresh %v; want %s, %v", when, keyString(tt.s.Key()),
						got[0].State, clients, got[0].LastRefresh, tt.wantState, tt.wantClient)
				}
			}
		}
	}
	check(t, "the file, read directly", file, func(inFile bool) bool { return inFile })
	check(t, "the in-memory provider, read directly", online, func(inFile bool) bool { return !inFile })
	check(t, "the Store", v, func(bool) bool { return true })

	if err := v.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Restart: a new process has a new memory provider and the same file.
	v = closeWith(t, volatile.New(openMemory(t), openEmbedded(t, path)))
	check(t, "after a restart", v, func(inFile bool) bool { return inFile })
	if n := count(t, v, usersessions.OnlineOnly); n != 0 {
		t.Errorf("after a restart, %d online sessions, want 0", n)
	}
	page, err := v.List(t.Context(), usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}, usersessions.Page{})
	if got := keyStrings(page); err != nil || !slices.Equal(got, []string{"a/offline", "b/offline"}) {
		t.Errorf("after a restart, List with Both = %v, %v; want the offline sessions", got, err)
	}
	recs, err := v.GetRecords(t.Context(), "not-before", []string{"r1"})
	if err != nil || recs[0] == nil || string(recs[0].Value) != "1" {
		t.Errorf("after a restart, record = %v, %v; want it kept", recs, err)
	}
}

// TestBatchesKeepItemPositions mixes kinds, invalid items and failing items in one batch.
func TestBatchesKeepItemPositions(t *testing.T) {
	v := closeWith(t, volatile.New(openMemory(t), openMemory(t)))
	create(t, v, session("dup", false), session("dup2", true))
	batch := []*usersessions.UserSession{
		session("x", false), session("x", true), nil, session("dup", false), session("dup2", true), session("y", true),
	}
	errs, err := v.Create(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, nil, spi.ErrInvalid, spi.ErrExists, spi.ErrExists, nil}
	for i := range want {
		if (want[i] == nil) != (errs[i] == nil) || (want[i] != nil && !errors.Is(errs[i], want[i])) {
			t.Errorf("Create item %d: %v, want %v", i, errs[i], want[i])
		}
	}

	keys := []usersessions.Key{
		{RealmID: "r1", ID: "y", Offline: true}, {RealmID: "r1", ID: "missing"}, {RealmID: "r1", ID: "x"},
		{RealmID: "r1", ID: "x", Offline: true}, {RealmID: "r1", ID: "y"},
	}
	got, err := v.Get(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		switch {
		case k.ID == "missing" || k == (usersessions.Key{RealmID: "r1", ID: "y"}):
			if got[i] != nil {
				t.Errorf("Get %d (%s) = %s, want nil", i, keyString(k), keyString(got[i].Key()))
			}
		case got[i] == nil || got[i].Key() != k:
			t.Errorf("Get %d = %v, want %s", i, got[i], keyString(k))
		}
	}

	updates := []*usersessions.UserSession{mustGet(t, v, keys[0]), session("nope", false), mustGet(t, v, keys[2])}
	updates[2].Version = 7
	errs, err = v.Update(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], spi.ErrNotFound) || !errors.Is(errs[2], spi.ErrConflict) {
		t.Errorf("Update errors = %v, want nil, ErrNotFound, ErrConflict", errs)
	}
}

// TestOneSideDown: when one provider fails as a whole, the items of the other still apply
// and the failure is the failed side's items' error; when both fail, the call fails.
func TestOneSideDown(t *testing.T) {
	tests := []struct {
		name                    string
		closeOnline, closeStore bool
	}{
		{"store down", false, true},
		{"online down", true, false},
		{"both down", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			online, store := openMemory(t), openMemory(t)
			if tt.closeOnline {
				online.Close(t.Context())
			}
			if tt.closeStore {
				store.Close(t.Context())
			}
			v := volatile.New(online, store)
			errs, err := v.Create(t.Context(), []*usersessions.UserSession{session("a", false), session("a", true)})
			if tt.closeOnline && tt.closeStore {
				if !errors.Is(err, spi.ErrUnavailable) {
					t.Errorf("Create = %v, %v; want ErrUnavailable", errs, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, down := range []bool{tt.closeOnline, tt.closeStore} {
				if down != errors.Is(errs[i], spi.ErrUnavailable) || (!down && errs[i] != nil) {
					t.Errorf("item %d (%s side down: %v): %v", i, kindName(i == 1), down, errs[i])
				}
			}
			if _, err := v.Get(t.Context(), []usersessions.Key{{RealmID: "r1", ID: "a"}, {RealmID: "r1", ID: "a", Offline: true}}); !errors.Is(err, spi.ErrUnavailable) {
				t.Errorf("Get across a side that is down: %v, want ErrUnavailable", err)
			}
		})
	}
}

// mergeFixture is online a, b, d and offline b, c, d, e: twins b and d, singles on each
// side. The contract's order is the want list.
func mergeFixture(t *testing.T) (*volatile.Store, []string) {
	v := closeWith(t, volatile.New(openMemory(t), openMemory(t)))
	for _, k := range []struct {
		id      string
		offline bool
	}{{"a", false}, {"b", false}, {"d", false}, {"b", true}, {"c", true}, {"d", true}, {"e", true}} {
		create(t, v, session(k.id, k.offline))
	}
	return v, []string{"a/online", "b/online", "b/offline", "c/offline", "d/online", "d/offline", "e/offline"}
}

func TestListWithBothMergesInKeyOrder(t *testing.T) {
	f := usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}
	for limit := 1; limit <= 8; limit++ {
		t.Run(fmt.Sprintf("Limit %d", limit), func(t *testing.T) {
			v, want := mergeFixture(t)
			var all []string
			after := ""
			for range 20 {
				page, err := v.List(t.Context(), f, usersessions.Page{After: after, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				n := len(page)
				if n > limit && !(n == limit+1 && page[n-1].ID == page[n-2].ID) {
					t.Errorf("page %v has more than Limit %d sessions without ending in twins", keyStrings(page), limit)
				}
				all = append(all, keyStrings(page)...)
				after = page[n-1].ID
			}
			if !slices.Equal(all, want) {
				t.Errorf("listed %v, want %v", all, want)
			}
		})
	}
	t.Run("After in the middle", func(t *testing.T) {
		v, want := mergeFixture(t)
		page, err := v.List(t.Context(), f, usersessions.Page{After: "b", Limit: 3})
		if got := keyStrings(page); err != nil || !slices.Equal(got, want[3:6]) {
			t.Errorf("List after b = %v, %v; want %v", got, err, want[3:6])
		}
	})
}

func TestStreamWithBothMergesInKeyOrder(t *testing.T) {
	f := usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}
	for size := 1; size <= 8; size++ {
		t.Run(fmt.Sprintf("PageSize %d", size), func(t *testing.T) {
			v, want := mergeFixture(t)
			var all []string
			err := v.Stream(t.Context(), usersessions.StreamRequest{Filter: f, PageSize: size}, func(page []*usersessions.UserSession) error {
				if len(page) == 0 || len(page) > size {
					return fmt.Errorf("page of %d with PageSize %d", len(page), size)
				}
				all = append(all, keyStrings(page)...)
				return nil
			})
			if err != nil || !slices.Equal(all, want) {
				t.Errorf("streamed %v, %v; want %v", all, err, want)
			}
		})
	}
	t.Run("fn's error stops both sides", func(t *testing.T) {
		v, _ := mergeFixture(t)
		stop := errors.New("stop")
		calls := 0
		err := v.Stream(t.Context(), usersessions.StreamRequest{Filter: f, PageSize: 2}, func([]*usersessions.UserSession) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Stream = %v after %d calls, want fn's error after 1", err, calls)
		}
	})
	t.Run("ctx cancelled", func(t *testing.T) {
		v, _ := mergeFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		err := v.Stream(ctx, usersessions.StreamRequest{Filter: f, PageSize: 1}, func([]*usersessions.UserSession) error { calls++; cancel(); return nil })
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("Stream = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
}

// TestDeleteExpiredSharesTheLimit has expired online sessions without client sessions and
// an offline session with many expired client sessions: every call stays within the
// limit, and repeating until both counts are below it removes everything expired.
func TestDeleteExpiredSharesTheLimit(t *testing.T) {
	for limit := 1; limit <= 7; limit++ {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			v := closeWith(t, volatile.New(openMemory(t), openMemory(t)))
			var all []*usersessions.UserSession
			for i := range 3 {
				s := session(fmt.Sprintf("on-%d", i), false)
				s.ExpiresAt = base.Add(-time.Minute)
				all = append(all, s)
			}
			for i := range 2 {
				s := session(fmt.Sprintf("off-%d", i), true, "app")
				s.ExpiresAt = base.Add(-time.Minute)
				all = append(all, s)
			}
			keep := session("keep", true, "live", "c1", "c2", "c3", "c4", "c5")
			for _, c := range []string{"c1", "c2", "c3", "c4", "c5"} {
				keep.Clients[c].ExpiresAt = base.Add(-time.Second)
			}
			create(t, v, append(all, keep)...)

			users, clients := 0, 0
			for calls := 0; ; calls++ {
				if calls == 100 {
					t.Fatal("DeleteExpired never reported both counts below limit")
				}
				u, c, err := v.DeleteExpired(t.Context(), base, limit)
				if err != nil {
					t.Fatal(err)
				}
				if u > limit {
					t.Fatalf("DeleteExpired removed %d user sessions with limit %d", u, limit)
				}
				users, clients = users+u, clients+c
				if u < limit && c < limit {
					break
				}
			}
			if users != 5 || clients != 7 {
				t.Errorf("removed %d user and %d client sessions, want 5 and 7", users, clients)
			}
			if n := count(t, v, usersessions.Both); n != 1 {
				t.Errorf("%d sessions left, want only the kept one", n)
			}
			if got := mustGet(t, v, keep.Key()); len(got.Clients) != 1 || got.Clients["live"] == nil {
				t.Errorf("kept session's client sessions %v, want only live", got.Clients)
			}
		})
	}
}

// recorder is a Watch fn that records changes without a lock: the race detector fails the
// test should fn ever be called concurrently.
type recorder struct {
	changes []usersessions.Change
	seen    chan struct{}
}

func (r *recorder) fn(c usersessions.Change) error {
	r.changes = append(r.changes, c)
	r.seen <- struct{}{}
	return nil
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T) usersessions.Provider
	}{
		{"memory store", func(t *testing.T) usersessions.Provider { return openMemory(t) }},
		{"embedded store", func(t *testing.T) usersessions.Provider {
			return openEmbedded(t, filepath.Join(t.TempDir(), "sessions.db"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := closeWith(t, volatile.New(openMemory(t), tt.store(t)))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := &recorder{seen: make(chan struct{}, 100)}
			done := make(chan error, 1)
			go func() { done <- v.Watch(ctx, r.fn) }()
			<-r.seen // Subscribed
			on, off := session("s1", false), session("s1", true)
			create(t, v, on, off)
			for range 2 {
				select {
				case <-r.seen:
				case <-time.After(10 * time.Second):
					t.Fatal("Watch reported fewer than 2 changes")
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Watch returned %v after ctx ended, want nil", err)
			}
			if r.changes[0].Origin != node {
				t.Errorf("Subscribed has Origin %q, want %q", r.changes[0].Origin, node)
			}
			var got []string
			for _, c := range r.changes {
				got = append(got, fmt.Sprintf("%d %s %s", c.Kind, keyString(c.Session), c.Origin))
			}
			slices.Sort(got[1:]) // the two sides' changes may interleave either way
			want := []string{
				fmt.Sprintf("%d /online %s", usersessions.Subscribed, r.changes[0].Origin),
				fmt.Sprintf("%d s1/offline %s", usersessions.Upserted, node),
				fmt.Sprintf("%d s1/online %s", usersessions.Upserted, node),
			}
			if !slices.Equal(got, want) {
				t.Errorf("changes %v, want %v", got, want)
			}
		})
	}
}

func TestWatchEnds(t *testing.T) {
	stop := errors.New("stop")
	tests := []struct {
		name string
		// act runs once Watch has subscribed; want matches Watch's result.
		act  func(t *testing.T, online, store *memory.Provider, v *volatile.Store)
		fn   func(usersessions.Change) error
		want func(error) bool
	}{
		{"fn's error", func(t *testing.T, _, _ *memory.Provider, v *volatile.Store) { create(t, v, session("a", true)) },
			func(c usersessions.Change) error {
				if c.Kind == usersessions.Subscribed {
					return nil
				}
				return stop
			},
			func(err error) bool { return errors.Is(err, stop) }},
		{"the store's feed breaks", func(t *testing.T, _, store *memory.Provider, _ *volatile.Store) { store.Close(t.Context()) },
			func(usersessions.Change) error { return nil },
			func(err error) bool {
				return errors.Is(err, spi.ErrUnavailable) && strings.Contains(err.Error(), "store")
			}},
		{"the online feed breaks", func(t *testing.T, online, _ *memory.Provider, _ *volatile.Store) { online.Close(t.Context()) },
			func(usersessions.Change) error { return nil },
			func(err error) bool {
				return errors.Is(err, spi.ErrUnavailable) && strings.Contains(err.Error(), "online")
			}},
		{"fn's error on Subscribed", func(*testing.T, *memory.Provider, *memory.Provider, *volatile.Store) {},
			func(usersessions.Change) error { return stop },
			func(err error) bool { return errors.Is(err, stop) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			online, store := openMemory(t), openMemory(t)
			v := closeWith(t, volatile.New(online, store))
			subscribed := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- v.Watch(t.Context(), func(c usersessions.Change) error {
					if c.Kind == usersessions.Subscribed {
						close(subscribed)
					}
					return tt.fn(c)
				})
			}()
			<-subscribed
			tt.act(t, online, store, v)
			select {
			case err := <-done:
				if !tt.want(err) {
					t.Errorf("Watch returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Watch did not return")
			}
		})
	}
}

func TestDelegatesRecordsOutboxAndDescribe(t *testing.T) {
	online, store := openMemory(t), openEmbedded(t, filepath.Join(t.TempDir(), "sessions.db"))
	v := closeWith(t, volatile.New(online, store))
	if d := v.Describe(); d.ID != embedded.ID {
		t.Errorf("Describe().ID = %q, want the store's %q", d.ID, embedded.ID)
	}
	if _, err := v.PutRecord(t.Context(), &usersessions.Record{Kind: "k", Key: "a", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := v.Enqueue(t.Context(), []*usersessions.Delivery{{ID: "d1", RealmID: "r1", ClientID: "app", Kind: "LOGOUT"}}); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]usersessions.Provider{"the store": store, "the Store": v} {
		if recs, err := p.ListRecords(t.Context(), "k"); err != nil || len(recs) != 1 {
			t.Errorf("%s: ListRecords = %v, %v; want the record", name, recs, err)
		}
		if ds, err := p.ListDeliveries(t.Context(), usersessions.DeliveryFilter{}); err != nil || len(ds) != 1 {
			t.Errorf("%s: ListDeliveries = %v, %v; want the delivery", name, ds, err)
		}
	}
	if recs, _ := online.ListRecords(t.Context(), "k"); len(recs) != 0 {
		t.Errorf("the in-memory provider holds records %v", recs)
	}
}

// lendingStore is a store that lends its pages, and counts the streams lent.
type lendingStore struct {
	*memory.Provider
	lent int
}

func (l *lendingStore) StreamLent(ctx context.Context, req usersessions.StreamRequest, fn func([]*usersessions.UserSession) error) error {
	l.lent++
	return l.Provider.Stream(ctx, req, fn)
}

// TestStreamLentGoesToTheOneSide: the offline sessions are streamed lent when the store
// lends them; a stream of both sides is merged as Stream merges it.
func TestStreamLentGoesToTheOneSide(t *testing.T) {
	store := &lendingStore{Provider: openMemory(t)}
	v := closeWith(t, volatile.New(openMemory(t), store))
	create(t, v, session("on", false, "app"), session("off", true, "app"))
	for _, c := range []struct {
		sel       usersessions.OfflineSelector
		want      []string
		wantLends int
	}{{usersessions.OfflineOnly, []string{"off"}, 1}, {usersessions.OnlineOnly, []string{"on"}, 1}, {usersessions.Both, []string{"off", "on"}, 1}} {
		var got []string
		var lender usersessions.PageLender = v
		err := lender.StreamLent(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1", Offline: c.sel}, PageSize: 10},
			func(page []*usersessions.UserSession) error {
				for _, s := range page {
					got = append(got, s.ID)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) || store.lent != c.wantLends {
			t.Errorf("StreamLent(%v) gave %v with %d lent streams, want %v with %d", c.sel, got, store.lent, c.want, c.wantLends)
		}
	}
}

// parallelStore is a store that streams to parallel workers, and records with how many.
type parallelStore struct {
	*memory.Provider
	workers []int
}

func (p *parallelStore) StreamLentParallel(ctx context.Context, req usersessions.StreamRequest, workers int, fn func([]*usersessions.UserSession) error) error {
	p.workers = append(p.workers, workers)
	return p.Provider.Stream(ctx, req, fn)
}

// TestStreamLentParallelGoesToTheOneSide: the offline sessions are streamed in parallel
// when the store can; the in-memory online side and both sides are not (ErrUnsupported,
// before any page), and neither is a store that cannot.
func TestStreamLentParallelGoesToTheOneSide(t *testing.T) {
	store := &parallelStore{Provider: openMemory(t)}
	v := closeWith(t, volatile.New(openMemory(t), store))
	create(t, v, session("on", false, "app"), session("off", true, "app"))
	for _, c := range []struct {
		sel  usersessions.OfflineSelector
		want []string // nil: unsupported
	}{{usersessions.OfflineOnly, []string{"off"}}, {usersessions.OnlineOnly, nil}, {usersessions.Both, nil}} {
		var got []string
		before := len(store.workers)
		var pl usersessions.ParallelLender = v
		err := pl.StreamLentParallel(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1", Offline: c.sel}, PageSize: 10}, 3,
			func(page []*usersessions.UserSession) error {
				for _, s := range page {
					got = append(got, s.ID)
				}
				return nil
			})
		if c.want == nil {
			if !errors.Is(err, errors.ErrUnsupported) || got != nil || len(store.workers) != before {
				t.Errorf("StreamLentParallel(%v) = %v with %v, want ErrUnsupported and no page", c.sel, err, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) || !slices.Equal(store.workers[before:], []int{3}) {
			t.Errorf("StreamLentParallel(%v) = %v with %v and workers %v, want %v from one stream of 3", c.sel, err, got, store.workers[before:], c.want)
		}
	}
	plain := closeWith(t, volatile.New(openMemory(t), openMemory(t)))
	err := plain.StreamLentParallel(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1", Offline: usersessions.OfflineOnly}}, 3,
		func([]*usersessions.UserSession) error { return nil })
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("over a store that cannot: %v, want ErrUnsupported", err)
	}
}
