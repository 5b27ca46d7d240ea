package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// request is one call to the Writer, waiting for its items to be answered.
type request struct {
	// wake is signalled when the request has been answered or made the leader. It holds
	// one signal at most; the waiter looks at the state under the queue's lock after each.
	wake      chan struct{}
	remaining int  // items not answered yet
	sent      bool // some item went to the store: the call can no longer be withdrawn
	errs      []error
	err       error // the first call-level error of its store calls
}

func (r *request) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// item is one element of a call, queued.
type item[T any, K comparable] struct {
	req   *request
	index int // in the call
	v     T
	key   K
	keyed bool // false for elements without a key (nil), which the store refuses per item
}

// queue batches the calls of one store method.
//
// At most one goroutine, the leader, takes batches from the queue and makes the store
// call; the leader is always a caller waiting for its own items. The leadership is a token:
// held by the request in leader, passed on to the request owning the oldest queued item
// when a store call returns (or when the designated leader withdraws), and dropped when
// the queue is empty. So leader == nil exactly when nothing is queued or in flight.
type queue[T any, K comparable] struct {
	op      string
	call    func(context.Context, []T) ([]error, error)
	key     func(T) (K, bool)
	max     int
	timeout time.Duration

	mu      sync.Mutex
	idle    sync.Cond // broadcast when leader becomes nil
	pending []item[T, K]
	leader  *request
	closed  bool
	stats   Counts
}

func newQueue[T any, K comparable](op string, call func(context.Context, []T) ([]error, error), opts Options, key func(T) (K, bool)) *queue[T, K] {
	q := &queue[T, K]{op: op, call: call, key: key, max: opts.MaxBatch, timeout: opts.Timeout}
	q.idle.L = &q.mu
	return q
}

// do is one call to the Writer.
func (q *queue[T, K]) do(ctx context.Context, vs []T) ([]error, error) {
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
	r := &request{wake: make(chan struct{}, 1), remaining: len(vs), errs: make([]error, len(vs))}
	for i, v := range vs {
		k, ok := q.key(v)
		q.pending = append(q.pending, item[T, K]{req: r, index: i, v: v, key: k, keyed: ok})
	}
	if q.leader == nil {
		// Nothing in flight: this caller sends its items at once.
		q.leader = r
		r.signal()
	}
	q.mu.Unlock()
	return q.wait(ctx, r)
}

// wait blocks until r is answered, making the store calls it is asked to lead meanwhile.
func (q *queue[T, K]) wait(ctx context.Context, r *request) ([]error, error) {
	done := ctx.Done()
	for {
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
			continue
		}
		q.mu.Lock()
		if r.remaining == 0 {
			q.mu.Unlock()
			if r.err != nil {
				return nil, r.err
			}
			return r.errs, nil
		}
		if q.leader != r {
			q.mu.Unlock()
			continue
		}
		if !r.sent && ctx.Err() != nil {
			// Made the leader as its ctx ended: withdraw rather than send.
			q.withdraw(r)
			q.mu.Unlock()
			return nil, ctx.Err()
		}
		batch := q.take()
		q.mu.Unlock()
		q.flush(ctx, batch)
	}
}

// take removes the next batch from the queue: the oldest items, at most max, skipping any
// whose key is already in the batch (it stays queued, ahead of later items of its key).
// The caller holds q.mu.
func (q *queue[T, K]) take() []item[T, K] {
	batch := make([]item[T, K], 0, min(len(q.pending), q.max))
	seen := make(map[K]struct{}, cap(batch))
	rest := q.pending[:0]
	for _, it := range q.pending {
		if len(batch) < q.max {
			if !it.keyed {
				batch = append(batch, it)
				continue
			}
			if _, dup := seen[it.key]; !dup {
				seen[it.key] = struct{}{}
				batch = append(batch, it)
				continue
			}
		}
		rest = append(rest, it)
	}
	clear(q.pending[len(rest):])
	q.pending = rest
	for _, it := range batch {
		it.req.sent = true
	}
	return batch
}

// flush makes the store call of one batch and answers its callers. The store call keeps
// ctx's values but not its cancellation: others' writes ride on it.
func (q *queue[T, K]) flush(ctx context.Context, batch []item[T, K]) {
	vs := make([]T, len(batch))
	for i, it := range batch {
		vs[i] = it.v
	}
	answered := false
	defer func() {
		if !answered {
			// The store call panicked: answer the batch and pass the leadership on, so
			// that no caller waits forever; the panic goes on up this goroutine.
			q.finish(batch, nil, fmt.Errorf("%s: %w", q.op, errPanicked))
		}
	}()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	errs, err := q.call(sctx, vs)
	cancel()
	if err == nil && len(errs) != len(vs) {
		err = fmt.Errorf("%s: the store answered %d results for %d items", q.op, len(errs), len(vs))
	}
	answered = true
	q.finish(batch, errs, err)
}

// finish answers the callers of a batch and passes the leadership on.
func (q *queue[T, K]) finish(batch []item[T, K], errs []error, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stats.Batches++
	q.stats.Items += int64(len(batch))
	q.stats.Largest = max(q.stats.Largest, len(batch))
	for i, it := range batch {
		r := it.req
		if err != nil {
			if r.err == nil {
				r.err = err
			}
		} else {
			r.errs[it.index] = errs[i]
		}
		if r.remaining--; r.remaining == 0 {
			r.signal()
		}
	}
	q.handOff()
}

// withdraw removes the items of r, none of which was sent, from the queue. The caller
// holds q.mu.
func (q *queue[T, K]) withdraw(r *request) {
	rest := q.pending[:0]
	for _, it := range q.pending {
		if it.req != r {
			rest = append(rest, it)
		}
	}
	clear(q.pending[len(rest):])
	q.pending = rest
	q.stats.Cancelled++
	if q.leader == r {
		q.handOff()
	}
}

// handOff gives the leadership to the owner of the oldest queued item, or drops it when
// nothing is queued. The caller holds q.mu.
func (q *queue[T, K]) handOff() {
	if len(q.pending) == 0 {
		q.leader = nil
		q.idle.Broadcast()
		return
	}
	q.leader = q.pending[0].req
	q.leader.signal()
}

// refuse makes new calls fail with ErrClosed.
func (q *queue[T, K]) refuse() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// drain waits until nothing is queued or in flight.
func (q *queue[T, K]) drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.leader != nil {
		q.idle.Wait()
	}
}

func (q *queue[T, K]) counts() Counts {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.stats
	c.Queued = len(q.pending)
	return c
}
