// Package volatile keeps online user sessions in process memory, as Keycloak does with
// persistent user sessions off, and sends offline sessions and everything else to the store.
//
// A Store joins two usersessions.Providers into one: online, an in-process memory provider,
// holds every online session (Offline false) and its client sessions; store, the persistent
// provider, holds the offline sessions, the records and the delivery outbox. A call that
// addresses sessions by key goes to the side its key's Offline flag names; a call that
// selects by Filter goes to the side or sides its OfflineSelector names, with the selector
// narrowed to that side (OnlineOnly to online, OfflineOnly to store), so an online row left
// in the store by a run with persistent sessions on is never seen through a Store (only
// DeleteExpired, which takes no filter, removes such rows once they expire).
//
// Every method of usersessions.Provider is written out here rather than inherited from an
// embedded provider, so a method added to the contract fails to compile until someone
// decides which side it belongs to.
package volatile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// defaultPageSize is the Limit of a Page, and the PageSize of a StreamRequest, that asks
// for none, as the contract says.
const defaultPageSize = 100

// Store is a usersessions.Provider that keeps online sessions in one provider and
// everything else in another. It is safe for concurrent use when both providers are.
type Store struct {
	online usersessions.Provider
	store  usersessions.Provider
}

var _ usersessions.Provider = (*Store)(nil)

// New returns a Store over online, a configured in-process memory provider that holds the
// online sessions, and store, the configured persistent provider that holds the rest. The
// two must be distinct providers. The Store takes both over: its Close closes both.
func New(online, store usersessions.Provider) *Store {
	return &Store{online: online, store: store}
}

// side returns the provider that holds sessions with that offline flag.
func (s *Store) side(offline bool) usersessions.Provider {
	if offline {
		return s.store
	}
	return s.online
}

func sideName(offline bool) string {
	if offline {
		return "store (offline sessions)"
	}
	return "online (in-memory sessions)"
}

// Describe implements spi.Provider: the store's descriptor, since the store is the
// provider an operator chose and configures.
func (s *Store) Describe() spi.Descriptor { return s.store.Describe() }

// Configure implements spi.Provider by passing cfg to the store as it is. New expects
// both providers configured already, so a caller that did so need not call it (and some
// stores, embedded for one, refuse a second Configure with spi.ErrInvalid); the online
// provider is never configured here.
func (s *Store) Configure(ctx context.Context, cfg spi.Config) error {
	return s.store.Configure(ctx, cfg)
}

// Close implements spi.Provider: it closes both providers, the online sessions being lost
// with the online one.
func (s *Store) Close(ctx context.Context) error {
	return errors.Join(s.online.Close(ctx), s.store.Close(ctx))
}

// part is the items of a batch that go to one side, with their positions in the batch.
type part[T any] struct {
	items []T
	at    []int
}

// eachSide splits a batch by side and applies call to each non-empty part, putting the
// per-item errors back in the batch's order. route says which side an item belongs to, or
// returns the item's own error (a nil item) without sending it anywhere.
//
// When one side fails as a whole (its provider is down, say) while the other ran, the
// failure becomes the per-item error of each of that side's items, since the contract has
// the items of the other side applied regardless. Only when no side ran does eachSide
// return a batch error.
func eachSide[T any](s *Store, what string, items []T, route func(T) (offline bool, err error),
	call func(p usersessions.Provider, items []T) ([]error, error)) ([]error, error) {
	errs := make([]error, len(items))
	var parts [2]part[T] // [0] online, [1] offline
	for i, it := range items {
		offline, err := route(it)
		if err != nil {
			errs[i] = err
			continue
		}
		pt := &parts[b2i(offline)]
		pt.items = append(pt.items, it)
		pt.at = append(pt.at, i)
	}
	var failures []error
	ran, ok := 0, 0
	for j, pt := range parts {
		if len(pt.items) == 0 {
			continue
		}
		ran++
		offline := j == 1
		got, err := call(s.side(offline), pt.items)
		if err == nil && len(got) != len(pt.items) {
			err = fmt.Errorf("%s: the %s provider returned %d results for %d items: %w",
				what, sideName(offline), len(got), len(pt.items), spi.ErrUnavailable)
		}
		if err != nil {
			failures = append(failures, err)
			for _, i := range pt.at {
				errs[i] = err
			}
			continue
		}
		ok++
		for k, i := range pt.at {
			errs[i] = got[k]
		}
	}
	if ran > 0 && ok == 0 {
		return nil, errors.Join(failures...)
	}
	return errs, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Create implements usersessions.Provider: online sessions are created in memory, offline
// ones in the store; the errors come back in the order of sessions.
func (s *Store) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	return eachSide(s, "create", sessions, sessionSide, func(p usersessions.Provider, part []*usersessions.UserSession) ([]error, error) {
		return p.Create(ctx, part)
	})
}

func sessionSide(us *usersessions.UserSession) (bool, error) {
	if us == nil {
		return false, fmt.Errorf("nil user session: %w", spi.ErrInvalid)
	}
	return us.Offline, nil
}

