package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// request is one call to the Writer, waiting for its items to be answered.
type request[T any, K, L comparable] struct {
	ctx context.Context
	// wake is signalled when the request has been answered or given a batch to send. It
	// holds one signal at most; the waiter looks at the state under the queue's lock
	// after each.
	wake      chan struct{}
	remaining int  // items not answered yet
	sent      bool // some item went to the store: the call can no longer be withdrawn
	errs      []error
	err       error // the first call-level error of its store calls
	// batch is the batch this request's goroutine is to send (or is sending): taken from
	// the queue and counted in flight, but not yet answered.
	batch []item[T, K, L]
}

func (r *request[T, K, L]) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// item is one element of a call, queued.
type item[T any, K, L comparable] struct {
	req   *request[T, K, L]
	index int // in the call
	v     T
	key   K    // never twice in one batch
	lock  L    // never in two batches in flight: what the store call locks
	keyed bool // false for elements without a key (nil), which the store refuses per item
}

// queue batches the calls of one store method.
//
// At most slots batches are in flight at once. A batch is taken from the queue, under
// the lock, as soon as a slot is free and something queued may go: when a call comes,
// when a store call returns, when a caller withdraws. It is handed to a caller that has
// items in it and no batch of its own to send, whose goroutine makes the store call; so
// every store call is made by a caller waiting for its own items. No lock key (the key,
// or the user session it belongs to) is in two batches in flight: an item whose lock key
// is in flight stays queued, and so do the later items of its key, until the store call
// holding it has returned.
//
// So nothing is queued while no batch is in flight, except the items of callers whose ctx
// has ended and which are about to withdraw them (take leaves those alone).
type queue[T any, K, L comparable] struct {
	op      string
	call    func(context.Context, []T) ([]error, error)
	key     func(T) (K, bool)
	lock    func(K) L
	max     int
	slots   int
	timeout time.Duration

	mu       sync.Mutex
	idle     sync.Cond // broadcast when nothing is queued or in flight
	pending  []item[T, K, L]
	flying   map[L]struct{} // lock keys of the items in flight
	inFlight int            // batches taken and not yet answered
	closed   bool
	stats    Counts
}

func newQueue[T any, K, L comparable](op string, call func(context.Context, []T) ([]error, error), opts Options,
	key func(T) (K, bool), lock func(K) L) *queue[T, K, L] {
	q := &queue[T, K, L]{op: op, call: call, key: key, lock: lock, max: opts.MaxBatch, slots: opts.MaxInFlight, timeout: opts.Timeout,
		flying: map[L]struct{}{}}
	q.idle.L = &q.mu
	return q
}

// do is one call to the Writer.
func (q *queue[T, K, L]) do(ctx context.Context, vs []T) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	q.stats.Calls++
	if len(vs) == 0 {
		// Nothing to batch; the store's answer to an empty batch says whether it is usable.
		q.mu.Unlock()
		return q.call(ctx, vs)
	}
	r := &request[T, K, L]{ctx: ctx, wake: make(chan struct{}, 1), remaining: len(vs), errs: make([]error, len(vs))}
	for i, v := range vs {
		it := item[T, K, L]{req: r, index: i, v: v}
		if it.key, it.keyed = q.key(v); it.keyed {
			it.lock = q.lock(it.key)
		}
		q.pending = append(q.pending, it)
	}
	// With a slot free, this caller's items go at once (usually in a batch it sends
	// itself): at low load the Writer adds no latency.
	q.dispatch()
	q.mu.Unlock()
	return q.wait(ctx, r)
}

// wait blocks until r is answered, sending the batches it is handed meanwhile.
func (q *queue[T, K, L]) wait(ctx context.Context, r *request[T, K, L]) ([]error, error) {
	done := ctx.Done()
	for {
		q.mu.Lock()
		if batch := r.batch; batch != nil {
			q.mu.Unlock()
			q.flush(ctx, r, batch)
			continue
		}
		if r.remaining == 0 {
			q.mu.Unlock()
			if r.err != nil {
				return nil, r.err
			}
			return r.errs, nil
		}
		q.mu.Unlock()
		select {
		case <-r.wake:
		case <-done:
			q.mu.Lock()
			if !r.sent {
				q.withdraw(r)
				q.mu.Unlock()
				return nil, ctx.Err()
			}
			// Something was sent and may commit: wait for the answer.
			q.mu.Unlock()
			done = nil
		}
	}
}

// dispatch takes batches from the queue and hands them out while a slot is free and
// something queued may go. The caller holds q.mu.
func (q *queue[T, K, L]) dispatch() {
	for q.inFlight < q.slots && len(q.pending) > 0 {
		batch, leader := q.take()
		if batch == nil {
			return
		}
		q.inFlight++
		q.stats.MostInFlight = max(q.stats.MostInFlight, q.inFlight)
		leader.batch = batch
		leader.signal()
	}
}

