package revocation_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// TestEffectiveNotBefore: the policy in force is the later of the realm settings' value and
// the one set at run time, for the realm and for each client apart; clearing leaves the
// settings' value. The node that sets it knows at once; another node on the same store
// learns it through the change feed.
func TestEffectiveNotBefore(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type set struct {
		client string // "" sets the realm's
		at     time.Time
	}
	cases := []struct {
		name      string
		static    statics
		sets      []set
		realm     time.Time // want, for the realm
		app, web  time.Time // want, for the clients
		storedFor []string  // record keys the store holds afterwards
	}{
		{name: "nothing set"},
		{name: "the realm settings' value alone", static: statics{realm: at(-time.Hour), app: at(-2 * time.Hour)},
			realm: at(-time.Hour), app: at(-2 * time.Hour)},
		{name: "a realm policy later than the settings' wins", static: statics{realm: at(-2 * time.Hour)},
			sets: []set{{at: at(-time.Hour)}}, realm: at(-time.Hour), storedFor: []string{"acme"}},
		{name: "the settings' value later than the realm policy wins", static: statics{realm: at(-time.Hour)},
			sets: []set{{at: at(-2 * time.Hour)}}, realm: at(-time.Hour), storedFor: []string{"acme"}},
		{name: "a realm policy leaves the clients' own alone", sets: []set{{at: at(0)}}, realm: at(0), storedFor: []string{"acme"}},
		{name: "a client policy is that client's only", sets: []set{{client: "web", at: at(0)}}, web: at(0), storedFor: []string{"acme/web"}},
		{name: "a client policy against the client's settings value", static: statics{app: at(-time.Minute)},
			sets: []set{{client: "app", at: at(-time.Hour)}, {client: "web", at: at(-time.Hour)}},
			app:  at(-time.Minute), web: at(-time.Hour), storedFor: []string{"acme/app", "acme/web"}},
		{name: "set again replaces, earlier or later", sets: []set{{at: at(0)}, {at: at(-time.Hour)}}, realm: at(-time.Hour), storedFor: []string{"acme"}},
		{name: "clear leaves the settings' value", static: statics{realm: at(-time.Hour)},
			sets: []set{{at: at(0)}, {}}, realm: at(-time.Hour), storedFor: []string{"acme"}},
		{name: "clear of a client", sets: []set{{client: "app", at: at(0)}, {client: "app"}}, storedFor: []string{"acme/app"}},
		{name: "whole seconds, as Keycloak keeps them", sets: []set{{at: at(-1500 * time.Millisecond)}}, realm: at(-2 * time.Second), storedFor: []string{"acme"}},
		{name: "up to MaxAhead past the clock", sets: []set{{at: at(revocation.MaxAhead)}}, realm: at(revocation.MaxAhead), storedFor: []string{"acme"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			store := memoryStore(t, "node-a")
			a := newPolicies(store, newRealms(t, tc.static), clock)
			b := newPolicies(store, newRealms(t, tc.static), clock)
			running(t, b)
			for _, s := range tc.sets {
				var err error
				if s.client == "" {
					err = a.SetRealm(t.Context(), realmName, s.at)
				} else {
					err = a.SetClient(t.Context(), realmName, s.client, s.at)
				}
				if err != nil {
					t.Fatalf("set %+v: %v", s, err)
				}
			}
			answers := func(p *revocation.Policies) [3]time.Time {
				return [3]time.Time{p.Realm(realmName), p.Client(realmName, "app"), p.Client(realmName, "web")}
			}
			want := [3]time.Time{tc.realm, tc.app, tc.web}
			if got := answers(a); !sameTimes(got, want) {
				t.Errorf("the setting node answers realm, app, web = %v, want %v", got, want)
			}
			eventually(t, 5*time.Second, "the other node answers the same", func() bool { return sameTimes(answers(b), want) })

			recs, err := store.ListRecords(t.Context(), revocation.RecordKind)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, r := range recs {
				keys = append(keys, r.Key)
			}
			if !slices.Equal(keys, tc.storedFor) {
				t.Errorf("stored policies %q, want %q", keys, tc.storedFor)
			}
		})
	}
}

