// Package lazy is the default offline-preload provider: offline sessions are not preloaded
// at start-up but read from the store on first use and imported into the cache.
package lazy

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/internal/optionless"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/offlinepreload"
)

// ID is the provider id of this package.
const ID = "lazy"

// Version is this provider's own version.
const Version = "1.0.0"

// Provider plans lazy loading whatever the situation. It has no options.
type Provider struct {
	optionless.Base
}

var _ offlinepreload.Provider = (*Provider)(nil)

// New returns the lazy provider.
func New(log hclog.Logger) *Provider {
	return &Provider{optionless.New(spi.Descriptor{
		SPI:     spi.OfflinePreload,
		ID:      ID,
		Version: Version,
		Help:    "Loads each offline session from the store the first time it is used; nothing is preloaded at start-up.",
	}, log)}
}

// Plan implements offlinepreload.Provider: always Lazy, so start-up never waits on the
// number of offline sessions in the store.
func (p *Provider) Plan(_ context.Context, s offlinepreload.Situation) (offlinepreload.Plan, error) {
	p.Log.Debug("planning lazy offline loading", "realms", len(s.Realms), "offline_sessions", s.OfflineCount)
	return offlinepreload.Plan{Mode: offlinepreload.Lazy}, nil
}
