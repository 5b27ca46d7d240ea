package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/runtime"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/builtin"
	"github.com/sessiond/sessiond/spi"
)

// describeTimeout bounds starting the registered plugins for their descriptors.
const describeTimeout = time.Minute

// thirdPartyDescriptors returns the descriptors of the third-party plugins loaded
// registers: each plugin is started (checksum checked, handshake, Describe)
// and stopped again, without being configured, so that show-config and the configuration
// reference list its options with their declared types and defaults. With strict unset a
// plugin that cannot be started is reported on stderr and its options stay as written.
func thirdPartyDescriptors(loaded *conf.Loaded, stderr io.Writer, strict bool) ([]spi.Descriptor, error) {
	regs, err := loaded.Registrations()
	if err != nil {
		return nil, err
	}
	if len(regs.ThirdParty) == 0 {
		return nil, nil
	}
	// The built-ins settle the server options the host needs (the socket directory).
	settings, err := loaded.Resolve(runtime.BuiltinDescriptors())
	if err != nil {
		return nil, err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "sessiond", Level: hclog.Warn, Output: stderr})
	h := host.New(log.Named("plugins"), host.Options{SocketDir: settings.PluginSocketDir})
	defer h.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	var descs []spi.Descriptor
	for _, r := range regs.ThirdParty {
		if _, isBuiltin := builtin.Lookup(r.SPI, r.ID); isBuiltin {
			return nil, fmt.Errorf("spi-%s-%s-command: %q is a built-in provider of %s; a plugin needs its own id", r.SPI, r.ID, r.ID, r.SPI)
		}
		p, err := h.Start(ctx, host.Spec{SPI: r.SPI, ID: r.ID, Command: r.Command, SHA256: r.SHA256, Dir: settings.PluginDir})
		if err != nil {
			if strict {
				return nil, err
			}
			fmt.Fprintf(stderr, "sessiond: cannot ask %s/%s for its options, so they are shown as given: %v\n", r.SPI, r.ID, err)
			continue
		}
		descs = append(descs, p.Descriptor())
	}
	return descs, nil
}

// configReference prints the configuration reference; registered third-party plugins
// (args, the environment and the configuration file as for start) are included.
func configReference(args []string, stdout, stderr io.Writer) error {
	loaded, err := conf.Load(conf.ProfileStart, args, os.Environ())
	if err != nil {
		return err
	}
	third, err := thirdPartyDescriptors(loaded, stderr, true)
	if err != nil {
		return err
	}
	return conf.WriteReferenceWith(stdout, runtime.BuiltinDescriptors(), third)
}
