package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// ErrPreloadBroken is wrapped by Preload.Import once the window can no longer be trusted:
// the cache was emptied (the change feed broke, or stored sessions were rewritten behind
// it), or more sessions changed during the preload than the window remembers.
var ErrPreloadBroken = errors.New("preload window broken")

// ErrNotFollowing is returned by BeginPreload while the change feed is not subscribed.
var ErrNotFollowing = errors.New("the session cache does not follow the change feed yet")

// maxWindowChanges bounds the keys a preload window remembers (about 100 MB at most);
// more changes than that during one preload break it, and the rest loads lazily.
const maxWindowChanges = 1 << 20

// window remembers what changed while a preload runs. A preload reads pages of sessions
// from the store and imports them later, possibly much later: a page may be read ahead
// of the worker (a plugin streams pages over gRPC) and a worker may wait for the lock. A
// session that changed in between must not be imported from the page, or the cache would
// hold a state the store has left (a rotated refresh token, a logged-out session). The
// read-start sequence number that a lazy Get uses cannot be had for a streamed page, so a
// window is conservative instead: a session changed at any time since the window opened,
// by a write through this cache or a change on the feed, is not imported. It loads lazily
// on first use, as without a preload.
//
// Changes that reach the cache after the page's session was imported need nothing from
// the window: they find the entry and drop or update it, as for any cached session.
type window struct {
	changed map[usersessions.Key]struct{}
	flushes []usersessions.Filter
	broken  string
}

func (w *window) noteLocked(k usersessions.Key) {
	if w.broken != "" {
		return
	}
	if len(w.changed) >= maxWindowChanges {
		w.breakLocked(fmt.Sprintf("more than %d sessions changed while preloading", maxWindowChanges))
		return
	}
	w.changed[k] = struct{}{}
}

func (w *window) flushLocked(f usersessions.Filter) {
	if w.broken == "" {
		w.flushes = append(w.flushes, f)
	}
}

func (w *window) breakLocked(why string) {
	if w.broken == "" {
		w.broken = why
		w.changed, w.flushes = nil, nil
	}
}

// skipsLocked reports whether the session with key k and record r changed since the
// window opened.
func (w *window) skipsLocked(k usersessions.Key, r []byte, tab *strtab) bool {
	if _, ok := w.changed[k]; ok {
		return true
	}
	for _, f := range w.flushes {
		if matches(f, r, tab) {
			return true
		}
	}
	return false
}

// Preload is an open preload window of a Cache: sessions read from the store after it
// opened are imported through it. Close it when the preload ends.
type Preload struct {
	c *Cache
	w *window
}

// BeginPreload opens a preload window. The cache must follow the change feed (otherwise
// ErrNotFollowing): a change made elsewhere after a page was read reaches the cache only
// through the feed. Read the sessions to import after BeginPreload returns. One window
// may be open at a time.
func (c *Cache) BeginPreload() (*Preload, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.following {
		return nil, ErrNotFollowing
	}
	if c.window != nil {
		return nil, errors.New("a preload is already running")
	}
	c.window = &window{changed: map[usersessions.Key]struct{}{}}
	return &Preload{c: c, w: c.window}, nil
}

// Import caches sessions read from the store since the window opened, as imported
// sessions (their lifespans asked in one call). It skips the sessions that changed since
// the window opened, those already cached (the cached copy is at least as new) and those
// whose lifespan is over. It never evicts for room: full reports that the cache is at its
// bound, and the sessions from there on were not imported. An error wrapping
// ErrPreloadBroken means nothing more can be imported. It keeps nothing of sessions but
// copies, so a page a store lends (usersessions.PageLender) may be passed.
func (p *Preload) Import(ctx context.Context, sessions []*usersessions.UserSession) (imported int, full bool, err error) {
	if len(sessions) == 0 {
		return 0, false, p.err()
	}
	if err := ctx.Err(); err != nil {
		// The lifespans could not be asked: importing now would cache the sessions for
		// their whole lives, past an override.
		return 0, false, err
	}
	c := p.c
	now := c.now()
	untils := c.untils(ctx, sessions, true, now)
	rs, done := c.encode(sessions, 0)
	defer done()
	keys := make([]usersessions.Key, len(sessions))
	hashes := make([]uint32, len(sessions))
	for i, s := range sessions {
		if s != nil {
			keys[i] = s.Key()
			hashes[i] = c.t.hash(keys[i]) // the seed never changes: no lock needed
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.w.broken != "" {
		return 0, false, fmt.Errorf("%w: %s", ErrPreloadBroken, p.w.broken)
	}
	for i, r := range rs {
		if r == nil {
			continue
		}
		k, h := keys[i], hashes[i]
		if c.t.lookup(k, h) != 0 || p.w.skipsLocked(k, r, c.strs) {
			continue
		}
		u, ok := cacheUntil(sessions[i].ExpiresAt, untils[i], now)
		if !ok {
			continue
		}
		if c.t.len() >= c.max {
			full = true
			break
		}
		c.insertLocked(h, r, u)
		imported++
	}
	c.preloaded.Add(int64(imported))
	return imported, full, nil
}

// Reserve makes room in the cache's index for n more sessions (up to its bound), so
// that importing them does not grow the index step by step: at a million sessions the
// growth was a tenth of the preload's CPU. It rebuilds the index when n is large next to
// what it holds (at the start of a preload), and does nothing otherwise.
func (p *Preload) Reserve(n int) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	have := c.t.len()
	room := min(n, c.max-have)
	if p.w.broken != "" || room < minReserve || room < 2*have {
		return
	}
	c.t.reserve(have + room)
}

// minReserve is the least room Reserve makes: a small index grows cheaply on its own.
const minReserve = 1 << 12

func (p *Preload) err() error {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.w.broken != "" {
		return fmt.Errorf("%w: %s", ErrPreloadBroken, p.w.broken)
	}
	return nil
}

// Close ends the window; Import fails from then on.
func (p *Preload) Close() {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.c.window == p.w {
		p.c.window = nil
	}
	p.w.breakLocked("the preload window was closed")
}
