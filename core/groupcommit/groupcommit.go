// Package groupcommit lets concurrent writes share store calls and so commits; each
// caller is answered only after its own write is committed.
//
// One transaction per refresh is capped by the disk's commit rate (a one-row update
// reaches about 800 commits per second on an ordinary disk). A Writer stands in front of
// the user-sessions store for the writes a refresh makes — Touch (the last-refresh stamps),
// PutClientSessions (the client sessions' writes), Rotate (a refresh-token rotation with
// its touch, one call to a usersessions.Rotator) and Create — and batches the pending
// writes of many requests into one store call, which the providers apply in one
// transaction.
//
// There is no timer and no background goroutine. Up to Options.MaxInFlight store calls of
// one method are in flight at once. While fewer are, a call goes to the store at once,
// made by the calling goroutine: at low load the Writer adds no latency. When all are in
// flight, new calls queue; when one returns, the callers it answered go their way and
// everything queued that may go (up to Options.MaxBatch items) is sent as the next single
// store call, made by one of the callers whose items it carries, and so on until the
// queue is empty. Every caller blocks until the store calls holding its items have
// returned, and gets its own per-item errors (or the call-level error of such a store
// call): nothing is acknowledged before it is committed.
//
// Why more than one in flight: each store call is a whole transaction — BEGIN, the
// statements, the change-feed notify, COMMIT with its WAL flush — and with one at a time
// the next batch waits for all of it, so a moderate load (a batch of one or two) can be
// bound by the latency of a commit while CPU and database idle. With a few in flight
// their commits overlap, and PostgreSQL flushes the WAL of concurrent commits together.
// Why one by default: every extra store call costs CPU (a gRPC call to the plugin, a
// transaction, a change-feed notification every node reads) and batches shrink as slots
// are added, so where the CPU is the limit more in flight is slower. bench/refresh on a
// 2-core machine with its CPU busy (load 8–14), against the build before this option
// (one in flight), medians of 3 rounds with rotation off/on: 2 in flight 0.88×/0.88× at
// c=16 and 0.81×/0.74× at c=64, 4 in flight 0.71×/0.68× and 0.85×/0.52×, with 7–77% more
// CPU per refresh; one in flight 1.10×/1.13× and 0.89×/0.92× (noise). Raise it
// (group-commit-max-in-flight) for a node whose commits wait on a slow disk or a distant
// server with CPU to spare.
//
// A store call never holds two items of one key (Touch: the session key and client id;
// PutClientSessions and Rotate: the client-session key; Create: the session key), and no
// key is in two store calls in flight at once; nor, for Touch and Rotate, which move the
// user session's idle clock too, is one user session (two transactions locking its row
// could deadlock). An item whose key is in flight waits in the queue, and so do the later
// items of its key, until that store call has returned. A set-based UPDATE given one key
// twice applies one of them arbitrarily, and the optimistic version check of
// PutClientSessions and Rotate must be decided in the order the writes were submitted:
// items of one key reach the store in submission order, one store call after the other.
// Items of different keys carry no order between them and may overtake each other.
//
// Each method has its own queue; they never share a store call.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Store is what a Writer writes to: the batch writes of usersessions.Provider, whose
// per-item contracts the Writer keeps.
type Store interface {
	Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error)
	Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error)
	PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error)
}

var (
	_ Store = usersessions.Provider(nil)
	_ Store = (*Writer)(nil)
)

// Options tune a Writer. Zero values take the defaults.
type Options struct {
	// MaxBatch is the most items one store call carries (default 256).
	MaxBatch int
	// MaxInFlight is the most store calls of one method in flight at once (default
	// DefaultMaxInFlight: one batch at a time; the package doc says why). Each store call
	// in flight holds one of the store's connections while it runs: calls beyond the
	// pool's size only wait for one.
	MaxInFlight int
	// Timeout bounds each store call (default 10s). Store calls do not end when the
	// caller that happens to make them goes away; this is what ends them instead.
	Timeout time.Duration
}

// Defaults of Options.
const (
	DefaultMaxBatch    = 256
	DefaultMaxInFlight = 1 // measured with bench/refresh: see the package doc
	DefaultTimeout     = 10 * time.Second
)

// ErrClosed is returned by the calls made after Close.
var ErrClosed = fmt.Errorf("group commit writer is closed: %w", spi.ErrUnavailable)

// errPanicked answers the other callers of a batch whose store call panicked; the panic
// itself goes on in the goroutine that made the call.
var errPanicked = errors.New("group commit: the store call panicked")

// Writer batches concurrent Create, Touch, PutClientSessions and Rotate calls into shared store
// calls. Its methods have the signatures and per-item semantics of the store's, with
// these differences:
//
//   - A call with more than MaxBatch items, or naming one key twice, is spread over
//     several store calls, and is therefore not applied as one
//     transaction. A call-level error then means that at least one of those store calls
//     failed (its items may or may not be applied, as with any call-level error); items of
//     the other store calls may be applied.
//   - The store call runs with a context that is not cancelled with the caller's (it
//     keeps the values of the context of the caller that made it, and ends after
//     Options.Timeout). A caller whose ctx ends while none of its items has been sent yet
//     gets ctx.Err() and its items are withdrawn: nothing of that call is written. Once an
//     item has been sent, the caller waits for the result whatever its ctx, since the write
//     may commit.
//   - After Close, calls fail with ErrClosed.
//   - Should a store call panic, the panic goes on in the caller that made the store
//     call; the other callers of that batch get an error, and the queue goes on.
//
// A Writer is safe for concurrent use. It starts no goroutine.
type Writer struct {
	create *queue[*usersessions.UserSession, usersessions.Key, usersessions.Key]
	touch  *queue[usersessions.Touch, usersessions.ClientKey, usersessions.Key]
	put    *queue[*usersessions.ClientSession, usersessions.ClientKey, usersessions.ClientKey]
	rotate *queue[usersessions.Rotation, usersessions.ClientKey, usersessions.Key]
}

