package groupcommit_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// hang is how long a test waits for something that must happen before it reports a hang.
// It is a guard against deadlocks, not a timing assertion: nothing measures how fast
// anything happens.
const hang = 30 * time.Second

// Items are written as specs "key/tag": the key is what the Writer must not put twice in
// one batch, the tag (an integer) tells items of one key apart. Each method encodes the
// key in its key fields and the tag in a field outside the key.

// method is one of the Writer's methods, driven by specs.
type method struct {
	name   string
	call   func(w *groupcommit.Writer, ctx context.Context, specs []string) ([]error, error)
	counts func(groupcommit.Stats) groupcommit.Counts
}

func parse(spec string) (key string, tag int) {
	key, t, _ := strings.Cut(spec, "/")
	tag, err := strconv.Atoi(t)
	if err != nil {
		panic("bad spec " + spec)
	}
	return key, tag
}

func sessionKey(id string) usersessions.Key { return usersessions.Key{RealmID: "r", ID: id} }

var methods = []method{
	{
		name: "Touch",
		call: func(w *groupcommit.Writer, ctx context.Context, specs []string) ([]error, error) {
			ts := make([]usersessions.Touch, len(specs))
			for i, s := range specs {
				k, tag := parse(s)
				ts[i] = usersessions.Touch{Session: sessionKey(k), ClientID: "app", LastRefresh: time.Unix(int64(tag), 0)}
			}
			return w.Touch(ctx, ts)
		},
		counts: func(s groupcommit.Stats) groupcommit.Counts { return s.Touch },
	},
	{
		name: "PutClientSessions",
		call: func(w *groupcommit.Writer, ctx context.Context, specs []string) ([]error, error) {
			cs := make([]*usersessions.ClientSession, len(specs))
			for i, s := range specs {
				k, tag := parse(s)
				cs[i] = &usersessions.ClientSession{RealmID: "r", UserSessionID: k, ClientID: "app", CurrentRefreshToken: strconv.Itoa(tag)}
			}
			return w.PutClientSessions(ctx, cs)
		},
		counts: func(s groupcommit.Stats) groupcommit.Counts { return s.PutClientSessions },
	},
	{
		name: "Rotate",
		call: func(w *groupcommit.Writer, ctx context.Context, specs []string) ([]error, error) {
			rs := make([]usersessions.Rotation, len(specs))
			for i, s := range specs {
				k, tag := parse(s)
				rs[i] = usersessions.Rotation{Client: &usersessions.ClientSession{RealmID: "r", UserSessionID: k, ClientID: "app", CurrentRefreshToken: strconv.Itoa(tag)}}
			}
			return w.Rotate(ctx, rs)
		},
		counts: func(s groupcommit.Stats) groupcommit.Counts { return s.Rotate },
	},
	{
		name: "Create",
		call: func(w *groupcommit.Writer, ctx context.Context, specs []string) ([]error, error) {
			ss := make([]*usersessions.UserSession, len(specs))
			for i, s := range specs {
				k, tag := parse(s)
				ss[i] = &usersessions.UserSession{RealmID: "r", ID: k, UserID: strconv.Itoa(tag)}
			}
			return w.Create(ctx, ss)
		},
		counts: func(s groupcommit.Stats) groupcommit.Counts { return s.Create },
	},
}

// forEachMethod runs test once per method.
func forEachMethod(t *testing.T, test func(t *testing.T, m method)) {
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, m)
		})
	}
}

// fakeStore records the store calls it gets. Unless auto is set, each call blocks until
// the test takes it from calls and answers it.
type fakeStore struct {
	calls chan *storeCall
	// auto, when set, answers every call at once: the error of each item (by spec).
	auto func(spec string) error

	mu       sync.Mutex
	inFlight map[string]int            // per method: calls in flight now
	most     map[string]int            // per method: the most calls in flight at once
	keys     map[string]map[string]int // per method: calls in flight naming each key
	clashes  []string                  // a key in two calls in flight at once, or twice in one
	batches  map[string][][]string
}

