// Package cachelifespan is the contract that decides how long a session stays in the
// runtime's in-process cache. Eviction drops the cache entry, never the stored session.
package cachelifespan

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// EntryKind says what is being cached.
type EntryKind int

const (
	UserSessionEntry EntryKind = iota + 1
	ClientSessionEntry
)

// Entry describes one cache entry about to be inserted.
type Entry struct {
	Kind     EntryKind
	RealmID  string
	ClientID string // for ClientSessionEntry
	Offline  bool
	// Imported is true when the entry was loaded from the store (lazy load or preload)
	// rather than created by this node.
	Imported bool
	// Remaining is the session's own remaining lifetime.
	Remaining time.Duration
}

// Provider answers, for a batch of entries, how long each may stay cached: one lifespan
// per entry, in order. A lifespan is never negative nor longer than the entry's Remaining
// (so an entry with nothing remaining gets 0); 0 means "do not cache". An entry of an
// unknown Kind is answered within those bounds or refused with spi.ErrInvalid. Once ctx
// has ended, Lifespans returns ctx's error or a full answer. cachelifespantest is the
// conformance suite.
type Provider interface {
	spi.Provider
	Lifespans(ctx context.Context, entries []Entry) ([]time.Duration, error)
}
