// Package sdk is what a sessiond plugin binary calls: a logger the host understands, and
// Serve, which speaks the plugin protocol until sessiond goes away.
//
// A plugin author implements spi.Provider plus one SPI interface (spi/usersessions,
// spi/offlinepreload, spi/cachelifespan or spi/revocationpush) with Describe reporting that
// SPI's name, and writes a main that builds the provider and hands it to Serve:
//
//	func main() {
//		log := sdk.Logger("my-store")
//		sdk.Serve(mystore.New(log))
//	}
//
// The operator registers the binary with sessiond by path and SHA-256. The binary must not
// write to stdout (go-plugin's handshake travels there) and should log only through Logger:
// its JSON lines on stderr are re-emitted by the host at their own level. Serve sets no
// flags and reads no configuration; options arrive through Configure, validated against
// the Descriptor.
package sdk

import (
	"context"
	"math"
	"os"
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
	log := Logger("plugin")
	plugins, err := wire.ServerPlugins(p)
	if err != nil {
		log.Error("cannot serve provider", "error", err)
		os.Exit(1)
	}
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
