// Package override is the cache-lifespan provider with Keycloak's "lifespan override" for
// imported offline sessions: offline user and client sessions read from the store (on
// first use, or by the offline preload) leave the in-process cache after a fixed lifespan,
// while staying in the store, which lowers the memory a large number of offline sessions
// takes. Every other entry lives for its own remaining lifetime, as under "default".
//
// The effective lifespan is the smaller of the override and the session's own remaining
// lifetime. An unset or negative override (Keycloak's -1) means no override; 0 keeps
// imported offline sessions out of the cache altogether.
//
// sessiond caches a user session together with its client sessions, so a client-session
// override shortens the life of the whole cached entry (see cache.ProviderLifespans in
// core/cache): an entry leaves the cache at the earlier of its user-session override and
// the client-session override of any client session it holds. The next use reloads the
// session from the store.
package override

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
)

// ID is the provider id of this package.
const ID = "override"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names, and Keycloak's spellings of them (accepted as aliases).
const (
	OptOfflineSession       = "offline-session-lifespan"
	OptOfflineClientSession = "offline-client-session-lifespan"

	AliasOfflineSession       = "spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override"
	AliasOfflineClientSession = "spi-user-sessions-infinispan-offline-client-session-cache-entry-lifespan-override"
)

// noOverride is the value of an unset override.
const noOverride time.Duration = -1

// Provider answers min(override, remaining) for imported offline entries. It is safe for
// concurrent use once configured.
type Provider struct {
	log          hclog.Logger
	user, client time.Duration // noOverride when unset
}

var _ cachelifespan.Provider = (*Provider)(nil)

// New returns the provider, with no override until configured.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, user: noOverride, client: noOverride}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.CacheLifespan,
		ID:      ID,
		Version: Version,
		Help: "Keycloak's lifespan override: imported offline user and client sessions leave the in-process cache after a fixed lifespan " +
			"(never later than the session's own end) and stay in the store; other entries live for their own remaining lifetime. " +
			"A cached user session holds its client sessions, so it leaves the cache at the earlier of the two overrides that apply to it.",
		Options: []spi.Option{
			{Name: OptOfflineSession, Type: spi.Duration, Aliases: []string{AliasOfflineSession},
				Help: "Lifespan in the cache of an offline user session loaded from the store; the effective lifespan is the smaller of this and the session's remaining lifetime. Unset or negative (Keycloak's -1): no override; 0: not cached."},
			{Name: OptOfflineClientSession, Type: spi.Duration, Aliases: []string{AliasOfflineClientSession},
				Help: "Lifespan in the cache of an offline client session loaded from the store, likewise; the cached user session that holds it leaves the cache with it. Unset or negative: no override; 0: not cached."},
		},
	}
}

// Configure implements spi.Provider.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
	user, err := durationOption(cfg, OptOfflineSession)
	if err != nil {
		return err
	}
	client, err := durationOption(cfg, OptOfflineClientSession)
	if err != nil {
		return err
	}
	p.user, p.client = user, client
	p.log.Info("cache lifespan override of imported offline sessions", "user_sessions", describe(user), "client_sessions", describe(client))
	return nil
}

func describe(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return d.String()
}

// durationOption reads a duration in Go syntax or whole seconds; unset or negative is
// noOverride.
func durationOption(cfg spi.Config, name string) (time.Duration, error) {
	v := strings.TrimSpace(cfg[name])
	if v == "" {
		return noOverride, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 64)
		if nerr != nil || n > int64(time.Duration(1<<63-1)/time.Second) || n < -int64(time.Duration(1<<63-1)/time.Second) {
			return 0, fmt.Errorf("option %s: %q is not a duration (90s, 1h) or whole seconds: %w", name, v, spi.ErrInvalid)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return noOverride, nil
	}
	return d, nil
}

// Close implements spi.Provider.
func (p *Provider) Close(context.Context) error { return nil }

// Lifespans implements cachelifespan.Provider: each entry's own remaining lifetime (never
// negative), shortened to the override for imported offline entries of its kind.
func (p *Provider) Lifespans(_ context.Context, entries []cachelifespan.Entry) ([]time.Duration, error) {
	out := make([]time.Duration, len(entries))
	for i, e := range entries {
		l := max(e.Remaining, 0)
		if e.Offline && e.Imported {
			o := noOverride
			switch e.Kind {
			case cachelifespan.UserSessionEntry:
				o = p.user
			case cachelifespan.ClientSessionEntry:
				o = p.client
			}
			if o >= 0 {
				l = min(l, o)
			}
		}
		out[i] = l
	}
	return out, nil
}
