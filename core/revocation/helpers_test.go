package revocation_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const realmName = "acme"

// t0 is when every test's clock starts; whole seconds, as policies are kept.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// statics are the not-before values of the realm settings (a realm file's).
type statics struct {
	realm, app time.Time
}

// newRealms returns one node's realm set: acme with clients app and web, and the static
// not-before values given. Each node loads its own, as each reads the realm file.
func newRealms(t *testing.T, st statics) *realm.Realms {
	t.Helper()
	r := &realm.Realm{Name: realmName, Enabled: true, NotBefore: st.realm, Clients: []*realm.Client{
		{ClientID: "app", Enabled: true, PublicClient: true, OfflineAccess: true, NotBefore: st.app},
		{ClientID: "web", Enabled: true, PublicClient: true},
	}}
	rs, _, err := realm.NewRealms(r)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func memoryStore(t *testing.T, node string) *memory.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{spi.HostNodeID: node}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func newPolicies(store revocation.Store, realms *realm.Realms, clock *testclock.Clock) *revocation.Policies {
	return revocation.New(revocation.Deps{Store: store, Realms: realms, Now: clock.Now, Log: hclog.NewNullLogger()})
}

// run starts p.Run until the test ends.
func run(t *testing.T, p *revocation.Policies) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// running starts p.Run and waits until it has loaded the stored policies.
func running(t *testing.T, p *revocation.Policies) {
	t.Helper()
	run(t, p)
	eventually(t, 10*time.Second, "the policies are loaded", p.Ready)
}

// eventually polls ok until it holds or patience runs out, and returns how long it took.
func eventually(t *testing.T, patience time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > patience {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// racing is a store on which another writer gets in before each of the first n PutRecord
// calls of a node: it writes the same record first, so the node's put meets a conflict.
type racing struct {
	revocation.Store
	n     int
	other func() error // the other node's write
	puts  atomic.Int32
}

func (r *racing) PutRecord(ctx context.Context, rec *usersessions.Record) (*usersessions.Record, error) {
	if int(r.puts.Add(1)) <= r.n {
		if err := r.other(); err != nil {
			return nil, fmt.Errorf("the competing write: %w", err)
		}
	}
	return r.Store.PutRecord(ctx, rec)
}

// breakable is a store whose change feed the test breaks and restores, as a lost connection
// to the database does: while it is down, a running Watch ends with spi.ErrUnavailable, new
// ones fail, and so do reads.
type breakable struct {
	revocation.Store
	mu     sync.Mutex
	down   bool
	cancel map[*int]context.CancelFunc
	watchs atomic.Int32 // Watch calls that subscribed
}

func newBreakable(s revocation.Store) *breakable {
	return &breakable{Store: s, cancel: map[*int]context.CancelFunc{}}
}

var errDown = fmt.Errorf("connection lost: %w", spi.ErrUnavailable)

func (b *breakable) isDown() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down
}

// cut breaks every running Watch and refuses new calls until restore.
func (b *breakable) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = true
	for _, c := range b.cancel {
		c()
	}
}

func (b *breakable) restore() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = false
}

func (b *breakable) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return errDown
	}
	wctx, cancel := context.WithCancel(ctx)
	id := new(int)
	b.cancel[id] = cancel
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.cancel, id)
		b.mu.Unlock()
		cancel()
	}()
	err := b.Store.Watch(wctx, func(c usersessions.Change) error {
		if c.Kind == usersessions.Subscribed {
			b.watchs.Add(1)
		}
		return fn(c)
	})
	if ctx.Err() == nil && wctx.Err() != nil {
		return errDown
	}
	return err
}

func (b *breakable) ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error) {
	if b.isDown() {
		return nil, errDown
	}
	return b.Store.ListRecords(ctx, kind)
}

func (b *breakable) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	if b.isDown() {
		return nil, errDown
	}
	return b.Store.GetRecords(ctx, kind, keys)
}
