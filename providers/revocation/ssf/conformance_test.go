package ssf_test

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/plugins/sdk/sdktest"
	"github.com/sessiond/sessiond/providers/revocation/ssf"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/revocationpush/revocationpushtest"
)

// The test binary doubles as the provider's plugin process (sdktest.Main).
func TestMain(m *testing.M) {
	sdktest.Main(m, func(log hclog.Logger) spi.Provider { return ssf.New(log) })
}

// TestConformance runs the revocationpush conformance suite against the provider in sessiond's process
// and as a plugin process under sessiond's plugin host, across gRPC.
func TestConformance(t *testing.T) {
	cfg := spi.Config{}
	t.Run("in-process", func(t *testing.T) {
		revocationpushtest.Run(t, func(t *testing.T) (revocationpush.Provider, spi.Config) {
			p := ssf.New(hclog.NewNullLogger())
			t.Cleanup(func() { _ = p.Close(context.Background()) })
			return p, cfg
		})
	})
	t.Run("plugin process", func(t *testing.T) {
		// A process of its own for every check, started ahead of time.
		next := sdktest.Prestart(t, 2, func() sdktest.Plugin { return sdktest.Plugin{Config: cfg, Unconfigured: true} })
		revocationpushtest.Run(t, func(t *testing.T) (revocationpush.Provider, spi.Config) {
			p := next(t)
			return p.Provider().(revocationpush.Provider), p.Config()
		})
	})
}
