package volatile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// StreamLent implements usersessions.PageLender: the one side's StreamLent when the
// filter selects one side and it lends its pages, Stream otherwise.
func (s *Store) StreamLent(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	if err := validFilter("stream", req.Filter); err != nil {
		return err
	}
	if sd := s.sides(req.Filter); len(sd) == 1 {
		if lender, ok := sd[0].p.(usersessions.PageLender); ok {
			req.Filter = sd[0].f
			return lender.StreamLent(ctx, req, fn)
		}
	}
	return s.Stream(ctx, req, fn)
}

// StreamLentParallel implements usersessions.ParallelLender: the one side's when the
// filter selects one side and it streams so; errors.ErrUnsupported otherwise.
func (s *Store) StreamLentParallel(ctx context.Context, req usersessions.StreamRequest, workers int, fn func(page []*usersessions.UserSession) error) error {
	if err := validFilter("stream", req.Filter); err != nil {
		return err
	}
	if sd := s.sides(req.Filter); len(sd) == 1 {
		if lender, ok := sd[0].p.(usersessions.ParallelLender); ok {
			req.Filter = sd[0].f
			return lender.StreamLentParallel(ctx, req, workers, fn)
		}
	}
	return fmt.Errorf("stream: these sessions are not streamed in parallel: %w", errors.ErrUnsupported)
}

// Stream implements usersessions.Provider. OnlineOnly streams the online side, OfflineOnly
// the store, each as that provider streams.
//
// Both streams the two sides side by side and merges them into pages of at most PageSize,
// by key (session id, then online before offline) where the sides come in key order (the
// contract leaves the order to each provider, and a merge of others still gives every
// session once). Each side reads its own pages
// (of PageSize) as the merge needs them, so the stream is no more a snapshot than a single
// provider's. With a Partition, each side picks its part of its own sessions: the parts
// are disjoint and together complete, but an online session and its offline twin may fall
// in different parts when the two providers hash ids differently.
func (s *Store) Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	if err := validFilter("stream", req.Filter); err != nil {
		return err
	}
	sd := s.sides(req.Filter)
	if len(sd) == 1 {
		req.Filter = sd[0].f
		return sd[0].p.Stream(ctx, req, fn)
	}
	size := req.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	onReq, offReq := req, req
	onReq.Filter, offReq.Filter = sd[0].f, sd[1].f
	onReq.PageSize, offReq.PageSize = size, size
	nextOn, stopOn := iter.Pull2(sessions(ctx, sd[0].p, onReq))
	defer stopOn()
	nextOff, stopOff := iter.Pull2(sessions(ctx, sd[1].p, offReq))
	defer stopOff()

	on, err, okOn := nextOn()
	if err != nil {
		return err
	}
	off, err, okOff := nextOff()
	if err != nil {
		return err
	}
	page := make([]*usersessions.UserSession, 0, size)
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(page)
		page = make([]*usersessions.UserSession, 0, size)
		return err
	}
	for okOn || okOff {
		if okOn && (!okOff || compareSessions(on, off) <= 0) {
			page = append(page, on)
			on, err, okOn = nextOn()
		} else {
			page = append(page, off)
			off, err, okOff = nextOff()
		}
		if err != nil {
			return err
		}
		if len(page) == size {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(page) > 0 {
		return flush()
	}
	return nil
}

// errStopped ends a side's Stream when the merge stops pulling from it.
var errStopped = errors.New("merge stopped reading")

// sessions is p's Stream of req as a sequence of sessions; a failure of the stream is its
// last element, with a nil session.
func sessions(ctx context.Context, p usersessions.Provider, req usersessions.StreamRequest) iter.Seq2[*usersessions.UserSession, error] {
	return func(yield func(*usersessions.UserSession, error) bool) {
		stopped := false
		err := p.Stream(ctx, req, func(page []*usersessions.UserSession) error {
			for _, us := range page {
				if us == nil {
					return fmt.Errorf("stream: the provider gave a nil session: %w", spi.ErrUnavailable)
				}
				if !yield(us, nil) {
					stopped = true
					return errStopped
				}
			}
			return nil
		})
		if err != nil && !stopped {
			yield(nil, err)
		}
	}
}

// event is one change of one side of a merged feed.
type event struct {
	c       usersessions.Change
	offline bool
}

// watchBoth runs Watch on online and store and calls fn with their changes, one at a
// time: first a single Subscribed once both have subscribed (with the store's Origin, or
// the online side's when the store gives none), then every change of either in the order
// its side reports it; a side's changes that come before the other side has subscribed
// are held back until after the Subscribed. It returns nil when ctx ends, fn's error, or
// the first error with which a side's Watch returned; either way both Watch calls have
// returned.
func watchBoth(ctx context.Context, online, store usersessions.Provider, fn func(usersessions.Change) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan event)
	ended := make(chan error, 2)
	running := 0
	for _, side := range []struct {
		p       usersessions.Provider
		offline bool
	}{{online, false}, {store, true}} {
		running++
		go func() {
			err := side.p.Watch(ctx, func(c usersessions.Change) error {
				select {
				case events <- event{c, side.offline}:
				case <-ctx.Done():
				}
				return nil
			})
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("watch: the %s provider's feed ended: %w", sideName(side.offline), spi.ErrUnavailable)
			} else if err != nil {
				err = fmt.Errorf("watch of the %s provider: %w", sideName(side.offline), err)
			}
			ended <- err
		}()
	}
	// stop ends both Watch calls and waits for them, so none outlives this call.
	stop := func(err error) error {
		cancel()
		for ; running > 0; running-- {
			<-ended
		}
		return err
	}

	var (
		subscribed [2]bool
		origins    [2]string
		held       []usersessions.Change // changes of a side that subscribed first
	)
	for {
		select {
		case <-ctx.Done():
			return stop(nil)
		case err := <-ended:
			running--
			if ctx.Err() != nil {
				return stop(nil)
			}
			return stop(err)
		case ev := <-events:
			if subscribed[0] && subscribed[1] {
				if err := fn(ev.c); err != nil {
					return stop(err)
				}
				continue
			}
			if ev.c.Kind != usersessions.Subscribed {
				held = append(held, ev.c)
				continue
			}
			subscribed[b2i(ev.offline)] = true
			origins[b2i(ev.offline)] = ev.c.Origin
			if !subscribed[0] || !subscribed[1] {
				continue
			}
			if err := fn(usersessions.Change{Kind: usersessions.Subscribed, Origin: cmp.Or(origins[1], origins[0])}); err != nil {
				return stop(err)
			}
			for _, c := range held {
				if err := fn(c); err != nil {
					return stop(err)
				}
			}
			held = nil
		}
	}
}
