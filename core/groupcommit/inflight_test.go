package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// step is one move of a script against a Writer over the blocking fake store:
//
//	"call a/1 b/2"  makes a call with those items (each call has its own ctx)
//	"answer a/1"    answers, with success, the store call in flight that carries a/1
//	"cancel 2"      ends the ctx of the call made third (0-based), which must withdraw
//	"close"         starts Close, which must not return before the script has ended
//
// sent is every store call the move leads to (in any order; each with its items in
// order), once the Writer has settled: nothing queued could go, every batch taken has
// reached the store.
type step struct {
	do   string
	sent [][]string
}

// TestInFlight: with MaxInFlight slots, up to that many store calls of a method are in
// flight at once; a key is never in two of them, so the later items of a key wait for its
// store call even with a slot free, and reach the store in the order they were submitted
// while other keys overtake them; withdrawals and Close keep their meaning.
func TestInFlight(t *testing.T) {
	tests := []struct {
		name  string
		slots int
		steps []step
		most  int // Counts.MostInFlight at the end
	}{
		{
			name: "one slot: one store call at a time", slots: 1, most: 1,
			steps: []step{
				{"call a/1", [][]string{{"a/1"}}},
				{"call b/1", nil},
				{"call c/1", nil},
				{"answer a/1", [][]string{{"b/1", "c/1"}}},
				{"answer b/1", nil},
			},
		},
		{
			name: "two in flight together, the rest queue", slots: 2, most: 2,
			steps: []step{
				{"call a/1", [][]string{{"a/1"}}},
				{"call b/1", [][]string{{"b/1"}}},
				{"call c/1", nil},
				{"call d/1", nil},
				// The later store call returning first frees its slot all the same.
				{"answer b/1", [][]string{{"c/1", "d/1"}}},
				{"answer a/1", nil},
				{"answer c/1", nil},
			},
		},
		{
			name: "a key waits for its store call though a slot is free", slots: 3, most: 3,
			steps: []step{
				{"call k/1", [][]string{{"k/1"}}},
				{"call k/2", nil},
				{"call j/1", [][]string{{"j/1"}}},
				{"call k/3 i/1", [][]string{{"i/1"}}},
				{"answer j/1", nil},
				{"answer k/1", [][]string{{"k/2"}}},
				{"answer i/1", nil},
				{"answer k/2", [][]string{{"k/3"}}},
				{"answer k/3", nil},
			},
		},
		{
			name: "a waiting key keeps its order while others overtake it", slots: 2, most: 2,
			steps: []step{
				{"call p/1", [][]string{{"p/1"}}},
				{"call q/1 p/2", [][]string{{"q/1"}}},
				{"call p/3 q/2 s/1", nil},
				{"answer q/1", [][]string{{"q/2", "s/1"}}},
				{"answer p/1", [][]string{{"p/2"}}},
				{"answer q/2", nil},
				{"answer p/2", [][]string{{"p/3"}}},
				{"answer p/3", nil},
			},
		},
		{
			name: "several batches go at once when slots free up together", slots: 3, most: 3,
			steps: []step{
				{"call a/1 b/1", [][]string{{"a/1", "b/1"}}},
				{"call a/2", nil},
				{"call b/2", nil},
				{"call c/1", [][]string{{"c/1"}}},
				{"call d/1", [][]string{{"d/1"}}},
				{"call a/3 e/1", nil},
				// a/2 and b/2 may go now, e/1 too; a/3 waits for a/2. All three are in
				// one batch, led by one of their callers; the slot left is not needed.
				{"answer a/1", [][]string{{"a/2", "b/2", "e/1"}}},
				{"answer c/1", nil},
				{"answer a/2", [][]string{{"a/3"}}},
				{"answer d/1", nil},
				{"answer a/3", nil},
			},
		},
		{
			name: "a withdrawn call's items never go, and free their key", slots: 2, most: 2,
			steps: []step{
				{"call a/1", [][]string{{"a/1"}}},
				{"call k/1", [][]string{{"k/1"}}},
				{"call x/1 k/2", nil},
				{"call k/3", nil},
				{"call c/1", nil},
				{"cancel 2", nil},
				{"answer k/1", [][]string{{"k/3", "c/1"}}},
				{"answer a/1", nil},
				{"answer k/3", nil},
			},
		},
		{
			name: "Close waits for every store call in flight and queued", slots: 3, most: 3,
			steps: []step{
				{"call a/1", [][]string{{"a/1"}}},
				{"call b/1", [][]string{{"b/1"}}},
				{"call c/1", [][]string{{"c/1"}}},
				{"call d/1 a/2", nil},
				{"close", nil},
				{"answer c/1", [][]string{{"d/1"}}},
				// a/2 may go, but only a caller with items in a batch sends it, and its
				// caller is busy sending d/1: it sends a/2 next.
				{"answer a/1", nil},
				{"answer d/1", [][]string{{"a/2"}}},
				{"answer b/1", nil},
				{"answer a/2", nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachMethod(t, func(t *testing.T, m method) {
				s := newScript(t, m, tt.slots)
				for i, st := range tt.steps {
					s.run(i, st)
				}
				s.end()
				if got := m.counts(s.w.Stats()).MostInFlight; got != tt.most {
					t.Errorf("MostInFlight %d, want %d", got, tt.most)
				}
			})
		})
	}
}

// script runs steps against a Writer over the blocking fake store, keeping count of what
// the Writer holds so that it can tell when the Writer has settled.
type script struct {
	t *testing.T
	m method
	f *fakeStore
	w *groupcommit.Writer

	calls     []*pending
	specs     [][]string
	cancels   []context.CancelFunc
	withdrawn map[int]bool
	held      []*storeCall // store calls in flight, in the order they came
	live      int          // items of calls made, neither answered nor withdrawn
	answered  int64        // store calls answered
	closed    chan struct{}
}

func newScript(t *testing.T, m method, slots int) *script {
	f := newFakeStore()
	return &script{t: t, m: m, f: f, w: groupcommit.New(f, groupcommit.Options{MaxInFlight: slots}), withdrawn: map[int]bool{}}
}

func (s *script) run(i int, st step) {
	t := s.t
	t.Helper()
	verb, arg, _ := strings.Cut(st.do, " ")
	switch verb {
	case "call":
		specs := strings.Fields(arg)
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		s.calls = append(s.calls, start(s.w, s.m, ctx, specs...))
		s.specs = append(s.specs, specs)
		s.cancels = append(s.cancels, cancel)
		s.live += len(specs)
	case "answer":
		at := slices.IndexFunc(s.held, func(c *storeCall) bool { return slices.Contains(c.specs, arg) })
		if at < 0 {
			t.Fatalf("step %d (%s): no store call in flight carries %s", i, st.do, arg)
		}
		c := s.held[at]
		s.held = slices.Delete(s.held, at, at+1)
		c.ok()
		s.live -= len(c.specs)
		s.answered++
	case "cancel":
		n, err := strconv.Atoi(arg)
		if err != nil || n >= len(s.calls) {
			t.Fatalf("step %d: bad cancel %q", i, arg)
		}
		s.cancels[n]()
		if errs, err := s.calls[n].result(t); !errors.Is(err, context.Canceled) || errs != nil {
			t.Fatalf("step %d: the cancelled call got (%v, %v), want (nil, context.Canceled)", i, errs, err)
		}
		s.withdrawn[n] = true
		s.live -= len(s.specs[n])
	case "close":
		s.closed = make(chan struct{})
		go func() {
			defer close(s.closed)
			s.w.Close()
		}()
	default:
		t.Fatalf("step %d: bad step %q", i, st.do)
	}
	got := s.settle(fmt.Sprintf("step %d (%s)", i, st.do))
	if !sameBatches(got, st.sent) {
		t.Fatalf("step %d (%s): store calls made %v, want %v", i, st.do, got, st.sent)
	}
	if s.closed != nil && s.live > 0 {
		select {
		case <-s.closed:
			t.Fatalf("step %d: Close returned with %d items unanswered", i, s.live)
		default:
		}
	}
}

// settle waits until the Writer has settled and returns the store calls made meanwhile.
func (s *script) settle(what string) [][]string {
	t := s.t
	t.Helper()
	var made [][]string
	deadline := time.Now().Add(hang)
	for {
		select {
		case c := <-s.f.calls:
			s.held = append(s.held, c)
			made = append(made, c.specs)
			continue
		default:
		}
		st := s.m.counts(s.w.Stats())
		heldItems := 0
		for _, c := range s.held {
			heldItems += len(c.specs)
		}
		// Every answer processed, every batch taken at the store, every item of a call
		// made either queued or at the store: nothing is on its way.
		if st.Batches == s.answered && st.InFlight == len(s.held) && st.Queued+heldItems == s.live {
			return made
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the Writer did not settle within %v: %+v, %d store calls held with %d items, %d items live",
				what, hang, st, len(s.held), heldItems, s.live)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// end checks that the script left nothing in flight or queued, that every call not
// withdrawn succeeded, that Close returns, and that no key was ever in flight twice.
func (s *script) end() {
	t := s.t
	t.Helper()
	if len(s.held) > 0 || s.live > 0 {
		t.Fatalf("the script ended with %d store calls in flight and %d items unanswered", len(s.held), s.live)
	}
	for i, p := range s.calls {
		if !s.withdrawn[i] {
			succeeded(t, p, len(s.specs[i]))
		}
	}
	if s.closed == nil {
		s.w.Close()
	} else {
		select {
		case <-s.closed:
		case <-time.After(hang):
			t.Fatal("Close did not return")
		}
	}
	if st := s.m.counts(s.w.Stats()); st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("after Close: %+v", st)
	}
	s.f.checkKeys(t)
}

// sameBatches says whether a and b hold the same batches, in any order.
func sameBatches(a, b [][]string) bool {
	join := func(bs [][]string) []string {
		out := make([]string, len(bs))
		for i, b := range bs {
			out[i] = strings.Join(b, " ")
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(join(a), join(b))
}

// TestOneUserSessionInFlight: Touch and Rotate move the user session's idle clock, so
// writes of two client sessions of one user session (which may share a store call) are
// never in two store calls in flight at once: the later waits though a slot is free.
// PutClientSessions writes the client sessions alone, and its writes of two clients go at
// once.
func TestOneUserSessionInFlight(t *testing.T) {
	client := func(id string) *usersessions.ClientSession {
		tag := map[string]string{"app": "1", "other": "2"}[id] // the fake store's spec tag
		return &usersessions.ClientSession{RealmID: "r", UserSessionID: "s", ClientID: id, CurrentRefreshToken: tag}
	}
	tests := []struct {
		name   string
		call   func(w *groupcommit.Writer, client string) error
		shared bool // the user session is a lock key
	}{
		{"Touch", func(w *groupcommit.Writer, c string) error {
			return firstErr(w.Touch(t.Context(), []usersessions.Touch{{Session: sessionKey("s"), ClientID: c}}))
		}, true},
		{"Rotate", func(w *groupcommit.Writer, c string) error {
			return firstErr(w.Rotate(t.Context(), []usersessions.Rotation{{Client: client(c)}}))
		}, true},
		{"PutClientSessions", func(w *groupcommit.Writer, c string) error {
			return firstErr(w.PutClientSessions(t.Context(), []*usersessions.ClientSession{client(c)}))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeStore()
			w := groupcommit.New(f, groupcommit.Options{MaxInFlight: 2})
			done := make(chan error, 2)
			go func() { done <- tt.call(w, "app") }()
			first := f.next(t)
			go func() { done <- tt.call(w, "other") }()
			if tt.shared {
				waitFor(t, "the second write to be queued", func() bool { return w.Stats().Total().Queued == 1 })
				if st := w.Stats().Total(); st.InFlight != 1 {
					t.Fatalf("%d store calls in flight, want 1: the second write of user session s went at once", st.InFlight)
				}
				first.ok()
				f.next(t).ok()
			} else {
				second := f.next(t) // both in flight at once
				second.ok()
				first.ok()
			}
			for range 2 {
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
			w.Close()
		})
	}
}
