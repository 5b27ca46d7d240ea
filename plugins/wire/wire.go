// Package wire carries the four sessiond SPIs over hashicorp/go-plugin gRPC: server
// adapters that expose a Go provider, and clients that make a remote one look local.
//
// Both sides share the handshake and the plugin sets built here. Errors keep their spi
// sentinel identity across the boundary (see errors.go); a provider that cannot be reached
// comes back as spi.ErrUnavailable.
package wire

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/cachelifespan/cachelifespanpb"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/offlinepreload/offlinepreloadpb"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/revocationpush/revocationpushpb"
	"github.com/sessiond/sessiond/spi/spipb"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

// ProtocolVersion is the version of the gRPC services in spi/*pb. It changes only with an
// incompatible change to them; host and plugin must agree on it in the handshake.
const ProtocolVersion = 1

// Handshake is the configuration both sides of a plugin connection must share. The cookie
// is not a secret: it only stops a plugin binary that was started by hand from serving.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "SESSIOND_PLUGIN",
		MagicCookieValue: "b3c1f0d2-sessiond-provider",
	}
}

// ClientPlugins is the host's plugin set: every SPI, keyed by its name, so a client can
// Dispense(spiName) and get the client of NewClient.
func ClientPlugins() map[int]plugin.PluginSet {
	set := plugin.PluginSet{}
	for _, name := range spi.Names() {
		set[name] = &grpcPlugin{spi: name}
	}
	return map[int]plugin.PluginSet{ProtocolVersion: set}
}

// ServerPlugins is the plugin set that serves p under the name of the SPI its Describe
// reports. p must implement that SPI's interface.
func ServerPlugins(p spi.Provider) (map[int]plugin.PluginSet, error) {
	name := p.Describe().SPI
	register, err := services(name, p)
	if err != nil {
		return nil, err
	}
	return map[int]plugin.PluginSet{
		ProtocolVersion: {name: &grpcPlugin{spi: name, register: register}},
	}, nil
}

// NewClient returns the client of the named SPI over cc: a *UserSessionsClient,
// *OfflinePreloadClient, *CacheLifespanClient or *RevocationPushClient.
func NewClient(spiName string, cc grpc.ClientConnInterface) (spi.Provider, error) {
	base := providerClient{spi: spiName, rpc: spipb.NewProviderClient(cc)}
	switch spiName {
	case spi.UserSessions:
		return &UserSessionsClient{providerClient: base, rpc: usersessionspb.NewUserSessionsClient(cc), cc: cc}, nil
	case spi.OfflinePreload:
		return &OfflinePreloadClient{providerClient: base, rpc: offlinepreloadpb.NewOfflinePreloadClient(cc)}, nil
	case spi.CacheLifespan:
		return &CacheLifespanClient{providerClient: base, rpc: cachelifespanpb.NewCacheLifespanClient(cc)}, nil
	case spi.RevocationPush:
		return &RevocationPushClient{providerClient: base, rpc: revocationpushpb.NewRevocationPushClient(cc)}, nil
	}
	return nil, fmt.Errorf("wire: unknown SPI %q", spiName)
}

// services returns what registers p's gRPC services (the shared Provider one and the one of
// its SPI), or an error when p does not implement the SPI it names.
func services(spiName string, p spi.Provider) (func(grpc.ServiceRegistrar), error) {
	var register func(grpc.ServiceRegistrar)
	ok := false
	switch spiName {
	case spi.UserSessions:
		var impl usersessions.Provider
		if impl, ok = p.(usersessions.Provider); ok {
			register = func(s grpc.ServiceRegistrar) {
				usersessionspb.RegisterUserSessionsServer(s, &userSessionsServer{impl: impl})
			}
		}
	case spi.OfflinePreload:
		var impl offlinepreload.Provider
		if impl, ok = p.(offlinepreload.Provider); ok {
			register = func(s grpc.ServiceRegistrar) {
				offlinepreloadpb.RegisterOfflinePreloadServer(s, &offlinePreloadServer{impl: impl})
			}
		}
	case spi.CacheLifespan:
		var impl cachelifespan.Provider
		if impl, ok = p.(cachelifespan.Provider); ok {
			register = func(s grpc.ServiceRegistrar) {
				cachelifespanpb.RegisterCacheLifespanServer(s, &cacheLifespanServer{impl: impl})
			}
		}
	case spi.RevocationPush:
		var impl revocationpush.Provider
		if impl, ok = p.(revocationpush.Provider); ok {
			register = func(s grpc.ServiceRegistrar) {
				revocationpushpb.RegisterRevocationPushServer(s, &revocationPushServer{impl: impl})
			}
		}
	default:
		return nil, fmt.Errorf("wire: provider %T describes itself with unknown SPI %q", p, spiName)
	}
	if !ok {
		return nil, fmt.Errorf("wire: provider %T does not implement the %s SPI it describes", p, spiName)
	}
	return func(s grpc.ServiceRegistrar) {
		spipb.RegisterProviderServer(s, &providerServer{impl: p})
		register(s)
	}, nil
}

// grpcPlugin is the go-plugin glue of one SPI. On the serve side register is set; on the
// host side it is nil and only GRPCClient is used.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	spi      string
	register func(grpc.ServiceRegistrar)
}

func (g *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if g.register == nil {
		return fmt.Errorf("wire: the %s plugin set has no provider to serve; use ServerPlugins", g.spi)
	}
	g.register(s)
	return nil
}

func (g *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return NewClient(g.spi, cc)
}

// micros is a timestamp on the wire: unix microseconds, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
