package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

type ctxKey struct{}

// TestLoneCall: with nothing in flight a call goes to the store at once, alone, made for
// the caller (the store sees its context's values) with a deadline but not its
// cancellation; calls one after the other are never held back to be batched.
func TestLoneCall(t *testing.T) {
	forEachMethod(t, func(t *testing.T, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{})
		ctx := context.WithValue(t.Context(), ctxKey{}, "caller")
		for i := range 3 {
			p := start(w, m, ctx, fmt.Sprintf("a%d/1", i), fmt.Sprintf("b%d/2", i))
			c := f.next(t)
			if want := []string{fmt.Sprintf("a%d/1", i), fmt.Sprintf("b%d/2", i)}; !slices.Equal(c.specs, want) {
				t.Errorf("store call %d carried %v, want %v", i, c.specs, want)
			}
			if v := c.ctx.Value(ctxKey{}); v != "caller" {
				t.Errorf("the store call's context lacks the caller's values (got %v)", v)
			}
			if _, ok := c.ctx.Deadline(); !ok {
				t.Error("the store call's context has no deadline")
			}
			c.ok()
			succeeded(t, p, 2)
		}
		want := groupcommit.Counts{Calls: 3, Batches: 3, Items: 6, Largest: 2, MostInFlight: 1}
		if got := m.counts(w.Stats()); got != want {
			t.Errorf("stats %+v, want %+v", got, want)
		}
	})
}

// TestConcurrentCallersShareOneBatch: the calls made while every slot is in flight go
// out together in the next store call, once one returns.
func TestConcurrentCallersShareOneBatch(t *testing.T) {
	const n = 40
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
		release := park(t, w, f, m, slots-1)
		lead := start(w, m, t.Context(), "lead/0")
		first := f.next(t)

		var ps []*pending
		var want []string
		for i := range n {
			spec := fmt.Sprintf("k%02d/%d", i, i)
			want = append(want, spec)
			ps = append(ps, start(w, m, t.Context(), spec))
		}
		waitFor(t, "every call to be queued", func() bool { return m.counts(w.Stats()).Queued == n })
		for _, p := range ps {
			if p.returned() {
				t.Fatal("a queued call returned before its store call was made")
			}
		}
		first.ok()
		succeeded(t, lead, 1)

		second := f.next(t)
		if got := slices.Sorted(slices.Values(second.specs)); !slices.Equal(got, want) {
			t.Fatalf("the second store call carried %v, want all of %v", got, want)
		}
		second.ok()
		for _, p := range ps {
			succeeded(t, p, 1)
		}
		release()
		got := m.counts(w.Stats())
		p := int64(slots - 1)
		if want := (groupcommit.Counts{Calls: n + 1 + p, Batches: 2 + p, Items: n + 1 + p, Largest: n, MostInFlight: slots}); got != want {
			t.Errorf("stats %+v, want %+v", got, want)
		}
		f.checkKeys(t)
	})
}

// notFound is the fake store's per-item error for the items whose key starts with "bad".
func notFound(spec string) error {
	if strings.HasPrefix(spec, "bad") {
		return fmt.Errorf("%s: %w", spec, spi.ErrNotFound)
	}
	return nil
}

