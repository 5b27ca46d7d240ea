package authfail

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// bucket is a token bucket of failures: it holds up to limit, one is taken by each failure,
// and it refills at limit per window.
type bucket struct {
	tokens float64
	at     time.Time // of the last refill
}

func (b *bucket) refill(now time.Time, limit int, window time.Duration) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(limit), b.tokens+float64(limit)*float64(el)/float64(window))
		b.at = now
	}
}

// wait is how long until the bucket holds a whole failure again; 0 if it does.
func (b *bucket) wait(limit int, window time.Duration) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(window) / float64(limit))
}

type clientKey struct{ realm, client string }

type goodKey struct{ realm, client, addr string }

// limiter holds the buckets of the addresses and clients that failed, and the
// client/address pairs known good (Options explains the design).
type limiter struct {
	limit, clientLimit int
	window             time.Duration

	mu      sync.Mutex
	addrs   *lru[string, *bucket]
	clients *lru[clientKey, *bucket]
	good    *lru[goodKey, time.Time]
}

func newLimiter(limit, clientLimit int, window time.Duration, maxEntries int) *limiter {
	return &limiter{
		limit: limit, clientLimit: clientLimit, window: window,
		addrs: newLRU[string, *bucket](maxEntries), clients: newLRU[clientKey, *bucket](maxEntries),
		good: newLRU[goodKey, time.Time](maxEntries),
	}
}

// wait is how long a must wait before it may try; 0 if it may now. byClient says the
// client's limit is the one that holds it.
func (l *limiter) wait(a Attempt, now time.Time) (_ time.Duration, byClient bool) {
	if l.limit <= 0 && l.clientLimit <= 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit > 0 {
		if b, ok := l.addrs.get(a.Addr); ok {
			b.refill(now, l.limit, l.window)
			if w := b.wait(l.limit, l.window); w > 0 {
				return w, false
			}
		}
	}
	if l.clientLimit > 0 && a.Kind == KindClient && a.ClientID != "" {
		if b, ok := l.clients.get(clientKey{a.Realm, a.ClientID}); ok {
			b.refill(now, l.clientLimit, l.window)
			if w := b.wait(l.clientLimit, l.window); w > 0 && !l.knownGood(a, now) {
				return w, true
			}
		}
	}
	return 0, false
}

func (l *limiter) knownGood(a Attempt, now time.Time) bool {
	at, ok := l.good.get(goodKey{a.Realm, a.ClientID, a.Addr})
	return ok && now.Sub(at) < knownGoodFor
}

// fail charges a failure to a's address and, for a known client's wrong secret, to the
// client.
func (l *limiter) fail(a Attempt, client bool, now time.Time) {
	if l.limit <= 0 && l.clientLimit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit > 0 {
		take(l.addrs, a.Addr, l.limit, l.window, now)
	}
	if l.clientLimit > 0 && client && a.Kind == KindClient && !l.knownGood(a, now) {
		// A known good address that fails (a server with a rotated secret) does not count
		// against its client: the client's limit would not hold it back anyway.
		take(l.clients, clientKey{a.Realm, a.ClientID}, l.clientLimit, l.window, now)
	}
}

// take charges a use to addr when its bucket holds one, and says how long until it will
// otherwise (nothing is charged then): a check and a charge in one, for uses that are
// counted whether or not they go well (logins started). Off (limit 0), it always admits.
func (l *limiter) take(addr string, now time.Time) time.Duration {
	if l.limit <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := bucketOf(l.addrs, addr, l.limit, l.window, now)
	if w := b.wait(l.limit, l.window); w > 0 {
		return w
	}
	b.tokens--
	return 0
}

func take[K comparable](m *lru[K, *bucket], k K, limit int, window time.Duration, now time.Time) {
	b := bucketOf(m, k, limit, window, now)
	// Not below empty: attempts that passed the check together and all failed do not
	// lengthen the wait beyond one failure's refill.
	b.tokens = max(0, b.tokens-1)
}

// bucketOf is k's bucket refilled to now; a new one is full.
func bucketOf[K comparable](m *lru[K, *bucket], k K, limit int, window time.Duration, now time.Time) *bucket {
	b, ok := m.get(k)
	if !ok {
		b = &bucket{tokens: float64(limit), at: now}
		m.put(k, b)
	}
	b.refill(now, limit, window)
	return b
}

// loginKey is the key of an address's login budget: an IPv6 address counts by its /64
// prefix (one host, or one network's clients, usually holds a whole /64, and could start
// logins from a new address each time), any other by itself.
func loginKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return addr
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

func (l *limiter) succeeded(a Attempt, now time.Time) {
	if l.clientLimit <= 0 {
		return // nothing to exempt from: no bookkeeping on the token endpoint's path
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.good.put(goodKey{a.Realm, a.ClientID, a.Addr}, now)
}

func (l *limiter) size() (addrs, clients, good int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs.len(), l.clients.len(), l.good.len()
}

// lru is a map of at most max entries that forgets the least recently used one to take a
// new one. Not safe for concurrent use.
type lru[K comparable, V any] struct {
	max   int
	order *list.List // of *lruEntry, the most recently used first
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](maxEntries int) *lru[K, V] {
	return &lru[K, V]{max: maxEntries, order: list.New(), items: map[K]*list.Element{}}
}

func (m *lru[K, V]) get(k K) (V, bool) {
	e, ok := m.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	m.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

func (m *lru[K, V]) put(k K, v V) {
	if e, ok := m.items[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		m.order.MoveToFront(e)
		return
	}
	if m.order.Len() >= m.max {
		oldest := m.order.Back()
		m.order.Remove(oldest)
		delete(m.items, oldest.Value.(*lruEntry[K, V]).key)
	}
	m.items[k] = m.order.PushFront(&lruEntry[K, V]{key: k, val: v})
}

func (m *lru[K, V]) len() int { return m.order.Len() }
