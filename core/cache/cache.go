// Package cache keeps hot user sessions in process memory in front of the user-sessions
// store, and keeps them coherent with other nodes through the store's change feed.
//
// Reads are served from memory when they can; a miss loads from the store and imports
// what it read. Writes go to the store first and reach the cache only once the store has
// taken them, so the cache never holds what the store does not. Evicting an entry only
// forgets it. Until the change feed has subscribed (and again after it breaks), the cache
// imports nothing: every read goes to the store, because a change on another node could
// otherwise go unseen. The offline preload imports through a window (BeginPreload) that
// follows the same rule.
//
// How long an entry stays is the cache-lifespan SPI's answer (Options.Lifespans), asked
// once per batch of sessions, outside the cache's lock. Entries are kept as records of bytes
// outside the Go heap (entry.go, table.go): a few hundred bytes a session, with no pointer
// for the collector to follow, so that a million preloaded offline sessions take a few
// hundred megabytes resident.
package cache

import (
	"context"
	"fmt"
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

// Options tune a Cache.
type Options struct {
	// MaxEntries bounds the number of cached user sessions; the least recently used one is
	// forgotten first. 0 means DefaultMaxEntries.
	MaxEntries int
	// NodeID is this node's id in the change feed: changes it made itself are already in
	// the cache and are skipped.
	NodeID string
	// Lifespans, when set, limits how long sessions stay (the cache-lifespan SPI, see
	// ProviderLifespans). Unset, an entry lives as long as its session.
	Lifespans Lifespans
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
	Preloaded    int64 // sessions put in by the offline preload
	Evictions    int64 // forgotten for room or lifespan (not invalidations)
	Invalid      int64 // dropped because the feed said another node changed them
	Entries      int
	MaxEntries   int
	// Bytes is the memory the entries' records take outside the Go heap (chunks mapped
	// from the OS, whole): runtime.MemStats does not count it.
	Bytes     int64
	Following bool // the change feed is subscribed: imports are on
}

// Cache is a bounded, feed-coherent session cache. It is safe for concurrent use.
type Cache struct {
	store     Store
	max       int
	node      string
	lifespans Lifespans
	now       func() time.Time
	log       hclog.Logger

	strs     *strtab   // shared by the encoders outside mu and the table under it
	encoders sync.Pool // of *encoder, for records on their way in

	mu      sync.Mutex
	t       *table
	scratch []byte // a record being rewritten
	// Imports race with writes and invalidations: a read that began before a key changed
	// must not import what it read. seq counts changes; changed holds the seq of each key's
	// last change, and a read that began at seq s imports a key only if it has not changed
	// since s and s >= floor. The map is cleared (floor raised) when it grows large.
	seq       uint64
	floor     uint64
	changed   map[usersessions.Key]uint64
	following bool
	brokeAt   time.Time // when the feed last broke while followed; zero once back
	window    *window   // the open preload window, or nil

	hits, misses, reads, imports, preloaded, evictions, invalid atomic.Int64
	lifespanFailures                                            failureLog
}

// maxChanged bounds the changed-keys map between two clears.
const maxChanged = 1 << 16

// New returns a cache in front of store. It imports nothing until Follow has subscribed
// to the change feed.
func New(store Store, opts Options) *Cache {
	c := &Cache{
		store:     store,
		max:       opts.MaxEntries,
		node:      opts.NodeID,
		lifespans: opts.Lifespans,
		now:       opts.Now,
		log:       opts.Log,
		strs:      newStrtab(),
		changed:   map[usersessions.Key]uint64{},
	}
	c.t = newTable(c.strs)
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
	n, bytes, following := c.t.len(), c.t.bytes(), c.following
	c.mu.Unlock()
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), StoreReads: c.reads.Load(),
		Imports: c.imports.Load(), Preloaded: c.preloaded.Load(), Evictions: c.evictions.Load(),
		Invalid: c.invalid.Load(), Entries: n, MaxEntries: c.max, Bytes: bytes, Following: following,
	}
}