// TestPerItemErrors: each caller gets the per-item errors of its own items, at their
// positions in its call.
func TestPerItemErrors(t *testing.T) {
	calls := []struct {
		name  string
		specs []string
	}{
		{"mixed", []string{"a/1", "bad-a/2", "a2/3"}},
		{"all bad", []string{"bad-b/1", "bad-b2/1"}},
		{"all good", []string{"c/1"}},
		{"bad first", []string{"bad-d/1", "d/1"}},
		{"duplicate bad", []string{"bad-e/1", "bad-e/2"}}, // split over two store calls
	}
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
		release := park(t, w, f, m, slots-1)
		lead := start(w, m, t.Context(), "bad-lead/0")
		first := f.next(t)
		ps := make([]*pending, len(calls))
		for i, c := range calls {
			ps[i] = enqueue(t, w, m, t.Context(), c.specs...)
		}
		first.answer(notFound)
		for range 2 {
			f.next(t).answer(notFound)
		}
		check := func(name string, p *pending, specs []string) {
			t.Helper()
			errs, err := p.result(t)
			if err != nil {
				t.Fatalf("%s: call error %v", name, err)
			}
			if len(errs) != len(specs) {
				t.Fatalf("%s: %d results for %d items", name, len(errs), len(specs))
			}
			for i, spec := range specs {
				switch {
				case strings.HasPrefix(spec, "bad"):
					if !errors.Is(errs[i], spi.ErrNotFound) || !strings.HasPrefix(errs[i].Error(), spec+":") {
						t.Errorf("%s: item %d (%s) got %v, want its own not-found error", name, i, spec, errs[i])
					}
				case errs[i] != nil:
					t.Errorf("%s: item %d (%s) got %v, want nil", name, i, spec, errs[i])
				}
			}
		}
		check("lead", lead, []string{"bad-lead/0"})
		for i, c := range calls {
			check(c.name, ps[i], c.specs)
		}
		release()
		f.checkKeys(t)
	})
}

// TestCallLevelError: a failed store call fails every call that had items in it, and only
// those; the Writer goes on working.
func TestCallLevelError(t *testing.T) {
	boom := fmt.Errorf("connection lost: %w", spi.ErrUnavailable)
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
		release := park(t, w, f, m, slots-1)
		lead := start(w, m, t.Context(), "lead/0")
		first := f.next(t)
		a := enqueue(t, w, m, t.Context(), "a/1", "a2/1")
		b := enqueue(t, w, m, t.Context(), "b/1")
		// c's second item waits for the third store call, which succeeds; c fails all the
		// same, as one of its store calls failed.
		c := enqueue(t, w, m, t.Context(), "c/1", "c/2")
		first.ok()
		succeeded(t, lead, 1)
		f.next(t).fail(boom)
		for name, p := range map[string]*pending{"a": a, "b": b} {
			if errs, err := p.result(t); !errors.Is(err, boom) || errs != nil {
				t.Errorf("%s got (%v, %v), want (nil, the store's error)", name, errs, err)
			}
		}
		third := f.next(t)
		if !slices.Equal(third.specs, []string{"c/2"}) {
			t.Errorf("third store call carried %v, want [c/2]", third.specs)
		}
		third.ok()
		if errs, err := c.result(t); !errors.Is(err, boom) || errs != nil {
			t.Errorf("c got (%v, %v), want (nil, the store's error)", errs, err)
		}

		// A lone call fails alone; the next one succeeds.
		d := start(w, m, t.Context(), "d/1")
		f.next(t).fail(boom)
		if _, err := d.result(t); !errors.Is(err, boom) {
			t.Errorf("lone call got %v, want the store's error", err)
		}
		e := start(w, m, t.Context(), "e/1")
		f.next(t).ok()
		succeeded(t, e, 1)
		release()
		f.checkKeys(t)
	})
}

// TestDuplicateKeys: a batch never holds one key twice; later items of a key wait for
// the next store call, and the items of one key reach the store in submission order.
func TestDuplicateKeys(t *testing.T) {
	tests := []struct {
		name    string
		calls   [][]string // enqueued in this order while "a/0" is in flight
		batches [][]string // the store calls after the one of "a/0"
	}{
		{
			name:    "across calls",
			calls:   [][]string{{"a/1", "b/1"}, {"a/2"}, {"a/3", "c/1"}, {"b/2"}, {"d/1"}},
			batches: [][]string{{"a/1", "b/1", "c/1", "d/1"}, {"a/2", "b/2"}, {"a/3"}},
		},
		{
			name:    "within one call",
			calls:   [][]string{{"x/1", "x/2", "y/1", "x/3"}},
			batches: [][]string{{"x/1", "y/1"}, {"x/2"}, {"x/3"}},
		},
		{
			name:    "interleaved",
			calls:   [][]string{{"p/1"}, {"q/1", "p/2"}, {"q/2"}, {"p/3", "r/1"}, {"q/3"}},
			batches: [][]string{{"p/1", "q/1", "r/1"}, {"p/2", "q/2"}, {"p/3", "q/3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
				f := newFakeStore()
				w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
				release := park(t, w, f, m, slots-1)
				lead := start(w, m, t.Context(), "a/0")
				first := f.next(t)
				var ps []*pending
				for _, specs := range tt.calls {
					ps = append(ps, enqueue(t, w, m, t.Context(), specs...))
				}
				first.ok()
				for i, want := range tt.batches {
					c := f.next(t)
					if !slices.Equal(c.specs, want) {
						t.Errorf("store call %d carried %v, want %v", i+2, c.specs, want)
					}
					c.ok()
				}
				succeeded(t, lead, 1)
				for i, p := range ps {
					succeeded(t, p, len(tt.calls[i]))
				}
				release()
				f.checkKeys(t)
			})
		})
	}
}

