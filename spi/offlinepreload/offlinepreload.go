// Package offlinepreload is the contract that decides how offline sessions reach the
// runtime's cache at start-up: lazily on first use, or streamed from the store before ready.
//
// The provider decides the policy; the core executes it against the user-sessions provider,
// so that session pages never cross a plugin boundary twice.
package offlinepreload

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Mode is how offline sessions are loaded.
type Mode string

const (
	// Lazy loads an offline session from the store the first time it is used and imports
	// it into the cache (Keycloak's default since 17).
	Lazy Mode = "lazy"
	// Eager streams offline sessions into the cache before the runtime reports ready.
	Eager Mode = "eager"
)

// Situation is what the core knows when it asks for a plan.
type Situation struct {
	Realms        []string  // realm ids served
	OfflineCount  int64     // offline sessions in the store, -1 when counting failed
	Now           time.Time //
	CacheCapacity int64     // entries the cache may hold, 0 for unbounded
}

// Plan is the provider's answer.
type Plan struct {
	Mode Mode
	// For Eager: page size, parallel workers (store partitions read at once), and the
	// time after which an unfinished preload is abandoned in favour of lazy loading.
	PageSize int
	Workers  int
	Timeout  time.Duration
	// ActiveWithin, when > 0, preloads only sessions refreshed within that window before
	// Now (the partial mode); the rest load lazily.
	ActiveWithin time.Duration
	// ProgressEvery is how often the core logs progress.
	ProgressEvery time.Duration
}

// Provider plans offline preloading. A plan's Mode is Lazy or Eager and none of its
// figures is negative (0 leaves one to the core's default). Every Situation the core may
// send gets a plan, OfflineCount -1 and an empty Realms included; one out of range may be
// refused with spi.ErrInvalid. Once ctx has ended, Plan returns ctx's error or a plan.
// offlinepreloadtest is the conformance suite.
type Provider interface {
	spi.Provider
	Plan(ctx context.Context, s Situation) (Plan, error)
}