// Follow subscribes to the store's change feed and applies other nodes' changes until ctx
// ends; its caller owns it. When the feed breaks, the cache is emptied, imports stop, and
// Follow subscribes again after backoff (doubling from 100ms up to 1s: a try costs one
// connection attempt, and a cache left off for ten seconds after a failover sends every
// read to the new primary meanwhile).
func (c *Cache) Follow(ctx context.Context) {
	const firstBackoff, maxBackoff = 100 * time.Millisecond, time.Second
	backoff := firstBackoff
	// What apply acts on: a plugin store then sends none of this node's own writes (two
	// messages a refresh with rotation, each with its writes on both sides).
	watchCtx := usersessions.WithInterest(ctx, usersessions.Interest{
		Kinds:        []usersessions.ChangeKind{usersessions.Upserted, usersessions.Removed, usersessions.Flushed},
		IgnoreOrigin: c.node,
	})
	for ctx.Err() == nil {
		err := c.store.Watch(watchCtx, c.apply)
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
		backoff = min(backoff*2, maxBackoff)
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
		c.brokeAt = time.Now()
	}
	c.following = false
	c.clearLocked("the session change feed broke")
	return was
}

// clearLocked forgets every entry; why is what an open preload window is told.
func (c *Cache) clearLocked(why string) {
	c.t.clear()
	c.seq++
	c.floor = c.seq
	clear(c.changed)
	if c.window != nil {
		c.window.breakLocked(why)
	}
}

// apply takes one change from the feed.
func (c *Cache) apply(ch usersessions.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ch.Kind == usersessions.Subscribed:
		switch {
		case !c.following && !c.brokeAt.IsZero():
			c.log.Info("session change feed is back; cache imports on", "down_for", time.Since(c.brokeAt).Round(time.Millisecond))
			c.brokeAt = time.Time{}
		case !c.following:
			c.log.Info("session change feed subscribed; cache imports on")
		}
		c.following = true
	case ch.Kind == usersessions.RecordChanged:
		// Records are not cached; core/revocation follows them itself.
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
		if s := c.lookupLocked(k, now); s != 0 {
			out[i] = materialize(c.t.body(s), c.strs)
			continue
		}
		missing = append(missing, k)
		at = append(at, i)
	}
	began, following := c.seq, c.following
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
	// The store's sessions go to the caller as they are: the cache keeps its own compact
	// copies, made here, outside the lock, as is the one lifespan question for them all.
	var found []*usersessions.UserSession
	for j, s := range got {
		out[at[j]] = s
		if s != nil {
			found = append(found, s)
		}
	}
	if !following || len(found) == 0 {
		return out, nil // nothing could be imported; do not ask for lifespans
	}
	c.importAll(ctx, found, true, began, now)
	return out, nil
}

// importAll caches sessions read or written at seq began: their lifespans are asked in one
// call and their compact copies made before the lock is taken.
func (c *Cache) importAll(ctx context.Context, sessions []*usersessions.UserSession, imported bool, began uint64, now time.Time) {
	untils := c.untils(ctx, sessions, imported, now)
	rs, done := c.encode(sessions, 0)
	defer done()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range sessions {
		c.importLocked(s.Key(), rs[i], s.ExpiresAt, untils[i], began, now)
	}
}

// encode returns the sessions' records, made without the cache's lock, nil for a nil
// session; clientVersion is as for encoder.session. The records are in a buffer of the
// cache's pool: call done once they are stored (a preload of a million sessions would
// otherwise leave a quarter of a gigabyte of buffers for the collector).
func (c *Cache) encode(sessions []*usersessions.UserSession, clientVersion int64) (rs [][]byte, done func()) {
	en, _ := c.encoders.Get().(*encoder)
	if en == nil {
		en = &encoder{}
	}
	*en = encoder{tab: c.strs, buf: en.buf[:0]}
	rs = make([][]byte, len(sessions))
	ends := make([]int, len(sessions))
	for i, s := range sessions {
		if s != nil {
			en.session(s, clientVersion)
		}
		ends[i] = len(en.buf)
	}
	start := 0
	for i, end := range ends {
		if sessions[i] != nil {
			rs[i] = en.buf[start:end:end]
		}
		start = end
	}
	return rs, func() {
		if cap(en.buf) <= maxPooledBuffer {
			*en = encoder{buf: en.buf[:0]} // not the memo: it holds the callers' strings
			c.encoders.Put(en)
		}
	}
}

