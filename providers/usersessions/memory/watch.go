package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// watcher is one running Watch. Writers append to its queue under the provider's write
// lock, so every watcher sees changes in write order; the Watch call itself drains the
// queue and runs fn without holding any provider lock, so fn may call the provider.
type watcher struct {
	mu     sync.Mutex
	queue  []usersessions.Change
	broken error
	wake   chan struct{} // capacity 1: "there is something to look at"
}

func (w *watcher) push(c usersessions.Change, limit int) {
	w.mu.Lock()
	if w.broken == nil {
		if len(w.queue) >= limit {
			w.broken = fmt.Errorf("change feed subscriber fell %d changes behind (%s): %w", limit, OptWatchBuffer, spi.ErrUnavailable)
			w.queue = nil
		} else {
			w.queue = append(w.queue, c)
		}
	}
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) breakFeed(err error) {
	w.mu.Lock()
	if w.broken == nil {
		w.broken = err
	}
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) take() ([]usersessions.Change, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q, w.broken
}

// publish hands c to every watcher; the caller holds the write lock.
func (p *Provider) publish(c usersessions.Change) {
	c.Origin = p.origin
	for w := range p.watchers {
		w.push(c, p.watchBuffer)
	}
}

// Watch implements usersessions.Provider. It reports the changes made through this
// provider only. It returns fn's error, or an error wrapping spi.ErrUnavailable when the
// caller fell more than watch-buffer changes behind or the provider was closed.
func (p *Provider) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	w := &watcher{wake: make(chan struct{}, 1)}
	if err := p.lock(ctx); err != nil {
		return err
	}
	p.watchers[w] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.watchers, w)
		p.mu.Unlock()
	}()
	if err := fn(usersessions.Change{Kind: usersessions.Subscribed, Origin: p.origin}); err != nil {
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