// TestTouchKeyIncludesClient: touches of one user session for different clients (or for
// none) share a batch; two of one client session do not.
func TestTouchKeyIncludesClient(t *testing.T) {
	f := newFakeStore()
	w := groupcommit.New(f, groupcommit.Options{})
	s := sessionKey("s")
	touches := []usersessions.Touch{
		{Session: s, ClientID: "app", LastRefresh: time.Unix(1, 0)},
		{Session: s, ClientID: "", LastRefresh: time.Unix(2, 0)},
		{Session: s, ClientID: "other", LastRefresh: time.Unix(3, 0)},
		{Session: s, ClientID: "app", LastRefresh: time.Unix(4, 0)},
		{Session: usersessions.Key{RealmID: "r", ID: "s", Offline: true}, ClientID: "app", LastRefresh: time.Unix(5, 0)},
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Touch(t.Context(), touches)
		done <- err
	}()
	if got := f.next(t); !slices.Equal(got.specs, []string{"s/1", "s/2", "s/3", "s/5"}) {
		t.Errorf("first store call carried %v", got.specs)
	} else {
		got.ok()
	}
	if got := f.next(t); !slices.Equal(got.specs, []string{"s/4"}) {
		t.Errorf("second store call carried %v", got.specs)
	} else {
		got.ok()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCancel: a caller whose context ends while its items are only queued gets ctx.Err()
// and its items never reach the store; once anything of a call was sent, the caller waits
// for the result, and the store call is not cancelled with it.
func TestCancel(t *testing.T) {
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		t.Run("queued", func(t *testing.T) {
			f := newFakeStore()
			w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
			release := park(t, w, f, m, slots-1)
			lead := start(w, m, t.Context(), "lead/0")
			first := f.next(t)
			// a is the oldest queued call: the one the leadership would pass to.
			ctxA, cancelA := context.WithCancel(t.Context())
			a := enqueue(t, w, m, ctxA, "a/1", "shared/1")
			b := enqueue(t, w, m, t.Context(), "b/1", "shared/2")
			cancelA()
			if errs, err := a.result(t); !errors.Is(err, context.Canceled) || errs != nil {
				t.Errorf("cancelled call got (%v, %v), want (nil, context.Canceled)", errs, err)
			}
			if got := m.counts(w.Stats()); got.Queued != 2 || got.Cancelled != 1 {
				t.Errorf("after the cancel: %d items queued and %d calls cancelled, want 2 and 1", got.Queued, got.Cancelled)
			}
			first.ok()
			succeeded(t, lead, 1)
			second := f.next(t)
			if !slices.Equal(second.specs, []string{"b/1", "shared/2"}) {
				t.Errorf("the store call after the cancel carried %v, want only b's items", second.specs)
			}
			second.ok()
			succeeded(t, b, 2)
			release()
			f.checkKeys(t)
		})
		t.Run("sent", func(t *testing.T) {
			f := newFakeStore()
			w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
			ctx, cancel := context.WithCancel(t.Context())
			p := start(w, m, ctx, "bad-a/1")
			c := f.next(t)
			cancel()
			if err := c.ctx.Err(); err != nil {
				t.Errorf("the store call's context ended with the caller's: %v", err)
			}
			c.answer(notFound)
			errs, err := p.result(t)
			if err != nil || len(errs) != 1 || !errors.Is(errs[0], spi.ErrNotFound) {
				t.Errorf("got (%v, %v), want the store's per-item answer", errs, err)
			}
		})
		t.Run("partly sent", func(t *testing.T) {
			// The second item waits for the next batch (same key); the first is in flight
			// when the caller gives up, so the caller waits for both.
			f := newFakeStore()
			w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
			ctx, cancel := context.WithCancel(t.Context())
			p := start(w, m, ctx, "x/1", "x/2")
			c := f.next(t)
			cancel()
			c.ok()
			c = f.next(t)
			if !slices.Equal(c.specs, []string{"x/2"}) {
				t.Errorf("second store call carried %v, want [x/2]", c.specs)
			}
			c.ok()
			succeeded(t, p, 2)
		})
		t.Run("before the call", func(t *testing.T) {
			f := newFakeStore()
			w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := m.call(w, ctx, []string{"a/1"}); !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
			if got := m.counts(w.Stats()); got.Batches != 0 {
				t.Errorf("%d store calls, want none", got.Batches)
			}
		})
	})
}

