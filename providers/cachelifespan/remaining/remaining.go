// Package remaining is the default cache-lifespan provider (id "default"): every cache entry
// lives for exactly its session's own remaining lifetime, so the cache never outlives the store.
package remaining

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/internal/optionless"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
)

// ID is the provider id of this package. The package is named for what it does; the id
// is "default" because that is what operators select, as in Keycloak.
const ID = "default"

// Version is this provider's own version.
const Version = "1.0.0"

// Provider answers each entry's own Remaining. It has no options.
type Provider struct {
	optionless.Base
}

var _ cachelifespan.Provider = (*Provider)(nil)

// New returns the provider.
func New(log hclog.Logger) *Provider {
	return &Provider{optionless.New(spi.Descriptor{
		SPI:     spi.CacheLifespan,
		ID:      ID,
		Version: Version,
		Help:    "Keeps each cached session for its own remaining lifetime.",
	}, log)}
}

// Lifespans implements cachelifespan.Provider. An entry that has already expired gets 0
// ("do not cache"), never a negative duration.
func (p *Provider) Lifespans(_ context.Context, entries []cachelifespan.Entry) ([]time.Duration, error) {
	out := make([]time.Duration, len(entries))
	for i, e := range entries {
		out[i] = max(e.Remaining, 0)
	}
	return out, nil
}