// take removes the next batch from the queue and returns it with the caller to send it,
// or nil when nothing queued may go now. The batch is the oldest items, at most max,
// skipping any whose lock key is in flight or whose key is already in the batch (it stays queued, ahead of
// later items of its key), and those of callers whose ctx has ended before anything of
// theirs was sent (they withdraw them; the later items of their keys wait for that). The
// sender is the oldest caller in the batch that has no batch to send already; when every
// caller in it has, nothing is taken: one of them will take the next batch once its
// store call returns. The caller holds q.mu.
func (q *queue[T, K, L]) take() ([]item[T, K, L], *request[T, K, L]) {
	var (
		chosen = make([]int, 0, min(len(q.pending), q.max))
		seen   map[K]struct{}
		leader *request[T, K, L]
	)
	for i, it := range q.pending {
		if len(chosen) == q.max {
			break
		}
		if !it.req.sent && it.req.ctx.Err() != nil {
			if it.keyed {
				if seen == nil {
					seen = map[K]struct{}{}
				}
				seen[it.key] = struct{}{}
			}
			continue
		}
		if it.keyed {
			if _, busy := q.flying[it.lock]; busy {
				continue
			}
			if _, dup := seen[it.key]; dup {
				continue
			}
			if seen == nil {
				seen = map[K]struct{}{}
			}
			seen[it.key] = struct{}{}
		}
		chosen = append(chosen, i)
		if leader == nil && it.req.batch == nil {
			leader = it.req
		}
	}
	if leader == nil {
		return nil, nil
	}
	batch := make([]item[T, K, L], len(chosen))
	rest := q.pending[:0]
	next := 0
	for i, it := range q.pending {
		if next < len(chosen) && chosen[next] == i {
			batch[next] = it
			next++
			continue
		}
		rest = append(rest, it)
	}
	clear(q.pending[len(rest):])
	q.pending = rest
	for _, it := range batch {
		it.req.sent = true
		if it.keyed {
			q.flying[it.lock] = struct{}{}
		}
	}
	return batch, leader
}

// flush makes the store call of the batch r was handed and answers its callers. The
// store call keeps ctx's values but not its cancellation: others' writes ride on it.
func (q *queue[T, K, L]) flush(ctx context.Context, r *request[T, K, L], batch []item[T, K, L]) {
	vs := make([]T, len(batch))
	for i, it := range batch {
		vs[i] = it.v
	}
	answered := false
	defer func() {
		if !answered {
			// The store call panicked: answer the batch and free its slot, so that no
			// caller waits forever; the panic goes on up this goroutine, which will send
			// nothing more, so r's items still queued are dropped.
			q.finish(r, batch, nil, fmt.Errorf("%s: %w", q.op, errPanicked), true)
		}
	}()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	errs, err := q.call(sctx, vs)
	cancel()
	if err == nil && len(errs) != len(vs) {
		err = fmt.Errorf("%s: the store answered %d results for %d items", q.op, len(errs), len(vs))
	}
	answered = true
	q.finish(r, batch, errs, err, false)
}

// finish answers the callers of the batch r sent, frees its keys and its slot, and hands
// out what may go now.
func (q *queue[T, K, L]) finish(r *request[T, K, L], batch []item[T, K, L], errs []error, err error, panicked bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stats.Batches++
	q.stats.Items += int64(len(batch))
	q.stats.Largest = max(q.stats.Largest, len(batch))
	for i, it := range batch {
		if it.keyed {
			delete(q.flying, it.lock)
		}
		req := it.req
		if err != nil {
			if req.err == nil {
				req.err = err
			}
		} else {
			req.errs[it.index] = errs[i]
		}
		if req.remaining--; req.remaining == 0 {
			req.signal()
		}
	}
	r.batch = nil
	q.inFlight--
	if panicked {
		q.drop(r)
	}
	q.settle()
}

// withdraw removes the items of r, none of which was sent, from the queue. The caller
// holds q.mu.
func (q *queue[T, K, L]) withdraw(r *request[T, K, L]) {
	q.drop(r)
	q.stats.Cancelled++
	q.settle()
}

// drop removes r's queued items. The caller holds q.mu.
func (q *queue[T, K, L]) drop(r *request[T, K, L]) {
	rest := q.pending[:0]
	for _, it := range q.pending {
		if it.req != r {
			rest = append(rest, it)
		}
	}
	clear(q.pending[len(rest):])
	q.pending = rest
}

// settle hands out what may go now, and wakes Close when nothing is left. The caller
// holds q.mu.
func (q *queue[T, K, L]) settle() {
	q.dispatch()
	if q.inFlight == 0 && len(q.pending) == 0 {
		q.idle.Broadcast()
	}
}

// refuse makes new calls fail with ErrClosed.
func (q *queue[T, K, L]) refuse() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// drain waits until nothing is queued or in flight.
func (q *queue[T, K, L]) drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.inFlight > 0 || len(q.pending) > 0 {
		q.idle.Wait()
	}
}

func (q *queue[T, K, L]) counts() Counts {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.stats
	c.Queued = len(q.pending)
	c.InFlight = q.inFlight
	return c
}