func newFakeStore() *fakeStore {
	return &fakeStore{calls: make(chan *storeCall), inFlight: map[string]int{}, most: map[string]int{},
		keys: map[string]map[string]int{}, batches: map[string][][]string{}}
}

// storeCall is one call the fake store got, waiting for its answer.
type storeCall struct {
	method string
	specs  []string
	ctx    context.Context
	reply  chan storeReply
}

type storeReply struct {
	errs  []error
	err   error
	panic any
}

func (f *fakeStore) do(ctx context.Context, method string, specs []string) ([]error, error) {
	f.mu.Lock()
	f.inFlight[method]++
	f.most[method] = max(f.most[method], f.inFlight[method])
	if f.keys[method] == nil {
		f.keys[method] = map[string]int{}
	}
	for _, s := range specs {
		k, _ := parse(s)
		if k == "nil" {
			continue // no key: the Writer does not keep nil elements apart
		}
		if f.keys[method][k]++; f.keys[method][k] > 1 {
			f.clashes = append(f.clashes, fmt.Sprintf("%s %s in %v", method, k, specs))
		}
	}
	f.batches[method] = append(f.batches[method], specs)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[method]--
		for _, s := range specs {
			if k, _ := parse(s); k != "nil" {
				f.keys[method][k]--
			}
		}
		f.mu.Unlock()
	}()
	if f.auto != nil {
		errs := make([]error, len(specs))
		for i, s := range specs {
			errs[i] = f.auto(s)
		}
		return errs, nil
	}
	c := &storeCall{method: method, specs: specs, ctx: ctx, reply: make(chan storeReply)}
	f.calls <- c
	r := <-c.reply
	if r.panic != nil {
		panic(r.panic)
	}
	return r.errs, r.err
}

func (f *fakeStore) Create(ctx context.Context, ss []*usersessions.UserSession) ([]error, error) {
	specs := make([]string, len(ss))
	for i, s := range ss {
		specs[i] = "nil/0"
		if s != nil {
			specs[i] = s.ID + "/" + s.UserID
		}
	}
	return f.do(ctx, "Create", specs)
}

func (f *fakeStore) Touch(ctx context.Context, ts []usersessions.Touch) ([]error, error) {
	specs := make([]string, len(ts))
	for i, t := range ts {
		specs[i] = fmt.Sprintf("%s/%d", t.Session.ID, t.LastRefresh.Unix())
	}
	return f.do(ctx, "Touch", specs)
}

func (f *fakeStore) PutClientSessions(ctx context.Context, cs []*usersessions.ClientSession) ([]error, error) {
	specs := make([]string, len(cs))
	for i, c := range cs {
		specs[i] = "nil/0"
		if c != nil {
			specs[i] = c.UserSessionID + "/" + c.CurrentRefreshToken
		}
	}
	return f.do(ctx, "PutClientSessions", specs)
}

func (f *fakeStore) Rotate(ctx context.Context, rs []usersessions.Rotation) ([]error, error) {
	specs := make([]string, len(rs))
	for i, r := range rs {
		specs[i] = "nil/0"
		if r.Client != nil {
			specs[i] = r.Client.UserSessionID + "/" + r.Client.CurrentRefreshToken
		}
	}
	return f.do(ctx, "Rotate", specs)
}

// recorded returns the batches method's store calls carried, in order.
func (f *fakeStore) recorded(method string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches[method]...)
}

// checkKeys reports every key the store got in two calls in flight at once, or twice in
// one call.
func (f *fakeStore) checkKeys(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clashes {
		t.Errorf("key in flight twice: %s", c)
	}
}

// mostInFlight returns the most calls of method that were in flight at once.
func (f *fakeStore) mostInFlight(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.most[method]
}

// next returns the next store call, which must come.
func (f *fakeStore) next(t *testing.T) *storeCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(hang):
		t.Fatalf("no store call came within %v", hang)
		return nil
	}
}