// Get implements usersessions.Provider: each key is looked up on its side and the
// sessions come back in the order asked.
func (s *Store) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	out := make([]*usersessions.UserSession, len(keys))
	var parts [2]part[usersessions.Key]
	for i, k := range keys {
		pt := &parts[b2i(k.Offline)]
		pt.items = append(pt.items, k)
		pt.at = append(pt.at, i)
	}
	for j, pt := range parts {
		if len(pt.items) == 0 {
			continue
		}
		offline := j == 1
		got, err := s.side(offline).Get(ctx, pt.items)
		if err != nil {
			return nil, err
		}
		if len(got) != len(pt.items) {
			return nil, fmt.Errorf("get: the %s provider returned %d sessions for %d keys: %w",
				sideName(offline), len(got), len(pt.items), spi.ErrUnavailable)
		}
		for k, i := range pt.at {
			out[i] = got[k]
		}
	}
	return out, nil
}

// Update implements usersessions.Provider, on the side of each session.
func (s *Store) Update(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	return eachSide(s, "update", sessions, sessionSide, func(p usersessions.Provider, part []*usersessions.UserSession) ([]error, error) {
		return p.Update(ctx, part)
	})
}

// Touch implements usersessions.Provider, on the side of each touched session.
func (s *Store) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	route := func(t usersessions.Touch) (bool, error) { return t.Session.Offline, nil }
	return eachSide(s, "touch", touches, route, func(p usersessions.Provider, part []usersessions.Touch) ([]error, error) {
		return p.Touch(ctx, part)
	})
}

// PutClientSessions implements usersessions.Provider, on the side of each client
// session's user session.
func (s *Store) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	route := func(c *usersessions.ClientSession) (bool, error) {
		if c == nil {
			return false, fmt.Errorf("nil client session: %w", spi.ErrInvalid)
		}
		return c.Offline, nil
	}
	return eachSide(s, "put client sessions", clients, route, func(p usersessions.Provider, part []*usersessions.ClientSession) ([]error, error) {
		return p.PutClientSessions(ctx, part)
	})
}

// DeleteClientSessions implements usersessions.Provider, on the side of each key. Both
// sides are tried even when one fails; the error joins theirs.
func (s *Store) DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error {
	var parts [2][]usersessions.ClientKey
	for _, k := range keys {
		parts[b2i(k.Session.Offline)] = append(parts[b2i(k.Session.Offline)], k)
	}
	var errs []error
	for j, pt := range parts {
		if len(pt) > 0 {
			errs = append(errs, s.side(j == 1).DeleteClientSessions(ctx, pt))
		}
	}
	return errors.Join(errs...)
}