// Lock keys: what two store calls in flight at once must not both write. Touch and
// Rotate move the user session's idle clock besides the client session's, so two of them
// naming one user session (for two clients) would lock its row in two transactions,
// which could deadlock against each other's other rows.
func ownKey[K any](k K) K { return k }

func userSessionOf(k usersessions.ClientKey) usersessions.Key { return k.Session }

// New returns a Writer in front of store.
func New(store Store, opts Options) *Writer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	return &Writer{
		create: newQueue("create", store.Create, opts, func(s *usersessions.UserSession) (usersessions.Key, bool) {
			if s == nil {
				return usersessions.Key{}, false
			}
			return s.Key(), true
		}, ownKey),
		touch: newQueue("touch", store.Touch, opts, func(t usersessions.Touch) (usersessions.ClientKey, bool) {
			return usersessions.ClientKey{Session: t.Session, ClientID: t.ClientID}, true
		}, userSessionOf),
		put: newQueue("put client sessions", store.PutClientSessions, opts, func(c *usersessions.ClientSession) (usersessions.ClientKey, bool) {
			if c == nil {
				return usersessions.ClientKey{}, false
			}
			return c.Key(), true
		}, ownKey),
		rotate: newQueue("rotate client sessions", func(ctx context.Context, rs []usersessions.Rotation) ([]error, error) {
			return usersessions.Rotate(ctx, store, rs)
		}, opts, func(r usersessions.Rotation) (usersessions.ClientKey, bool) {
			if r.Client == nil {
				return usersessions.ClientKey{}, false
			}
			return r.Client.Key(), true
		}, userSessionOf),
	}
}

// Create stores new user sessions as usersessions.Provider.Create does, sharing the store
// call with concurrent Creates.
func (w *Writer) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	return w.create.do(ctx, sessions)
}

// Touch applies idle-clock moves as usersessions.Provider.Touch does, sharing the store
// call with concurrent Touches.
func (w *Writer) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	return w.touch.do(ctx, touches)
}

// PutClientSessions creates or replaces client sessions as
// usersessions.Provider.PutClientSessions does, sharing the store call with concurrent
// PutClientSessions; writes of one client session are decided in the order they were
// submitted.
func (w *Writer) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	return w.put.do(ctx, clients)
}

// Rotate writes refresh-token rotations with their touches as usersessions.Rotate does
// (one call when the store is a usersessions.Rotator, else its two calls), sharing the
// store call with concurrent Rotates; rotations of one client session are decided in the
// order they were submitted.
func (w *Writer) Rotate(ctx context.Context, rotations []usersessions.Rotation) ([]error, error) {
	return w.rotate.do(ctx, rotations)
}

// Close refuses new calls and waits until every call already made has been answered:
// the store calls in flight and those the queued items still need. It does not close the
// store.
func (w *Writer) Close() {
	w.create.refuse()
	w.touch.refuse()
	w.put.refuse()
	w.rotate.refuse()
	w.create.drain()
	w.touch.drain()
	w.put.drain()
	w.rotate.drain()
}

// Counts are the figures of one method.
type Counts struct {
	Calls     int64 // calls accepted (not those refused after Close or with their ctx already ended)
	Cancelled int64 // accepted calls withdrawn because their ctx ended before anything was sent
	Batches   int64 // store calls answered
	Items     int64 // items sent in store calls answered
	Largest   int   // items of the largest store call
	Queued    int   // items waiting now
	InFlight  int   // store calls in flight now
	// MostInFlight is the most store calls in flight at once since New (at most
	// Options.MaxInFlight): whether the load ever used the slots beyond the first.
	MostInFlight int
}

// Add returns the sum of c and o; Largest and MostInFlight are the larger of the two.
func (c Counts) Add(o Counts) Counts {
	return Counts{
		Calls:     c.Calls + o.Calls,
		Cancelled: c.Cancelled + o.Cancelled,
		Batches:   c.Batches + o.Batches,
		Items:     c.Items + o.Items,
		Largest:   max(c.Largest, o.Largest),
		Queued:    c.Queued + o.Queued,
		InFlight:  c.InFlight + o.InFlight,
		// The most of one method: the methods' slots are separate.
		MostInFlight: max(c.MostInFlight, o.MostInFlight),
	}
}

// Stats are a Writer's figures since New, per method.
type Stats struct {
	Create, Touch, PutClientSessions, Rotate Counts
}

// Total sums the figures of the four methods.
func (s Stats) Total() Counts {
	return s.Create.Add(s.Touch).Add(s.PutClientSessions).Add(s.Rotate)
}

// Stats returns the Writer's figures, for metrics and tests.
func (w *Writer) Stats() Stats {
	return Stats{Create: w.create.counts(), Touch: w.touch.counts(), PutClientSessions: w.put.counts(), Rotate: w.rotate.counts()}
}