// TestMaxBatch: no store call carries more than MaxBatch items; what does not fit goes in
// the next, in order.
func TestMaxBatch(t *testing.T) {
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{MaxBatch: 3, MaxInFlight: slots})

		// Alone, a call of 7 items goes as 3 + 3 + 1, one after the other whatever the
		// free slots: only the caller's own goroutine makes its store calls.
		specs := []string{"a1/1", "a2/1", "a3/1", "a4/1", "a5/1", "a6/1", "a7/1"}
		p := start(w, m, t.Context(), specs...)
		for _, want := range [][]string{specs[:3], specs[3:6], specs[6:]} {
			c := f.next(t)
			if !slices.Equal(c.specs, want) {
				t.Errorf("store call carried %v, want %v", c.specs, want)
			}
			c.ok()
		}
		succeeded(t, p, len(specs))

		// Queued behind a store call in flight.
		release := park(t, w, f, m, slots-1)
		lead := start(w, m, t.Context(), "lead/0")
		first := f.next(t)
		a := enqueue(t, w, m, t.Context(), "b1/1", "b2/1", "b3/1", "b4/1")
		b := enqueue(t, w, m, t.Context(), "c1/1", "c2/1", "c3/1")
		first.ok()
		for _, want := range [][]string{{"b1/1", "b2/1", "b3/1"}, {"b4/1", "c1/1", "c2/1"}, {"c3/1"}} {
			c := f.next(t)
			if !slices.Equal(c.specs, want) {
				t.Errorf("store call carried %v, want %v", c.specs, want)
			}
			c.ok()
		}
		succeeded(t, lead, 1)
		succeeded(t, a, 4)
		succeeded(t, b, 3)
		release()
		if got := m.counts(w.Stats()).Largest; got != 3 {
			t.Errorf("largest batch %d, want 3", got)
		}
		f.checkKeys(t)
	})
}

