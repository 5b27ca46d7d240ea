package sessionlimit

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// counting counts every call of the Store.
type counting struct {
	Store
	calls atomic.Int64
}

func (c *counting) Count(ctx context.Context, f usersessions.Filter) (int64, error) {
	c.calls.Add(1)
	return c.Store.Count(ctx, f)
}

func (c *counting) List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error) {
	c.calls.Add(1)
	return c.Store.List(ctx, f, p)
}

func (c *counting) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	c.calls.Add(1)
	return c.Store.GetRecords(ctx, kind, keys)
}

func (c *counting) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	c.calls.Add(1)
	return c.Store.PutRecord(ctx, r)
}

func newStore(t *testing.T) *memory.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnd(context.Context, string, string, bool, string) error {
	return errors.New("nothing is to be ended")
}

func limited(l realm.SessionLimits) *realm.Realm {
	return &realm.Realm{Name: "acme", Enabled: true, SessionLimits: l}
}

// A realm without limits costs a login nothing: not one store call. With a limit, the
// calls are the lease's (read, take, give back) and the count.
func TestAdmit_noLimitMakesNoStoreCall(t *testing.T) {
	store := &counting{Store: newStore(t)}
	e := New(Deps{Store: store, End: noEnd})
	for _, r := range []*realm.Realm{
		limited(realm.SessionLimits{}),
		limited(realm.SessionLimits{ErrorMessage: "set", CountOffline: true, UserRealm: realm.Limit{Terminate: true}}),
	} {
		release, err := e.Admit(context.Background(), Admission{Realm: r, ClientID: "app", UserID: "u", Offline: true})
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	// A client joining a session (SSO) under the user's and the realm's limits only: no
	// new user session, nothing those limits count.
	join := Admission{Realm: limited(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}, Realm: realm.Limit{Max: 1}}), ClientID: "app", UserID: "u", Joining: true}
	release, err := e.Admit(context.Background(), join)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if n := store.calls.Load(); n != 0 {
		t.Errorf("%d store calls for logins no limit counts, want 0", n)
	}
	release, err = e.Admit(context.Background(), Admission{Realm: limited(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}}), ClientID: "app", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	release()
	if n := store.calls.Load(); n != 4 {
		t.Errorf("%d store calls with one limit, want 4 (read lease, take it, count, give it back)", n)
	}
}

// A node that dies holding a lease blocks that user's logins only until the lease ends;
// then the next login takes it over. Meanwhile a login waits Wait and is told to retry.
func TestAdmit_leaseOfADeadHolderIsTakenOverWhenItEnds(t *testing.T) {
	store := newStore(t)
	clock := testclock.New(t0)
	e := New(Deps{Store: store, End: noEnd, Now: clock.Now, Lease: 10 * time.Second, Wait: 50 * time.Millisecond})
	r := limited(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}})
	a := Admission{Realm: r, ClientID: "app", UserID: "u"}
	// The dead node's lease, as it left it.
	v, _ := json.Marshal(lease{Holder: "dead", Until: t0.Add(10 * time.Second)})
	if _, err := store.PutRecord(context.Background(), &usersessions.Record{Kind: LockKind, Key: lockKeys(a)[0], Value: v}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admit(context.Background(), a); !errors.Is(err, ErrBusy) || !errors.Is(err, spi.ErrUnavailable) {
		t.Fatalf("Admit while the lease holds: %v, want ErrBusy (unavailable: retry)", err)
	}
	clock.Advance(10 * time.Second)
	release, err := e.Admit(context.Background(), a)
	if err != nil {
		t.Fatalf("Admit once the lease has ended: %v", err)
	}
	release()
	// Given back: free at once for the next login.
	release, err = e.Admit(context.Background(), a)
	if err != nil {
		t.Fatalf("Admit after a release: %v", err)
	}
	release()
}

// A caller that goes away while waiting gets its own cancellation, not ErrBusy.
func TestAdmit_cancelledWhileWaitingIsTheCallersCancellation(t *testing.T) {
	store := newStore(t)
	e := New(Deps{Store: store, End: noEnd, Now: func() time.Time { return t0 }})
	a := Admission{Realm: limited(realm.SessionLimits{Realm: realm.Limit{Max: 1}}), ClientID: "app", UserID: "u"}
	held, err := e.Admit(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = e.Admit(ctx, a)
	if errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Admit with the caller's deadline passing: %v, want the caller's DeadlineExceeded", err)
	}
}

// Leases are taken widest first, whatever limits are set, so two logins never wait on
// each other in a circle.
func TestLockKeys_widestFirst(t *testing.T) {
	a := Admission{Realm: limited(realm.SessionLimits{UserClient: realm.Limit{Max: 1}, Client: realm.Limit{Max: 5}, Realm: realm.Limit{Max: 9}}), ClientID: "app", UserID: "u"}
	got := lockKeys(a)
	want := []string{"acme/realm", "acme/client/" + digest("app"), "acme/user/" + digest("u")}
	if len(got) != len(want) {
		t.Fatalf("lockKeys = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("lockKeys = %v, want %v", got, want)
		}
	}
}
