package override_test

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/plugins/sdk/sdktest"
	"github.com/sessiond/sessiond/providers/cachelifespan/override"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/cachelifespan/cachelifespantest"
)

// The test binary doubles as the provider's plugin process (sdktest.Main).
func TestMain(m *testing.M) {
	sdktest.Main(m, func(log hclog.Logger) spi.Provider { return override.New(log) })
}

// TestConformance runs the cachelifespan conformance suite against the provider in sessiond's process
// and as a plugin process under sessiond's plugin host, across gRPC.
func TestConformance(t *testing.T) {
	cfg := spi.Config{override.OptOfflineSession: "1h", override.OptOfflineClientSession: "5m"}
	t.Run("in-process", func(t *testing.T) {
		cachelifespantest.Run(t, func(t *testing.T) (cachelifespan.Provider, spi.Config) {
			p := override.New(hclog.NewNullLogger())
			t.Cleanup(func() { _ = p.Close(context.Background()) })
			return p, cfg
		})
	})
	t.Run("plugin process", func(t *testing.T) {
		// A process of its own for every check, started ahead of time.
		next := sdktest.Prestart(t, 2, func() sdktest.Plugin { return sdktest.Plugin{Config: cfg, Unconfigured: true} })
		cachelifespantest.Run(t, func(t *testing.T) (cachelifespan.Provider, spi.Config) {
			p := next(t)
			return p.Provider().(cachelifespan.Provider), p.Config()
		})
	})
}
