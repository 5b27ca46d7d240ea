// Package database is the offline-preload provider that streams offline sessions from the
// store into the cache at start-up (Keycloak's preloadOfflineSessionsFromDatabase): in
// pages, with parallel workers reading disjoint partitions of the store, progress logged at
// a steady interval, readiness held until it is done. A preload that fails or runs past its
// timeout falls back to lazy loading; sessiond still starts.
//
// The provider only plans: the core executes the plan against the user-sessions provider
// (core/preload), so that pages of sessions never cross a plugin boundary twice. Beyond
// Keycloak, active-within preloads only the sessions used recently; the rest load lazily.
//
// Selecting it: --spi-offline-preload-provider=database, or the seed's own flag
// --spi-user-sessions-infinispan-preload-offline-sessions-from-database=true (an alias of
// the selection, see conf).
package database

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/offlinepreload"
)

// ID is the provider id of this package.
const ID = "database"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptPageSize         = "page-size"
	OptWorkers          = "workers"
	OptTimeout          = "timeout"
	OptActiveWithin     = "active-within"
	OptProgressInterval = "progress-interval"
)

// Defaults and bounds.
const (
	DefaultPageSize         = 1000
	DefaultWorkers          = 4
	DefaultTimeout          = 10 * time.Minute
	DefaultProgressInterval = 10 * time.Second

	maxPageSize = 100000
	maxWorkers  = 64
)

// Provider plans an eager preload with its options.
type Provider struct {
	log  hclog.Logger
	plan offlinepreload.Plan
}

var _ offlinepreload.Provider = (*Provider)(nil)

// New returns the provider with its defaults.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, plan: offlinepreload.Plan{
		Mode: offlinepreload.Eager, PageSize: DefaultPageSize, Workers: DefaultWorkers,
		Timeout: DefaultTimeout, ProgressEvery: DefaultProgressInterval,
	}}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.OfflinePreload,
		ID:      ID,
		Version: Version,
		Help: "Streams offline sessions and their client sessions from the store into the cache at start-up, in pages read by parallel workers, " +
			"logging progress (count, rate, time left); /health/ready is DOWN with the progress until it is done. A failure or a preload past " +
			"its timeout is logged and sessiond falls back to lazy loading. Sessions beyond cache-max-entries are not preloaded.",
		Options: []spi.Option{
			{Name: OptPageSize, Type: spi.Int, Default: strconv.Itoa(DefaultPageSize),
				Help: fmt.Sprintf("Sessions per page read from the store (1 to %d).", maxPageSize)},
			{Name: OptWorkers, Type: spi.Int, Default: strconv.Itoa(DefaultWorkers),
				Help: fmt.Sprintf("Pages imported at once (1 to %d). A store that is a plugin process streams each realm once and the workers share its pages; a store in sessiond's process gives each worker its own partition.", maxWorkers)},
			{Name: OptTimeout, Type: spi.Duration, Default: DefaultTimeout.String(),
				Help: "Longest the preload may take; past it, or on a store failure, the preload stops with the reason logged and the remaining sessions load lazily."},
			{Name: OptActiveWithin, Type: spi.Duration,
				Help: "Preload only the offline sessions used (refreshed) within this window before start-up, e.g. 168h; the rest load lazily. Unset: all of them."},
			{Name: OptProgressInterval, Type: spi.Duration, Default: DefaultProgressInterval.String(),
				Help: "How often progress (sessions loaded, rate, estimated time left) is logged."},
		},
	}
}

// Configure implements spi.Provider.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
	plan := offlinepreload.Plan{Mode: offlinepreload.Eager}
	var err error
	if plan.PageSize, err = intOption(cfg, OptPageSize, DefaultPageSize, 1, maxPageSize); err != nil {
		return err
	}
	if plan.Workers, err = intOption(cfg, OptWorkers, DefaultWorkers, 1, maxWorkers); err != nil {
		return err
	}
	if plan.Timeout, err = durationOption(cfg, OptTimeout, DefaultTimeout, time.Second); err != nil {
		return err
	}
	if plan.ActiveWithin, err = durationOption(cfg, OptActiveWithin, 0, 0); err != nil {
		return err
	}
	if plan.ProgressEvery, err = durationOption(cfg, OptProgressInterval, DefaultProgressInterval, 100*time.Millisecond); err != nil {
		return err
	}
	p.plan = plan
	return nil
}

// Close implements spi.Provider.
func (p *Provider) Close(context.Context) error { return nil }

// Plan implements offlinepreload.Provider: always an eager preload with the configured
// options. It warns when the cache cannot hold what the store has: the preload stops when
// the cache is full, and the rest loads lazily.
func (p *Provider) Plan(_ context.Context, s offlinepreload.Situation) (offlinepreload.Plan, error) {
	if s.CacheCapacity > 0 && s.OfflineCount > s.CacheCapacity && p.plan.ActiveWithin == 0 {
		p.log.Warn("more offline sessions in the store than the cache holds: the preload stops when the cache is full and the rest load lazily; raise cache-max-entries or set active-within",
			"offline_sessions", s.OfflineCount, "cache_max_entries", s.CacheCapacity)
	}
	p.log.Info("planning an offline preload", "realms", len(s.Realms), "offline_sessions", s.OfflineCount,
		"page_size", p.plan.PageSize, "workers", p.plan.Workers, "timeout", p.plan.Timeout.String(), "active_within", p.plan.ActiveWithin.String())
	return p.plan, nil
}

func intOption(cfg spi.Config, name string, def, least, most int) (int, error) {
	v := strings.TrimSpace(cfg[name])
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("option %s: %q is not a whole number: %w", name, v, spi.ErrInvalid)
	}
	if n < least || n > most {
		return 0, fmt.Errorf("option %s: %d is outside %d to %d: %w", name, n, least, most, spi.ErrInvalid)
	}
	return n, nil
}

// durationOption reads a duration in Go syntax or whole seconds, at least least.
func durationOption(cfg spi.Config, name string, def, least time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(cfg[name])
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 64)
		if nerr != nil || n < 0 || n > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, fmt.Errorf("option %s: %q is not a duration (90s, 1h) or whole seconds: %w", name, v, spi.ErrInvalid)
		}
		d = time.Duration(n) * time.Second
	}
	if d < least {
		return 0, fmt.Errorf("option %s: %s is below the least allowed %s: %w", name, d, least, spi.ErrInvalid)
	}
	return d, nil
}
