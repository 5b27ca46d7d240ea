package natspush_test

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/plugins/examples/natspush"
	"github.com/sessiond/sessiond/plugins/sdk/sdktest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/revocationpush/revocationpushtest"
)

// TestConformance runs the revocation-push conformance suite against the provider in this
// process and as a plugin process. It publishes to NATS rather than to the clients' URLs,
// so the suite's rules about clients' answers find no notice of it there; the others apply.
func TestConformance(t *testing.T) {
	connect(t)
	cfg := func() spi.Config {
		return spi.Config{natspush.OptURL: natsURL(), natspush.OptSubjectPrefix: newPrefix()}
	}
	t.Run("in-process", func(t *testing.T) {
		revocationpushtest.Run(t, func(t *testing.T) (revocationpush.Provider, spi.Config) {
			p := natspush.New(nil)
			t.Cleanup(func() { _ = p.Close(context.Background()) })
			return p, cfg()
		})
	})
	t.Run("plugin process", func(t *testing.T) {
		next := sdktest.Prestart(t, 2, func() sdktest.Plugin { return sdktest.Plugin{Config: cfg(), Unconfigured: true} })
		revocationpushtest.Run(t, func(t *testing.T) (revocationpush.Provider, spi.Config) {
			p := next(t)
			return p.Provider().(revocationpush.Provider), p.Config()
		})
	})
}
