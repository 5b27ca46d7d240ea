// Package cache keeps hot user sessions in process memory in front of the user-sessions
// store, and keeps them coherent with other nodes through the store's change feed.
//
// Reads are served from memory when they can; a miss loads from the store and imports
// what it read. Writes go to the store first and reach the cache only once the store has
// taken them, so the cache never holds what the store does not. Evicting an entry only
// forgets it. Until the change feed has subscribed (and again after it breaks), the cache
// imports nothing: every read goes to the store, because a change on another node could
// otherwise go unseen.
package cache

import (
	"container/list"
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// Store is what the cache sits in front of.
type Store interface {
	Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error)
	Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
	Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error)
	PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error)
	DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error
	Delete(ctx context.Context, keys []usersessions.Key) (int, error)
	DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error)
	Watch(ctx context.Context, fn func(usersessions.Change) error) error
}

// Lifespan says until when a session read from the store may stay cached. The zero time
// means "as long as the session itself can live" (its ExpiresAt).
type Lifespan func(s *usersessions.UserSession, now time.Time) time.Time

// Options tune a Cache.
type Options struct {
	// MaxEntries bounds the number of cached user sessions; the least recently used one is
	// forgotten first. 0 means DefaultMaxEntries.
	MaxEntries int
	// NodeID is this node's id in the change feed: changes it made itself are already in
	// the cache and are skipped.
	NodeID string
	// Lifespan, when set, limits how long an imported session stays (the cache-lifespan SPI).
	Lifespan Lifespan
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log hclog.Logger
}

// DefaultMaxEntries is Keycloak's default bound of the sessions cache with persistent user
// sessions on.
const DefaultMaxEntries = 10000

// Stats are the cache's counters since it was made.
type Stats struct {
	Hits, Misses int64 // sessions asked for
	StoreReads   int64 // Get calls that reached the store
	Imports      int64 // sessions put in from store reads and creates
	Evictions    int64 // forgotten for room or lifespan (not invalidations)
	Invalid      int64 // dropped because the feed said another node changed them
	Entries      int
	Following    bool // the change feed is subscribed: imports are on
}

// Cache is a bounded, feed-coherent session cache. It is safe for concurrent use.
type Cache struct {
	store    Store
	max      int
	node     string
	lifespan Lifespan
	now      func() time.Time
	log      hclog.Logger

	mu      sync.Mutex
	entries map[usersessions.Key]*list.Element // of *entry
	lru     list.List                          // front: most recently used
	// Imports race with writes and invalidations: a read that began before a key changed
	// must not import what it read. seq counts changes; changed holds the seq of each key's
	// last change, and a read that began at seq s imports a key only if it has not changed
	// since s and s >= floor. The map is cleared (floor raised) when it grows large.
	seq       uint64
	floor     uint64
	changed   map[usersessions.Key]uint64
	following bool

	hits, misses, reads, imports, evictions, invalid atomic.Int64
}

type entry struct {
	s     *usersessions.UserSession
	until time.Time
}

// maxChanged bounds the changed-keys map between two clears.
const maxChanged = 1 << 16

// New returns a cache in front of store. It imports nothing until Follow has subscribed
// to the change feed.
func New(store Store, opts Options) *Cache {
	c := &Cache{
		store:    store,
		max:      opts.MaxEntries,
		node:     opts.NodeID,
		lifespan: opts.Lifespan,
		now:      opts.Now,
		log:      opts.Log,
		entries:  map[usersessions.Key]*list.Element{},
		changed:  map[usersessions.Key]uint64{},
	}
	if c.max <= 0 {
		c.max = DefaultMaxEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	return c
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	n, following := len(c.entries), c.following
	c.mu.Unlock()
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), StoreReads: c.reads.Load(),
		Imports: c.imports.Load(), Evictions: c.evictions.Load(), Invalid: c.invalid.Load(),
		Entries: n, Following: following,
	}
}