// maxPooledBuffer bounds a pooled record buffer: a page of a thousand sessions, with room.
const maxPooledBuffer = 1 << 20

// lookupLocked returns the cached entry's slot, or 0; it forgets an entry past its lifespan.
func (c *Cache) lookupLocked(k usersessions.Key, now time.Time) uint32 {
	s := c.t.lookup(k, c.t.hash(k))
	if s == 0 {
		return 0
	}
	if nanos(now) >= c.t.slots[s].until {
		c.t.remove(s)
		c.evictions.Add(1)
		return 0
	}
	c.t.toFront(s)
	return s
}

// cacheUntil is when an entry of a session ending at expires, with lifespan answer until,
// leaves the cache; ok is false when it should not be cached at all.
func cacheUntil(expires, until, now time.Time) (int64, bool) {
	u := expires
	if !until.IsZero() && (u.IsZero() || until.Before(u)) {
		u = until
	}
	if u.IsZero() || !now.Before(u) {
		return 0, false
	}
	return nanos(u), true
}

// importLocked caches r, the record of the session with key k read (or written) at seq
// began, unless that could be stale.
func (c *Cache) importLocked(k usersessions.Key, r []byte, expires, until time.Time, began uint64, now time.Time) {
	if !c.following || began < c.floor || c.changed[k] > began {
		return
	}
	u, ok := cacheUntil(expires, until, now)
	if !ok {
		return
	}
	h := c.t.hash(k)
	if old := c.t.lookup(k, h); old != 0 {
		c.t.remove(old)
	} else {
		c.imports.Add(1)
	}
	c.insertLocked(h, r, u)
}

// insertLocked adds record r as the most recently used entry, forgetting the least
// recently used ones beyond the bound.
func (c *Cache) insertLocked(h uint32, r []byte, until int64) {
	c.t.add(h, r, until)
	for c.t.len() > c.max {
		c.t.remove(c.t.oldest())
		c.evictions.Add(1)
	}
}

// entryLocked returns the slot of k's entry, or 0.
func (c *Cache) entryLocked(k usersessions.Key) uint32 { return c.t.lookup(k, c.t.hash(k)) }

// dropLocked forgets k and marks it changed, so that reads in flight do not import it.
// It reports whether an entry was dropped.
func (c *Cache) dropLocked(k usersessions.Key) bool {
	c.markLocked(k)
	s := c.entryLocked(k)
	if s != 0 {
		c.t.remove(s)
	}
	return s != 0
}

// flushLocked forgets every session f selects and stops imports of reads in flight.
func (c *Cache) flushLocked(f usersessions.Filter) {
	for s := c.t.newest(); s != 0; {
		next := c.t.slots[s].next
		if matches(f, c.t.body(s), c.strs) {
			c.t.remove(s)
			c.invalid.Add(1)
		}
		s = next
	}
	c.seq++
	c.floor = c.seq
	clear(c.changed)
	if c.window != nil {
		c.window.flushLocked(f)
	}
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
	var stored []*usersessions.UserSession
	for i, s := range sessions {
		if errs[i] != nil || s == nil {
			continue
		}
		st := *s
		st.Version = 1 // and its client sessions' (below, as their records are made)
		stored = append(stored, &st)
	}
	c.noteWrites(stored)
	if len(stored) == 0 || !c.isFollowing() {
		return errs, nil
	}
	untils := c.untils(ctx, stored, false, now)
	rs, done := c.encode(stored, 1)
	defer done()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range stored {
		c.importLocked(s.Key(), rs[i], s.ExpiresAt, untils[i], began, now)
	}
	return errs, nil
}

func (c *Cache) isFollowing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.following
}

// noteWrites tells an open preload window that these sessions were written.
func (c *Cache) noteWrites(sessions []*usersessions.UserSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.window == nil {
		return
	}
	for _, s := range sessions {
		c.window.noteLocked(s.Key())
	}
}

