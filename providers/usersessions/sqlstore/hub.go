package sqlstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Hub is a Feed for a store only one process writes to: it hands each committed change to
// every Watch running in this process.
type Hub struct {
	limit int

	mu       sync.Mutex
	closed   bool
	watchers map[*subscriber]struct{}
}

var _ Feed = (*Hub)(nil)

// NewHub returns a Hub whose watchers may fall limit changes behind before their feed
// breaks (and they must reload).
func NewHub(limit int) *Hub {
	return &Hub{limit: limit, watchers: make(map[*subscriber]struct{})}
}

// subscriber is one running Watch. Publish appends to its queue; the Watch call drains it
// and runs fn without holding any lock, so fn may call the store.
type subscriber struct {
	mu     sync.Mutex
	queue  []usersessions.Change
	broken error
	wake   chan struct{} // capacity 1: "there is something to look at"
}

func (w *subscriber) push(changes []usersessions.Change, limit int) {
	w.mu.Lock()
	switch {
	case w.broken != nil:
	case len(w.queue)+len(changes) > limit:
		w.broken = fmt.Errorf("change feed subscriber fell more than %d changes behind: %w", limit, spi.ErrUnavailable)
		w.queue = nil
	default:
		w.queue = append(w.queue, changes...)
	}
	w.mu.Unlock()
	w.signal()
}

// fail breaks the feed with err.
func (w *subscriber) fail(err error) {
	w.mu.Lock()
	if w.broken == nil {
		w.broken = err
	}
	w.mu.Unlock()
	w.signal()
}

func (w *subscriber) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *subscriber) take() ([]usersessions.Change, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q, w.broken
}

// Stage implements Feed: nothing to do before the commit.
func (h *Hub) Stage(context.Context, *sqlx.Tx, []usersessions.Change) error { return nil }

// Publish implements Feed.
func (h *Hub) Publish(changes []usersessions.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.push(changes, h.limit)
	}
}

// Close breaks every running Watch; later ones fail at once.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.watchers {
		w.fail(errClosed)
	}
}

// Watch implements usersessions.Provider.Watch for the changes published from now on. It
// returns nil when ctx ends, fn's error, or an error wrapping spi.ErrUnavailable when the
// caller fell behind or the hub was closed.
func (h *Hub) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	w := &subscriber{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errClosed
	}
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}()
	if err := fn(usersessions.Change{Kind: usersessions.Subscribed}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
		changes, broken := w.take()
		for _, c := range changes {
			if ctx.Err() != nil {
				return nil
			}
			if err := fn(c); err != nil {
				return err
			}
		}
		if broken != nil {
			return broken
		}
	}
}