// Follow subscribes to the store's change feed and applies other nodes' changes until ctx
// ends; its caller owns it. When the feed breaks, the cache is emptied, imports stop, and
// Follow subscribes again after backoff (doubling from 100ms up to 10s).
func (c *Cache) Follow(ctx context.Context) {
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		err := c.store.Watch(ctx, c.apply)
		if c.unfollow() {
			backoff = firstBackoff // it had subscribed: this is a new outage
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("session change feed broke; cache emptied, reads go to the store until it is back", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// unfollow stops imports and forgets everything: changes may be missed from now on. It
// reports whether the feed had been subscribed.
func (c *Cache) unfollow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.following
	if was {
		c.log.Info("session cache stops importing until the change feed is back")
	}
	c.following = false
	c.clearLocked()
	return was
}

func (c *Cache) clearLocked() {
	c.entries = map[usersessions.Key]*list.Element{}
	c.lru.Init()
	c.seq++
	c.floor = c.seq
	clear(c.changed)
}

// apply takes one change from the feed.
func (c *Cache) apply(ch usersessions.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ch.Kind == usersessions.Subscribed:
		if !c.following {
			c.log.Info("session change feed subscribed; cache imports on")
		}
		c.following = true
	case ch.Origin != "" && ch.Origin == c.node:
		// Our own write: the cache took it when the store acknowledged it.
	case ch.Kind == usersessions.Flushed:
		c.flushLocked(ch.Filter)
	default:
		if c.dropLocked(ch.Session) {
			c.invalid.Add(1)
		}
	}
	return nil
}

// Get returns the sessions with those keys, in order, nil for missing ones, from memory
// where it can. The sessions returned are the caller's to change.
func (c *Cache) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	out := make([]*usersessions.UserSession, len(keys))
	var missing []usersessions.Key
	var at []int
	now := c.now()
	c.mu.Lock()
	for i, k := range keys {
		if s := c.lookupLocked(k, now); s != nil {
			out[i] = clone(s)
			continue
		}
		missing = append(missing, k)
		at = append(at, i)
	}
	began := c.seq
	c.mu.Unlock()
	c.hits.Add(int64(len(keys) - len(missing)))
	c.misses.Add(int64(len(missing)))
	if len(missing) == 0 {
		return out, nil
	}
	c.reads.Add(1)
	got, err := c.store.Get(ctx, missing)
	if err != nil {
		return nil, err
	}
	if len(got) != len(missing) {
		return nil, fmt.Errorf("session store answered %d sessions for %d keys", len(got), len(missing))
	}
	c.mu.Lock()
	for j, s := range got {
		out[at[j]] = s
		if s != nil {
			c.importLocked(s, began, now)
		}
	}
	c.mu.Unlock()
	for j, s := range got {
		if s != nil {
			out[at[j]] = clone(s) // the cached copy must not be what the caller changes
		}
	}
	return out, nil
}

// lookupLocked returns the cached session, or nil; it forgets an entry past its lifespan.
func (c *Cache) lookupLocked(k usersessions.Key, now time.Time) *usersessions.UserSession {
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if !now.Before(e.until) {
		c.removeLocked(k, el)
		c.evictions.Add(1)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.s
}

// importLocked caches a copy of s read at seq began, unless that could be stale.
func (c *Cache) importLocked(s *usersessions.UserSession, began uint64, now time.Time) {
	k := s.Key()
	if !c.following || began < c.floor || c.changed[k] > began {
		return
	}
	until := s.ExpiresAt
	if c.lifespan != nil {
		if l := c.lifespan(s, now); !l.IsZero() && (until.IsZero() || l.Before(until)) {
			until = l
		}
	}
	if until.IsZero() || !now.Before(until) {
		return
	}
	if el, ok := c.entries[k]; ok {
		el.Value = &entry{s: clone(s), until: until}
		c.lru.MoveToFront(el)
		return
	}
	c.entries[k] = c.lru.PushFront(&entry{s: clone(s), until: until})
	c.imports.Add(1)
	for len(c.entries) > c.max {
		last := c.lru.Back()
		c.removeLocked(last.Value.(*entry).s.Key(), last)
		c.evictions.Add(1)
	}
}

func (c *Cache) removeLocked(k usersessions.Key, el *list.Element) {
	c.lru.Remove(el)
	delete(c.entries, k)
}

// dropLocked forgets k and marks it changed, so that reads in flight do not import it.
// It reports whether an entry was dropped.
func (c *Cache) dropLocked(k usersessions.Key) bool {
	c.markLocked(k)
	el, ok := c.entries[k]
	if ok {
		c.removeLocked(k, el)
	}
	return ok
}

// flushLocked forgets every session f selects and stops imports of reads in flight.
func (c *Cache) flushLocked(f usersessions.Filter) {
	for k, el := range c.entries {
		if matches(f, el.Value.(*entry).s) {
			c.removeLocked(k, el)
			c.invalid.Add(1)
		}
	}
	c.seq++
	c.floor = c.seq
	clear(c.changed)
}

// matches reports whether f selects s, as DeleteMatching does (a ClientID selects the
// sessions that have that client).
func matches(f usersessions.Filter, s *usersessions.UserSession) bool {
	if f.RealmID != "" && f.RealmID != s.RealmID {
		return false
	}
	if f.UserID != "" && f.UserID != s.UserID {
		return false
	}
	if f.ClientID != "" {
		if _, ok := s.Clients[f.ClientID]; !ok {
			return false
		}
	}
	return f.Offline.Matches(s.Offline)
}

// Create stores new sessions and caches the ones the store took.
func (c *Cache) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	c.mu.Lock()
	began := c.seq
	c.mu.Unlock()
	errs, err := c.store.Create(ctx, sessions)
	if err != nil || len(errs) != len(sessions) {
		return errs, err
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range sessions {
		if errs[i] != nil || s == nil {
			continue
		}
		stored := clone(s)
		stored.Version = 1
		for _, cs := range stored.Clients {
			cs.Version = 1
		}
		c.importLocked(stored, began, now)
	}
	return errs, nil
}

// Touch moves idle clocks in the store, then in the cached copies the store moved.
func (c *Cache) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	errs, err := c.store.Touch(ctx, touches)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, t := range touches {
		if err != nil || len(errs) != len(touches) || errs[i] != nil {
			c.dropLocked(t.Session) // the store's state is not known: read it again
			continue
		}
		el, ok := c.entries[t.Session]
		if !ok {
			continue
		}
		s := el.Value.(*entry).s
		if !t.LastRefresh.Before(s.LastRefresh) {
			s.LastRefresh, s.ExpiresAt = t.LastRefresh, t.ExpiresAt
		}
		if cs := s.Clients[t.ClientID]; t.ClientID != "" && cs != nil && !t.LastRefresh.Before(cs.LastRefresh) {
			cs.LastRefresh, cs.ExpiresAt = t.LastRefresh, t.ClientExpiresAt
		}
	}
	return errs, err
}

