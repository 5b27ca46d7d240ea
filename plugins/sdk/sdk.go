// Package sdk is what a sessiond plugin binary calls: Serve, which speaks the plugin
// protocol until sessiond goes away; Logger, a logger whose lines land in sessiond's own log;
// and ReadConfig, which reads the provider's options by their declared types.
//
// A plugin author implements spi.Provider plus one SPI interface (spi/usersessions,
// spi/offlinepreload, spi/cachelifespan or spi/revocationpush) with Describe reporting that
// SPI's name, and writes a main that builds the provider and hands it to Serve, whichever
// the SPI:
//
//	func main() {
//		log := sdk.Logger("my-store")
//		sdk.Serve(mystore.New(log))
//	}
//
// The operator registers the binary with sessiond by path and SHA-256. The binary must not
// write to stdout (go-plugin's handshake travels there) and should log only through Logger:
// its JSON lines on stderr are re-emitted by the host at their own level. Serve sets no
// flags and reads no configuration; options arrive through Configure, checked against the
// Descriptor and with defaults filled in (see ReadConfig).
//
// Serve offers the host every plugin protocol version this SDK speaks (wire.ProtocolVersions)
// and go-plugin settles on the newest both speak. When they share none the plugin logs both
// lists, and the host refuses it with a wire.VersionError naming both sides' versions.
//
// Package sdktest runs a plugin under sessiond's own host in tests, and each SPI has a
// conformance suite beside its contract (spi/usersessions/usersessionstest,
// spi/offlinepreload/offlinepreloadtest, spi/cachelifespan/cachelifespantest,
// spi/revocationpush/revocationpushtest). `sessiond plugin new <spi> <name>` writes a
// provider module that uses both.
// docs/plugin-author-guide.md walks through writing, testing, building, registering,
// configuring and running one.
package sdk

import (
	"context"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/spi"
)

// LogLevelEnv names the environment variable the host sets to the plugin's log level.
const LogLevelEnv = "SESSIOND_PLUGIN_LOG_LEVEL"

const (
	parentPoll   = 500 * time.Millisecond
	closeTimeout = 5 * time.Second
)

// Logger returns a JSON logger on stderr, at the level in SESSIOND_PLUGIN_LOG_LEVEL (info
// when unset). Call it before Serve: Serve redirects os.Stderr afterwards.
func Logger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// Serve serves p to the sessiond that started this process and exits when sessiond stops
// it, dies, or the process is re-parented (go-plugin asks for no parent-death signal, and a
// plugin must never outlive sessiond). It exits with status 1 when p cannot be served.
func Serve(p spi.Provider) {
	serve(p, nil)
}

// serve is Serve with the plugin sets (one per protocol version) passed through versions
// first, when it is set: how the tests play a plugin built for other protocol versions.
func serve(p spi.Provider, versions func(map[int]plugin.PluginSet) map[int]plugin.PluginSet) {
	log := Logger("plugin")
	plugins, err := wire.ServerPlugins(p)
	if err != nil {
		log.Error("cannot serve provider", "error", err)
		os.Exit(1)
	}
	if versions != nil {
		plugins = versions(plugins)
	}
	checkVersions(log, slices.Sorted(maps.Keys(plugins)), os.Getenv(hostVersionsEnv))
	go watchParent(os.Getppid(), func() {
		log.Info("sessiond went away; exiting")
		closeAndExit(p, log)
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake(),
		VersionedPlugins: plugins,
		GRPCServer:       grpcServer,
		Logger:           log,
	})
	// Serve returns when the host shut the plugin down, after it called Close itself.
	os.Exit(0)
}

// hostVersionsEnv is where go-plugin's client lists the protocol versions the host speaks.
const hostVersionsEnv = "PLUGIN_PROTOCOL_VERSIONS"

// checkVersions logs the protocol versions this plugin speaks, and, when none of them is
// one the host speaks, an error naming both lists. go-plugin then answers the handshake
// with the plugin's oldest version and the host refuses it (wire.VersionError); this line,
// which the host copies into its own log, is the half of the story only the plugin knows.
func checkVersions(log hclog.Logger, ours []int, hostList string) {
	var host []int
	for _, f := range strings.Split(hostList, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			host = append(host, v)
		}
	}
	log.Debug("plugin protocol", "plugin_versions", ours, "sessiond_versions", host)
	if len(host) == 0 {
		return // started by something other than go-plugin; its handshake will say
	}
	for _, v := range ours {
		if slices.Contains(host, v) {
			return
		}
	}
	log.Error("no plugin protocol version in common with sessiond: rebuild the plugin against an SDK that speaks one of sessiond's versions, or run a sessiond that speaks one of the plugin's",
		"plugin_versions", ours, "sessiond_versions", host)
}

// grpcServer is go-plugin's default server without gRPC's 4 MB limit on what it receives:
// the host's batches (Create, Enqueue) are bounded by the caller, not by the transport, and
// go-plugin's client already lifts the limit on the other direction.
func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	return plugin.DefaultGRPCServer(append(opts, grpc.MaxRecvMsgSize(math.MaxInt32)))
}

// watchParent calls gone once the parent process is no longer ppid. It runs for the life
// of the process, which gone ends.
func watchParent(ppid int, gone func()) {
	t := time.NewTicker(parentPoll)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			gone()
			return
		}
	}
}

// closeAndExit gives p a bounded chance to release what it holds, then exits 0. It is
// used only when the host is gone and so could not call Close.
func closeAndExit(p spi.Provider, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Close(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("provider close failed", "error", err)
		}
	case <-ctx.Done():
		log.Warn("provider close timed out")
	}
	os.Exit(0)
}