// TestClose: Close waits for the store calls in flight and for the ones the queued items
// still need; calls after it fail with ErrClosed.
func TestClose(t *testing.T) {
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
		release := park(t, w, f, m, slots-1)
		lead := start(w, m, t.Context(), "lead/0")
		first := f.next(t)
		queued := enqueue(t, w, m, t.Context(), "q/1")

		closed := make(chan struct{})
		go func() {
			defer close(closed)
			w.Close()
		}()
		// Make calls until one is refused; those made before Close got to refuse them
		// are queued, and Close waits for them too.
		wantSecond := []string{"q/1"}
		var accepted []*pending
		for i := 0; ; i++ {
			spec := fmt.Sprintf("late%d/1", i)
			before := m.counts(w.Stats()).Queued
			late := start(w, m, t.Context(), spec)
			waitFor(t, "the late call to be refused or queued", func() bool {
				return late.returned() || m.counts(w.Stats()).Queued > before
			})
			if !late.returned() {
				accepted = append(accepted, late)
				wantSecond = append(wantSecond, spec)
				continue
			}
			if _, err := late.result(t); !errors.Is(err, groupcommit.ErrClosed) {
				t.Fatalf("call after Close: %v, want ErrClosed", err)
			}
			break
		}
		if !errors.Is(groupcommit.ErrClosed, spi.ErrUnavailable) {
			t.Error("ErrClosed does not wrap spi.ErrUnavailable")
		}
		isClosed := func() bool {
			select {
			case <-closed:
				return true
			default:
				return false
			}
		}
		if isClosed() {
			t.Fatal("Close returned while a store call was in flight")
		}
		first.ok()
		second := f.next(t)
		if isClosed() {
			t.Fatal("Close returned while a store call was in flight")
		}
		if !slices.Equal(second.specs, wantSecond) {
			t.Errorf("second store call carried %v, want %v", second.specs, wantSecond)
		}
		second.ok()
		if slots > 1 {
			succeeded(t, queued, 1)
			if isClosed() {
				t.Fatal("Close returned while the parked store calls were in flight")
			}
			release()
		}
		select {
		case <-closed:
		case <-time.After(hang):
			t.Fatal("Close did not return")
		}
		succeeded(t, lead, 1)
		succeeded(t, queued, 1)
		for _, p := range accepted {
			succeeded(t, p, 1)
		}
		w.Close() // again: returns at once
	})
}

// TestQueuesAreSeparate: a store call in flight for one method does not hold back the
// others.
func TestQueuesAreSeparate(t *testing.T) {
	f := newFakeStore()
	w := groupcommit.New(f, groupcommit.Options{})
	var ps []*pending
	var held []*storeCall
	for _, m := range methods {
		ps = append(ps, start(w, m, t.Context(), "a/1"))
		c := f.next(t)
		if c.method != m.name {
			t.Fatalf("store call of %s, want %s", c.method, m.name)
		}
		held = append(held, c) // answered only once all three are in flight
	}
	for i, c := range held {
		c.ok()
		succeeded(t, ps[i], 1)
	}
}

// TestStoreMisbehaves: a store answering the wrong number of results, or panicking, fails
// the calls of that store call, and the Writer goes on.
func TestStoreMisbehaves(t *testing.T) {
	forEachSlotsAndMethod(t, func(t *testing.T, slots int, m method) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{MaxInFlight: slots})
		release := park(t, w, f, m, slots-1)

		p := start(w, m, t.Context(), "a/1", "b/1")
		f.next(t).reply <- storeReply{errs: []error{nil}}
		if _, err := p.result(t); err == nil {
			t.Error("a short answer from the store was passed on as success")
		}

		// The caller making a panicking store call panics; the other caller of that batch
		// gets an error, and the queued caller behind them is still served.
		lead := start(w, m, t.Context(), "lead/0")
		first := f.next(t)
		x := enqueue(t, w, m, t.Context(), "x/1")
		y := enqueue(t, w, m, t.Context(), "y/1")
		z := enqueue(t, w, m, t.Context(), "x/2") // after x/1: the batch after
		first.ok()
		succeeded(t, lead, 1)
		c := f.next(t)
		c.reply <- storeReply{panic: "store bug"}
		f.next(t).ok()
		succeeded(t, z, 1)
		for _, p := range []*pending{x, y} {
			<-p.done
		}
		switch {
		case x.panicked != nil && y.panicked == nil:
			if y.err == nil {
				t.Error("the other caller of the panicking batch got no error")
			}
		case y.panicked != nil && x.panicked == nil:
			if x.err == nil {
				t.Error("the other caller of the panicking batch got no error")
			}
		default:
			t.Errorf("panics: x %v, y %v; want exactly one, in the leader", x.panicked, y.panicked)
		}
		after := start(w, m, t.Context(), "after/1")
		f.next(t).ok()
		succeeded(t, after, 1)

		// A caller whose store call panics sends nothing more: its items still queued
		// are dropped, so they hold no slot and no key, and Close does not wait for them.
		multi := start(w, m, t.Context(), "m/1", "m/2")
		f.next(t).reply <- storeReply{panic: "store bug"}
		<-multi.done
		if multi.panicked == nil {
			t.Error("the caller whose store call panicked did not panic")
		}
		again := start(w, m, t.Context(), "m/3")
		if c := f.next(t); !slices.Equal(c.specs, []string{"m/3"}) {
			t.Errorf("store call carried %v, want [m/3]", c.specs)
		} else {
			c.ok()
		}
		succeeded(t, again, 1)
		release()
		w.Close()
		if got := m.counts(w.Stats()); got.Queued != 0 || got.InFlight != 0 {
			t.Errorf("after Close: %d queued, %d in flight", got.Queued, got.InFlight)
		}
		f.checkKeys(t)
	})
}