// ok answers the call with success for every item.
func (c *storeCall) ok() { c.reply <- storeReply{errs: make([]error, len(c.specs))} }

// answer answers the call with the error fn gives each item.
func (c *storeCall) answer(fn func(spec string) error) {
	errs := make([]error, len(c.specs))
	for i, s := range c.specs {
		errs[i] = fn(s)
	}
	c.reply <- storeReply{errs: errs}
}

// fail answers the call with a call-level error.
func (c *storeCall) fail(err error) { c.reply <- storeReply{err: err} }

// pending is a call to the Writer made in its own goroutine.
type pending struct {
	done     chan struct{}
	errs     []error
	err      error
	panicked any
}

// start calls m with specs in a new goroutine, which ends when the call returns.
func start(w *groupcommit.Writer, m method, ctx context.Context, specs ...string) *pending {
	p := &pending{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer func() { p.panicked = recover() }()
		p.errs, p.err = m.call(w, ctx, specs)
	}()
	return p
}

// result waits for the call's result.
func (p *pending) result(t *testing.T) ([]error, error) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(hang):
		t.Fatalf("a call to the Writer did not return within %v", hang)
	}
	if p.panicked != nil {
		t.Fatalf("the call panicked: %v", p.panicked)
	}
	return p.errs, p.err
}

// returned says whether the call has returned yet.
func (p *pending) returned() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor waits until cond holds (polling; a hang guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", hang, what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// enqueue calls m with specs while a store call of m is in flight, and waits until the
// items are queued: calls enqueued one after the other are queued in that order.
func enqueue(t *testing.T, w *groupcommit.Writer, m method, ctx context.Context, specs ...string) *pending {
	t.Helper()
	before := m.counts(w.Stats()).Queued
	p := start(w, m, ctx, specs...)
	waitFor(t, "the call's items to be queued", func() bool { return m.counts(w.Stats()).Queued == before+len(specs) })
	return p
}

// succeeded checks that a call returned without any error for its n items.
func succeeded(t *testing.T, p *pending, n int) {
	t.Helper()
	errs, err := p.result(t)
	if err != nil {
		t.Fatalf("call error: %v", err)
	}
	if len(errs) != n {
		t.Fatalf("%d per-item results, want %d", len(errs), n)
	}
	for i, e := range errs {
		if e != nil {
			t.Errorf("item %d: %v", i, e)
		}
	}
}

// slotCounts are the MaxInFlight values the queueing tests run with. With n slots a test
// parks n-1 store calls (held unanswered until it ends), so that its own calls queue
// behind one store call in flight as they do with one slot: the parked calls, of other
// keys, must change nothing of what the test sees.
var slotCounts = []int{1, 3}

// forEachSlots runs test once per slot count, as a parallel subtest.
func forEachSlots(t *testing.T, test func(t *testing.T, slots int)) {
	for _, n := range slotCounts {
		t.Run(fmt.Sprintf("slots=%d", n), func(t *testing.T) {
			t.Parallel()
			test(t, n)
		})
	}
}

// forEachSlotsAndMethod runs test once per slot count and method.
func forEachSlotsAndMethod(t *testing.T, test func(t *testing.T, slots int, m method)) {
	forEachSlots(t, func(t *testing.T, slots int) {
		forEachMethod(t, func(t *testing.T, m method) { test(t, slots, m) })
	})
}

// park makes n calls of m, each alone in a store call that stays in flight until release
// answers it; release checks that they succeeded.
func park(t *testing.T, w *groupcommit.Writer, f *fakeStore, m method, n int) (release func()) {
	t.Helper()
	var ps []*pending
	var cs []*storeCall
	for i := range n {
		ps = append(ps, start(w, m, t.Context(), fmt.Sprintf("parked%d/0", i)))
		cs = append(cs, f.next(t))
	}
	return func() {
		t.Helper()
		for i, c := range cs {
			c.ok()
			succeeded(t, ps[i], 1)
		}
	}
}