// PutClientSessions writes client sessions, then puts the ones the store took in the
// cached user sessions with the version the store gave them.
func (c *Cache) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	errs, err := c.store.PutClientSessions(ctx, clients)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cs := range clients {
		if cs == nil {
			continue
		}
		k := cs.Key().Session
		if err != nil || len(errs) != len(clients) || errs[i] != nil {
			c.dropLocked(k)
			continue
		}
		el, ok := c.entries[k]
		if !ok {
			c.markLocked(k)
			continue
		}
		stored := cloneClient(cs)
		stored.Version = cs.Version + 1
		el.Value.(*entry).s.Clients[cs.ClientID] = stored
	}
	return errs, err
}

// markLocked records that k changed, without an entry to update.
func (c *Cache) markLocked(k usersessions.Key) {
	c.seq++
	if len(c.changed) >= maxChanged {
		c.floor = c.seq
		clear(c.changed)
		return
	}
	c.changed[k] = c.seq
}

// DeleteClientSessions removes client sessions from the store and the cache.
func (c *Cache) DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error {
	err := c.store.DeleteClientSessions(ctx, keys)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if el, ok := c.entries[k.Session]; ok && err == nil {
			delete(el.Value.(*entry).s.Clients, k.ClientID)
			continue
		}
		c.dropLocked(k.Session)
	}
	return err
}

// Delete removes user sessions from the store and the cache.
func (c *Cache) Delete(ctx context.Context, keys []usersessions.Key) (int, error) {
	n, err := c.store.Delete(ctx, keys)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.dropLocked(k)
	}
	return n, err
}

// DeleteMatching removes what f selects from the store and the cache.
func (c *Cache) DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error) {
	n, err := c.store.DeleteMatching(ctx, f)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked(f)
	return n, err
}

// Forget empties the cache without touching the store.
func (c *Cache) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

func clone(s *usersessions.UserSession) *usersessions.UserSession {
	out := *s
	out.Notes = maps.Clone(s.Notes)
	out.Clients = make(map[string]*usersessions.ClientSession, len(s.Clients))
	for id, cs := range s.Clients {
		out.Clients[id] = cloneClient(cs)
	}
	return &out
}

func cloneClient(cs *usersessions.ClientSession) *usersessions.ClientSession {
	out := *cs
	out.Notes = maps.Clone(cs.Notes)
	return &out
}