// TestConcurrentStress runs many callers with overlapping keys and random cancellations
// against a store that answers at once, and checks the invariants: at most MaxInFlight
// store calls of a method at a time, no key in two of them nor twice in one, the items of
// one key that one caller submitted reach the store in that order, batches within
// MaxBatch, every answered item sent exactly once, no item of a withdrawn call ever sent,
// and nothing left over.
func TestConcurrentStress(t *testing.T) {
	forEachSlots(t, func(t *testing.T, slots int) { stress(t, slots) })
}

func stress(t *testing.T, slots int) {
	const (
		callers  = 48
		calls    = 60
		maxBatch = 8
	)
	f := newFakeStore()
	f.auto = func(spec string) error {
		time.Sleep(20 * time.Microsecond) // let queues build
		return notFound(spec)
	}
	w := groupcommit.New(f, groupcommit.Options{MaxBatch: maxBatch, MaxInFlight: slots})
	var tag atomic.Int64
	var (
		mu             sync.Mutex
		answered       = map[string]bool{} // method + spec
		withdrawn      = map[string]bool{}
		withdrawnCalls int64
		caller         = map[int]int{} // tag: the goroutine that submitted it
	)
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			for range calls {
				m := methods[rng.IntN(len(methods))]
				specs := make([]string, 1+rng.IntN(3))
				for i := range specs {
					prefix := ""
					if rng.IntN(5) == 0 {
						prefix = "bad"
					}
					n := int(tag.Add(1))
					specs[i] = fmt.Sprintf("%sk%d/%d", prefix, rng.IntN(6), n)
					mu.Lock()
					caller[n] = g
					mu.Unlock()
				}
				ctx, cancel := context.WithCancel(t.Context())
				var canceller sync.WaitGroup
				if rng.IntN(3) == 0 {
					canceller.Go(cancel)
				}
				errs, err := m.call(w, ctx, specs)
				canceller.Wait()
				cancel()
				mu.Lock()
				switch {
				case errors.Is(err, context.Canceled):
					withdrawnCalls++
					for _, s := range specs {
						withdrawn[m.name+" "+s] = true
					}
				case err != nil:
					t.Errorf("%s %v: %v", m.name, specs, err)
				default:
					for i, s := range specs {
						answered[m.name+" "+s] = true
						if (errs[i] != nil) != strings.HasPrefix(s, "bad") || (errs[i] != nil && !strings.HasPrefix(errs[i].Error(), s+":")) {
							t.Errorf("%s item %s got %v", m.name, s, errs[i])
						}
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	w.Close()

	f.checkKeys(t)
	sent := map[string]int{}
	for _, m := range methods {
		if most := f.mostInFlight(m.name); most > slots {
			t.Errorf("%s: %d store calls in flight at once, MaxInFlight %d", m.name, most, slots)
		}
		type keyOf struct {
			key    string
			caller int
		}
		last := map[keyOf]int{} // the tag of the latest item the store got
		for _, b := range f.recorded(m.name) {
			for _, s := range b {
				k, n := parse(s)
				by := keyOf{k, caller[n]}
				if last[by] > n {
					t.Errorf("%s: %s reached the store after %s/%d of the same caller", m.name, s, k, last[by])
				}
				last[by] = n
			}
			if len(b) > maxBatch {
				t.Errorf("%s batch of %d items, MaxBatch %d", m.name, len(b), maxBatch)
			}
			keys := map[string]bool{}
			for _, s := range b {
				k, _ := parse(s)
				if keys[k] {
					t.Errorf("%s batch %v names %s twice", m.name, b, k)
				}
				keys[k] = true
				sent[m.name+" "+s]++
			}
		}
	}
	for s := range answered {
		if sent[s] != 1 {
			t.Errorf("%s answered but sent %d times", s, sent[s])
		}
	}
	for s := range withdrawn {
		if sent[s] != 0 {
			t.Errorf("%s withdrawn but sent", s)
		}
	}
	if len(sent) != len(answered) {
		t.Errorf("%d items sent, %d answered", len(sent), len(answered))
	}
	// A call whose ctx ended before it was made is refused without being counted.
	total := w.Stats().Total()
	if total.Queued != 0 || total.Items != int64(len(sent)) || total.Cancelled > withdrawnCalls ||
		total.Calls+withdrawnCalls-total.Cancelled != callers*calls {
		t.Errorf("stats after Close: %+v, with %d calls withdrawn and %d items sent", total, withdrawnCalls, len(sent))
	}
	if total.InFlight != 0 || total.MostInFlight > slots {
		t.Errorf("stats after Close: %+v, MaxInFlight %d", total, slots)
	}
	t.Logf("stats: %+v; %d calls withdrawn", total, withdrawnCalls)
}

// TestEdgeCalls: an empty call goes straight to the store (whose answer to an empty batch
// says whether it is usable); nil elements, which have no key, go out with the others for
// the store to refuse per item.
func TestEdgeCalls(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{})
		done := make(chan error, 1)
		go func() {
			errs, err := w.Touch(t.Context(), nil)
			if err == nil && len(errs) != 0 {
				err = fmt.Errorf("%d results for no items", len(errs))
			}
			done <- err
		}()
		c := f.next(t)
		if len(c.specs) != 0 {
			t.Errorf("store call carried %v", c.specs)
		}
		c.fail(spi.ErrUnavailable)
		if err := <-done; !errors.Is(err, spi.ErrUnavailable) {
			t.Errorf("got %v, want the store's answer", err)
		}
	})
	t.Run("nil elements", func(t *testing.T) {
		f := newFakeStore()
		w := groupcommit.New(f, groupcommit.Options{})
		invalid := fmt.Errorf("nil: %w", spi.ErrInvalid)
		done := make(chan error, 2)
		go func() {
			a := &usersessions.ClientSession{RealmID: "r", UserSessionID: "a", ClientID: "app", CurrentRefreshToken: "1"}
			errs, err := w.PutClientSessions(t.Context(), []*usersessions.ClientSession{nil, a, nil})
			if err == nil && (len(errs) != 3 || !errors.Is(errs[0], spi.ErrInvalid) || errs[1] != nil || !errors.Is(errs[2], spi.ErrInvalid)) {
				err = fmt.Errorf("results %v", errs)
			}
			done <- err
		}()
		go func() {
			errs, err := w.Create(t.Context(), []*usersessions.UserSession{nil})
			if err == nil && (len(errs) != 1 || !errors.Is(errs[0], spi.ErrInvalid)) {
				err = fmt.Errorf("results %v", errs)
			}
			done <- err
		}()
		for range 2 {
			c := f.next(t)
			want := map[string][]string{"PutClientSessions": {"nil/0", "a/1", "nil/0"}, "Create": {"nil/0"}}[c.method]
			if !slices.Equal(c.specs, want) {
				t.Errorf("%s store call carried %v, want %v", c.method, c.specs, want)
			}
			c.answer(func(spec string) error {
				if spec == "nil/0" {
					return invalid
				}
				return nil
			})
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
}
