package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Lifespans says, for a batch of sessions about to be cached, until when each may stay.
// imported is true for sessions read from the store (a miss, or the offline preload) and
// false for sessions this node has just created. A zero time means "as long as the session
// itself can live" (its ExpiresAt); a time at or before now means "do not cache". The
// cache never keeps an entry past the session's ExpiresAt, whatever the answer.
//
// The cache asks once per batch (the sessions one Get read, one Create stored, one preload
// page), never once per session: the cache-lifespan provider may be a plugin, where every
// call costs a round trip of a few hundred microseconds.
type Lifespans func(ctx context.Context, sessions []*usersessions.UserSession, imported bool, now time.Time) ([]time.Time, error)

// ProviderLifespans asks a cache-lifespan provider, in one call for the whole batch.
//
// The cache keeps whole user sessions with their client sessions, while the SPI (like
// Keycloak's two overrides) speaks of user-session and client-session entries. Each
// session is asked as one user-session entry followed by one client-session entry per
// client session, and the cached entry lives until the earliest of
//   - the user-session entry's lifespan, and
//   - each client-session entry's lifespan that is shorter than that client session's own
//     remaining lifetime, i.e. where the provider wants the client session out of memory
//     before it ends by itself.
//
// So under the default provider an entry lives exactly as long as its user session (a
// client session that ends first simply expires inside it), and under the override
// provider an imported offline session leaves memory at the earlier of its user and client
// overrides. Dropping the whole entry, rather than only the client session, is what keeps
// a read correct: a cached user session with a client session missing would answer "no such
// client session" instead of reading it back. The next use reloads the session, with all
// its client sessions, from the store.
func ProviderLifespans(p cachelifespan.Provider) Lifespans {
	return func(ctx context.Context, sessions []*usersessions.UserSession, imported bool, now time.Time) ([]time.Time, error) {
		n := 0
		for _, s := range sessions {
			if s != nil {
				n += 1 + len(s.Clients)
			}
		}
		entries := make([]cachelifespan.Entry, 0, n)
		for _, s := range sessions {
			if s == nil { // a gap in a batch (a key Get did not find): nothing to ask
				continue
			}
			entries = append(entries, cachelifespan.Entry{
				Kind: cachelifespan.UserSessionEntry, RealmID: s.RealmID, Offline: s.Offline,
				Imported: imported, Remaining: s.ExpiresAt.Sub(now),
			})
			for id, cs := range s.Clients {
				remaining := s.ExpiresAt.Sub(now) // a client session without its own expiry ends with its user session
				if cs != nil && !cs.ExpiresAt.IsZero() {
					remaining = cs.ExpiresAt.Sub(now)
				}
				entries = append(entries, cachelifespan.Entry{
					Kind: cachelifespan.ClientSessionEntry, RealmID: s.RealmID, ClientID: id, Offline: s.Offline,
					Imported: imported, Remaining: remaining,
				})
			}
		}
		got, err := p.Lifespans(ctx, entries)
		if err != nil {
			return nil, err
		}
		if len(got) != len(entries) {
			return nil, fmt.Errorf("cache-lifespan provider answered %d lifespans for %d entries", len(got), len(entries))
		}
		out := make([]time.Time, len(sessions))
		i := 0
		for j, s := range sessions {
			if s == nil {
				continue
			}
			until := now.Add(max(got[i], 0))
			i++
			for range s.Clients {
				if e := entries[i]; got[i] < e.Remaining {
					until = minTime(until, now.Add(max(got[i], 0)))
				}
				i++
			}
			out[j] = until
		}
		return out, nil
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// untils asks c.lifespans for the sessions' lifespans. On failure every session keeps its
// own ExpiresAt (zero times), and the failure is logged: a cache-lifespan provider that is
// down must not stop sessions from being served.
func (c *Cache) untils(ctx context.Context, sessions []*usersessions.UserSession, imported bool, now time.Time) []time.Time {
	if c.lifespans == nil || len(sessions) == 0 {
		return make([]time.Time, len(sessions))
	}
	got, err := c.lifespans(ctx, sessions, imported, now)
	if err == nil && len(got) != len(sessions) {
		err = fmt.Errorf("lifespans answered %d times for %d sessions", len(got), len(sessions))
	}
	if err != nil {
		c.lifespanFailures.failed(c.log, err)
		return make([]time.Time, len(sessions))
	}
	return got
}

// failureLog logs a repeated failure at most once per interval, with the count of those
// not logged.
type failureLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const failureLogEvery = 10 * time.Second

func (f *failureLog) failed(log hclog.Logger, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); f.last.IsZero() || now.Sub(f.last) >= failureLogEvery {
		log.Warn("cache-lifespan provider failed; sessions are cached for their own remaining lifetime",
			"error", err, "failures_not_logged", f.suppressed)
		f.last, f.suppressed = now, 0
		return
	}
	f.suppressed++
}