func sameTimes(a, b [3]time.Time) bool {
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// TestRecordKeysCannotMeet: a realm and a client whose names would join into the same text
// keep apart policies.
func TestRecordKeysCannotMeet(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	rs := newRealms(t, statics{})
	for _, name := range []string{"a/b", "a"} {
		r, _ := rs.Realm(realmName)
		r = r.Clone()
		r.Name = name
		r.Clients[0].ClientID = "b/c"
		if name == "a" {
			r.Clients[0].ClientID = "b"
		}
		if _, err := rs.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	p := newPolicies(store, rs, clock)
	if err := p.SetClient(t.Context(), "a/b", "b/c", t0); err != nil {
		t.Fatal(err)
	}
	if got := p.Client("a", "b"); !got.IsZero() {
		t.Errorf("client b of realm a has %v from client b/c of realm a/b", got)
	}
	if got := p.Realm("a/b"); !got.IsZero() {
		t.Errorf("realm a/b has %v from its client's policy", got)
	}
	if got := p.Client("a/b", "b/c"); !got.Equal(t0) {
		t.Errorf("client b/c of realm a/b has %v, want %v", got, t0)
	}
}

// TestSetRefuses: an unknown realm or client, or a time that is no policy, is refused with a
// typed error and nothing is stored.
func TestSetRefuses(t *testing.T) {
	cases := []struct {
		name   string
		realm  string
		client string // "" sets the realm's
		at     time.Time
		want   []error
	}{
		{"unknown realm", "nope", "", t0, []error{revocation.ErrUnknownRealm, spi.ErrNotFound}},
		{"client of an unknown realm", "nope", "app", t0, []error{revocation.ErrUnknownRealm, spi.ErrNotFound}},
		{"unknown client", realmName, "nope", t0, []error{revocation.ErrUnknownClient, spi.ErrNotFound}},
		{"before 1970", realmName, "", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), []error{spi.ErrInvalid}},
		{"the epoch itself", realmName, "app", time.Unix(0, 0), []error{spi.ErrInvalid}},
		{"beyond MaxAhead", realmName, "", t0.Add(revocation.MaxAhead + time.Second), []error{spi.ErrInvalid}},
		{"a client's beyond MaxAhead", realmName, "app", t0.Add(24 * time.Hour), []error{spi.ErrInvalid}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := memoryStore(t, "node-a")
			p := newPolicies(store, newRealms(t, statics{}), testclock.New(t0))
			var err error
			if tc.client == "" {
				err = p.SetRealm(t.Context(), tc.realm, tc.at)
			} else {
				err = p.SetClient(t.Context(), tc.realm, tc.client, tc.at)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %v, want one wrapping %v", err, w)
				}
			}
			if recs, _ := store.ListRecords(t.Context(), revocation.RecordKind); len(recs) != 0 {
				t.Errorf("a refused set stored %d records", len(recs))
			}
			if !p.Realm(realmName).IsZero() || !p.Client(realmName, "app").IsZero() {
				t.Error("a refused set is in force")
			}
		})
	}
}

// TestSetRetriesOnConflict: when another node writes the policy between this node's read and
// write, the write is retried on the fresh version and the last writer's value stands.
func TestSetRetriesOnConflict(t *testing.T) {
	cases := []struct {
		name      string
		conflicts int
		wantPuts  int32
		wantErr   error
	}{
		{"one competing write", 1, 2, nil},
		{"three competing writes", 3, 4, nil},
		{"a store that always conflicts: bounded, and the conflict is reported", 1000, 16, spi.ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			store := memoryStore(t, "node-a")
			other := newPolicies(store, newRealms(t, statics{}), clock)
			n := 0
			r := &racing{Store: store, n: tc.conflicts, other: func() error {
				n++
				return other.SetRealm(context.Background(), realmName, t0.Add(-time.Duration(n)*time.Hour))
			}}
			p := newPolicies(r, newRealms(t, statics{}), clock)
			err := p.SetRealm(t.Context(), realmName, t0)
			if got := r.puts.Load(); got != tc.wantPuts {
				t.Errorf("%d puts, want %d", got, tc.wantPuts)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want one wrapping %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Realm(realmName); !got.Equal(t0) {
				t.Errorf("in force %v, want %v", got, t0)
			}
			recs, err := store.GetRecords(t.Context(), revocation.RecordKind, []string{realmName})
			if err != nil || recs[0] == nil {
				t.Fatal(recs, err)
			}
			if want := `{"notBefore":` + strconv.FormatInt(t0.Unix(), 10) + `}`; string(recs[0].Value) != want {
				t.Errorf("stored %s, want %s (the last writer's)", recs[0].Value, want)
			}
			if recs[0].Version != int64(tc.conflicts)+1 {
				t.Errorf("stored version %d, want %d", recs[0].Version, tc.conflicts+1)
			}
		})
	}
}