// Delete implements usersessions.Provider, on the side of each key; the count is the sum.
// Both sides are tried even when one fails; the count is then of the side that did not.
func (s *Store) Delete(ctx context.Context, keys []usersessions.Key) (int, error) {
	var parts [2][]usersessions.Key
	for _, k := range keys {
		parts[b2i(k.Offline)] = append(parts[b2i(k.Offline)], k)
	}
	total := 0
	var errs []error
	for j, pt := range parts {
		if len(pt) == 0 {
			continue
		}
		n, err := s.side(j == 1).Delete(ctx, pt)
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// sides returns the side or sides f selects, each with the filter narrowed to that side.
func (s *Store) sides(f usersessions.Filter) []sided {
	switch f.Offline {
	case usersessions.OnlineOnly:
		return []sided{{s.online, f}}
	case usersessions.OfflineOnly:
		return []sided{{s.store, f}}
	default: // Both, and any other value Matches treats as both
		on, off := f, f
		on.Offline, off.Offline = usersessions.OnlineOnly, usersessions.OfflineOnly
		return []sided{{s.online, on}, {s.store, off}}
	}
}

type sided struct {
	p usersessions.Provider
	f usersessions.Filter
}

func validFilter(what string, f usersessions.Filter) error {
	if f.RealmID == "" {
		return fmt.Errorf("%s: session filter: realm id is required: %w", what, spi.ErrInvalid)
	}
	return nil
}

// DeleteMatching implements usersessions.Provider on the side or sides f selects; the
// count is the sum. With Both, each side's watchers see a Flushed change carrying the
// filter narrowed to that side. Both sides are tried even when one fails.
func (s *Store) DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error) {
	if err := validFilter("delete matching", f); err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, sd := range s.sides(f) {
		n, err := sd.p.DeleteMatching(ctx, sd.f)
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// DeleteExpired implements usersessions.Provider over both sides, sharing one limit
// between them so that a call removes at most limit user sessions in all.
//
// The online side goes first, with the whole limit. While it may have more to remove
// (either count reached limit) the call ends there, and the caller, who repeats until both
// counts are below limit, comes back. Once it is done, the store is asked with what is
// left of the limit, again while it may have more and the totals are below limit. So
// when both totals are below limit, both sides have nothing expired left.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error) {
	if limit <= 0 {
		return 0, 0, fmt.Errorf("delete expired: limit %d must be positive: %w", limit, spi.ErrInvalid)
	}
	users, clients, err = s.online.DeleteExpired(ctx, before, limit)
	if err != nil || users >= limit || clients >= limit {
		return users, clients, err
	}
	for users < limit && clients < limit {
		rest := limit - max(users, clients)
		u, c, err := s.store.DeleteExpired(ctx, before, rest)
		users, clients = users+u, clients+c
		if err != nil {
			return users, clients, err
		}
		if u < rest && c < rest { // the store has nothing expired left
			break
		}
	}
	return users, clients, nil
}

// List implements usersessions.Provider. OnlineOnly lists the online side, OfflineOnly
// the store. Both lists each side with the same page and merges the two in the
// contract's key order (session id ascending, the online session of an id before its
// offline twin); the page holds the first Limit sessions of that merge, plus the offline
// twin of the last one when that is online, so twins always share a page (Limit+1
// sessions at most, as the contract allows).
func (s *Store) List(ctx context.Context, f usersessions.Filter, pg usersessions.Page) ([]*usersessions.UserSession, error) {
	if err := validFilter("list", f); err != nil {
		return nil, err
	}
	sd := s.sides(f)
	if len(sd) == 1 {
		return sd[0].p.List(ctx, sd[0].f, pg)
	}
	if pg.Limit <= 0 {
		pg.Limit = defaultPageSize
	}
	on, err := sd[0].p.List(ctx, sd[0].f, pg)
	if err != nil {
		return nil, err
	}
	off, err := sd[1].p.List(ctx, sd[1].f, pg)
	if err != nil {
		return nil, err
	}
	// Each side returned its first Limit sessions after pg.After, so the first Limit of the
	// merge are the first Limit of the union. When the last of them is online and its
	// offline twin exists, the twin is in off: fewer than Limit offline sessions precede
	// it, so the store's page reaches it.
	page := merge(on, off)
	if len(page) > pg.Limit {
		n := pg.Limit
		if page[n].ID == page[n-1].ID {
			n++
		}
		page = page[:n]
	}
	return page, nil
}

// compareSessions is the contract's key order within a realm: id, then online first.
func compareSessions(a, b *usersessions.UserSession) int {
	return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(b2i(a.Offline), b2i(b.Offline)))
}

// merge merges two lists sorted by compareSessions.
func merge(a, b []*usersessions.UserSession) []*usersessions.UserSession {
	out := make([]*usersessions.UserSession, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if compareSessions(a[i], b[j]) <= 0 {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// Count implements usersessions.Provider: the sum over the side or sides f selects.
func (s *Store) Count(ctx context.Context, f usersessions.Filter) (int64, error) {
	if err := validFilter("count", f); err != nil {
		return 0, err
	}
	var total int64
	for _, sd := range s.sides(f) {
		n, err := sd.p.Count(ctx, sd.f)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// CountByClient implements usersessions.Provider: offline counts come from the store,
// online ones from memory.
func (s *Store) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	return s.side(offline).CountByClient(ctx, realmID, offline, liveAt)
}

// Watch implements usersessions.Provider. It watches both sides and reports their
// changes as one feed: online changes are those of this process's memory provider (no
// other node has them), offline changes those of the store (every node sharing it, as the
// store reports them). It sends one Subscribed change, once both sides have subscribed,
// then the changes of each side in that side's order; the two sides' changes are
// interleaved as they arrive. fn is never called concurrently. It returns nil when ctx
// ends, fn's error, or the error of a side whose feed broke.
func (s *Store) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	return watchBoth(ctx, s.online, s.store, fn)
}

// GetRecords implements usersessions.Provider: records live in the store.
func (s *Store) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	return s.store.GetRecords(ctx, kind, keys)
}

// PutRecord implements usersessions.Provider: records live in the store.
func (s *Store) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	return s.store.PutRecord(ctx, r)
}

// ListRecords implements usersessions.Provider: records live in the store.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error) {
	return s.store.ListRecords(ctx, kind)
}

// DeleteRecord implements usersessions.Provider: records live in the store.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string) error {
	return s.store.DeleteRecord(ctx, kind, key)
}

// Enqueue implements usersessions.Provider: the outbox lives in the store.
func (s *Store) Enqueue(ctx context.Context, deliveries []*usersessions.Delivery) error {
	return s.store.Enqueue(ctx, deliveries)
}

// Claim implements usersessions.Provider: the outbox lives in the store.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*usersessions.Delivery, error) {
	return s.store.Claim(ctx, now, lease, limit)
}

// Finish implements usersessions.Provider: the outbox lives in the store.
func (s *Store) Finish(ctx context.Context, outcomes []usersessions.DeliveryOutcome) error {
	return s.store.Finish(ctx, outcomes)
}

// ListDeliveries implements usersessions.Provider: the outbox lives in the store.
func (s *Store) ListDeliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	return s.store.ListDeliveries(ctx, f)
}