// Touch moves idle clocks in the store, then in the cached copies the store moved.
func (c *Cache) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	errs, err := c.store.Touch(ctx, touches)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, t := range touches {
		if c.window != nil {
			c.window.noteLocked(t.Session)
		}
		if err != nil || len(errs) != len(touches) || errs[i] != nil {
			c.dropLocked(t.Session) // the store's state is not known: read it again
			continue
		}
		s := c.entryLocked(t.Session)
		if s == 0 {
			continue
		}
		// The clocks are at fixed places in the record: they change where they are.
		b := c.t.body(s)
		last := nanos(t.LastRefresh)
		if last >= getNanos(b[recLastRefresh:]) {
			putNanos(b[recLastRefresh:], last)
			putNanos(b[recExpiresAt:], nanos(t.ExpiresAt))
		}
		if t.ClientID == "" {
			continue
		}
		if at := clientAt(b, c.strs, t.ClientID); at >= 0 && last >= getNanos(b[at+recLastRefresh:]) {
			putNanos(b[at+recLastRefresh:], last)
			putNanos(b[at+recExpiresAt:], nanos(t.ClientExpiresAt))
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
		if c.window != nil {
			c.window.noteLocked(k)
		}
		if err != nil || len(errs) != len(clients) || errs[i] != nil {
			c.dropLocked(k)
			continue
		}
		s := c.entryLocked(k)
		if s == 0 {
			c.markLocked(k)
			continue
		}
		stored := *cs
		stored.Version = cs.Version + 1
		c.withClientLocked(s, cs.ClientID, &stored)
	}
	return errs, err
}

// Rotate writes refresh-token rotations with their touches (usersessions.Rotate: one call
// when the store is a usersessions.Rotator), then updates the cached user sessions as
// PutClientSessions and Touch do.
func (c *Cache) Rotate(ctx context.Context, rotations []usersessions.Rotation) ([]error, error) {
	errs, err := usersessions.Rotate(ctx, c.store, rotations)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range rotations {
		if r.Client == nil {
			continue
		}
		k := r.Client.Key().Session
		if c.window != nil {
			c.window.noteLocked(k)
		}
		if err != nil || len(errs) != len(rotations) || errs[i] != nil {
			c.dropLocked(k)
			continue
		}
		sl := c.entryLocked(k)
		if sl == 0 {
			c.markLocked(k)
			continue
		}
		stored := *r.Client
		stored.Version = r.Client.Version + 1
		c.withClientLocked(sl, r.Client.ClientID, &stored)
		// The user session's clocks are at fixed places in the record, rewritten or not.
		b := c.t.body(sl)
		if last := nanos(r.LastRefresh); last >= getNanos(b[recLastRefresh:]) {
			putNanos(b[recLastRefresh:], last)
			putNanos(b[recExpiresAt:], nanos(r.ExpiresAt))
		}
	}
	return errs, err
}

// withClientLocked rewrites the record of slot s with the client session of that client
// replaced by cs (added if it has none, removed if cs is nil).
func (c *Cache) withClientLocked(s uint32, id string, cs *usersessions.ClientSession) {
	en := encoder{tab: c.strs}
	c.scratch = withClient(c.scratch[:0], c.t.body(s), &en, id, cs)
	c.t.replace(s, c.scratch)
	if cap(c.scratch) > maxScratch {
		c.scratch = nil
	}
}

// maxScratch bounds the record buffer a cache keeps between two writes.
const maxScratch = 64 << 10

// markLocked records that k changed, without an entry to update.
func (c *Cache) markLocked(k usersessions.Key) {
	if c.window != nil {
		c.window.noteLocked(k)
	}
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
		if c.window != nil {
			c.window.noteLocked(k.Session)
		}
		if s := c.entryLocked(k.Session); s != 0 && err == nil {
			if clientAt(c.t.body(s), c.strs, k.ClientID) >= 0 {
				c.withClientLocked(s, k.ClientID, nil)
			}
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
	c.clearLocked("the session cache was emptied (stored sessions were rewritten behind it)")
}