// TestRunFollowsTheStore: Run loads what was stored before it started, is ready only then,
// and follows later sets, clears and deletions made through another node.
func TestRunFollowsTheStore(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	a := newPolicies(store, newRealms(t, statics{}), clock)
	if err := a.SetRealm(t.Context(), realmName, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	b := newPolicies(store, newRealms(t, statics{}), clock)
	if b.Ready() {
		t.Fatal("ready before Run loaded anything")
	}
	if !b.Realm(realmName).IsZero() {
		t.Fatal("a policy in force before Run loaded it")
	}
	running(t, b)
	if got := b.Realm(realmName); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("after the load the realm's is %v, want the stored %v", got, t0.Add(-time.Hour))
	}

	if err := a.SetClient(t.Context(), realmName, "app", t0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b follows a's client policy", func() bool { return b.Client(realmName, "app").Equal(t0) })
	if err := a.SetRealm(t.Context(), realmName, time.Time{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b follows a's clear", func() bool { return b.Realm(realmName).IsZero() })
	// A record removed behind the policies' back (an operator's cleanup) is no policy.
	if err := store.DeleteRecord(t.Context(), revocation.RecordKind, "acme/app"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b drops a deleted policy", func() bool { return b.Client(realmName, "app").IsZero() })
	// Other records on the feed change nothing.
	if _, err := store.PutRecord(t.Context(), &usersessions.Record{Kind: "realm-keys", Key: realmName, Value: []byte(`{"notBefore":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetClient(t.Context(), realmName, "web", t0); err != nil { // a marker after it
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b follows a's web policy", func() bool { return b.Client(realmName, "web").Equal(t0) })
	if !b.Realm(realmName).IsZero() {
		t.Error("a record of another kind was taken for the realm's policy")
	}
}

// TestUnreadableRecordIsNoPolicy: a record whose value cannot be read is left out, and the
// others still load.
func TestUnreadableRecordIsNoPolicy(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	for key, value := range map[string]string{"acme": "not json", "acme/app": `{"notBefore":` + strconv.FormatInt(t0.Unix(), 10) + `}`} {
		if _, err := store.PutRecord(t.Context(), &usersessions.Record{Kind: revocation.RecordKind, Key: key, Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	p := newPolicies(store, newRealms(t, statics{}), clock)
	running(t, p)
	if !p.Realm(realmName).IsZero() || !p.Client(realmName, "app").Equal(t0) {
		t.Errorf("realm %v, app %v; want none and %v", p.Realm(realmName), p.Client(realmName, "app"), t0)
	}
	// A set over it replaces it: the unreadable record's version is found on a conflict.
	if err := p.SetRealm(t.Context(), realmName, t0); err != nil {
		t.Fatal(err)
	}
	if !p.Realm(realmName).Equal(t0) {
		t.Errorf("realm %v after a set, want %v", p.Realm(realmName), t0)
	}
}

// TestFeedBreakReloads: a policy set while a node's feed is down reaches it once the feed is
// back, by the reload that follows every subscription; the node stays ready meanwhile, with
// the policies it last read. A node whose first load has not happened is not ready.
func TestFeedBreakReloads(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	a := newPolicies(store, newRealms(t, statics{}), clock)
	link := newBreakable(store)
	link.cut()
	b := newPolicies(link, newRealms(t, statics{}), clock)
	run(t, b)
	time.Sleep(300 * time.Millisecond)
	if b.Ready() {
		t.Fatal("ready without having loaded the policies")
	}
	select {
	case <-b.Loaded():
		t.Fatal("Loaded is closed without a load")
	default:
	}
	link.restore()
	select {
	case <-b.Loaded():
	case <-time.After(10 * time.Second):
		t.Fatal("Loaded is not closed 10s after the store came back")
	}
	if !b.Ready() {
		t.Fatal("not ready once Loaded is closed")
	}

	if err := a.SetRealm(t.Context(), realmName, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b follows a", func() bool { return b.Realm(realmName).Equal(t0.Add(-time.Hour)) })

	subscribed := link.watchs.Load()
	link.cut()
	if err := a.SetRealm(t.Context(), realmName, t0); err != nil {
		t.Fatal(err)
	}
	if err := a.SetClient(t.Context(), realmName, "app", t0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := b.Realm(realmName); !got.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("with its feed down b answers %v, want the policy it last read", got)
	}
	if !b.Ready() {
		t.Error("a node that had loaded the policies is not ready while its feed is down")
	}
	link.restore()
	eventually(t, 10*time.Second, "b reloads after the feed is back", func() bool {
		return b.Realm(realmName).Equal(t0) && b.Client(realmName, "app").Equal(t0)
	})
	if link.watchs.Load() <= subscribed {
		t.Error("b saw the policies without subscribing again")
	}
}
