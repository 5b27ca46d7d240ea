// Command sessiond is the user-session runtime daemon. One binary: it runs the server, prints
// its configuration and plugins, and serves its own built-in providers as plugin processes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/runtime"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/providers/builtin"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `Usage: sessiond <command> [options]

Commands:
  start            run sessiond for production: needs TLS material (or http-enabled=true
                   behind a TLS-terminating proxy), a hostname and strong credentials;
                   health and metrics on the management port (9000)
  start-dev        run sessiond for development (127.0.0.1:8080, demo realm; relaxes
                   start's rules)
  show-config      print the effective configuration and where each value comes from
                   (start's by default; sessiond show-config start-dev for that profile's)
  plugins list     start each configured provider, verify it, and print its state
                   (start's by default; sessiond plugins list start-dev for that profile's)
  config reference print the configuration reference (Markdown); with a plugin's
                   --spi-<spi>-<id>-command and -sha256, its options too
  admin …          call a running sessiond's admin API: sessions, logout, logout-all,
                   revoke, deliveries, stats, limits (sessiond admin help)
  plugin new <spi> <name>
                   write a new provider module for one SPI, outside this repository:
                   a compiling provider, its plugin main and its conformance test
                   (sessiond plugin new --help)
  version          print the version

Options are Keycloak-style keys: --http-port=8080, --spi-user-sessions-provider=memory,
--spi-<spi>-<provider>-<option>=<value>. The same keys work in conf/sessiond.conf and as
SESSIOND_* environment variables. See docs/configuration.md.
`

// commands are the command words, for "did you mean".
var commands = []string{"start", "start-dev", "show-config", "plugins", "plugin", "config", "admin", "version", "help"}

// didYouMean is "; did you mean X?" for the known word closest to word, "" when none is
// close enough to be a likely typo.
func didYouMean(word string, known []string) string {
	if s := conf.Suggest(word, known); s != "" {
		return "; did you mean " + strconv.Quote(s) + "?"
	}
	return ""
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "start":
		err = serve(conf.ProfileStart, rest, stdout, stderr)
	case "start-dev":
		err = serve(conf.ProfileDev, rest, stdout, stderr)
	case "show-config":
		err = showConfig(rest, stdout, stderr)
	case "plugins":
		if len(rest) == 0 || rest[0] != "list" {
			fmt.Fprint(stderr, "Usage: sessiond plugins list [start|start-dev] [options]\n")
			return 2
		}
		err = pluginsList(rest[1:], stdout, stderr)
	case "plugin":
		switch {
		case len(rest) > 0 && rest[0] == "new":
			err = pluginNew(rest[1:], stdout, stderr)
			var usage usageError
			if errors.As(err, &usage) {
				fmt.Fprintf(stderr, "sessiond plugin new: %v\n", err)
				return 2
			}
		case len(rest) == 3 && rest[0] == "serve":
			// Hidden: how the host runs a built-in provider as a plugin process.
			err = servePlugin(rest[1], rest[2])
		default:
			fmt.Fprintf(stderr, "Usage: sessiond plugin new <spi> <name> [--dir D] [--module M]%s\n", didYouMean(strings.Join(rest[:min(len(rest), 1)], ""), []string{"new"}))
			return 2
		}
	case "config":
		if len(rest) < 1 || rest[0] != "reference" {
			fmt.Fprint(stderr, "Usage: sessiond config reference [options]\n")
			return 2
		}
		err = configReference(rest[1:], stdout, stderr)
	case "admin":
		return adminMain(rest, stdout, stderr, os.Environ())
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "sessiond %s\n", version)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "sessiond: unknown command %q%s\n\n%s", cmd, didYouMean(cmd, commands), usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessiond: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(stderr io.Writer, args []string) hclog.Logger {
	// The level and format are configuration too, but the logger must exist before the
	// configuration is loaded (loading logs), so peek at them here; conf validates them.
	level, json := "info", false
	for _, e := range conf.Peek(args, os.Environ(), "log-level", "log-format") {
		switch e.Key {
		case "log-level":
			level = e.Value
		case "log-format":
			json = e.Value == "json"
		}
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "sessiond",
		Level:      hclog.LevelFromString(level),
		Output:     stderr,
		JSONFormat: json,
	})
}

func serve(profile conf.Profile, args []string, stdout, stderr io.Writer) error {
	log := newLogger(stderr, args)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the sessiond binary: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	rt, err := runtime.Start(ctx, log, runtime.Options{
		Profile: profile, Args: args, Environ: os.Environ(), Executable: exe, Stdout: stdout,
	})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
	case err := <-rt.Done():
		log.Error("http server stopped", "error", err)
	}
	return rt.Stop(context.Background())
}

// profileArg takes a leading profile word (start or start-dev) off the arguments of
// show-config and plugins list; without one the profile is start's.
func profileArg(args []string) (conf.Profile, []string) {
	if len(args) > 0 {
		switch p := conf.Profile(args[0]); p {
		case conf.ProfileStart, conf.ProfileDev:
			return p, args[1:]
		}
	}
	return conf.ProfileStart, args
}

func showConfig(args []string, stdout, stderr io.Writer) error {
	profile, args := profileArg(args)
	loaded, err := conf.Load(profile, args, os.Environ())
	if err != nil {
		return err
	}
	// Registered plugins are asked for their options, so theirs show typed and defaulted too.
	third, err := thirdPartyDescriptors(loaded, stderr, false)
	if err != nil {
		return err
	}
	settings, err := loaded.Resolve(append(runtime.BuiltinDescriptors(), third...))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, e := range settings.Effective() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Key, e.Value, e.Source)
	}
	// What start would warn about (options that do nothing), on stderr: the table stays
	// what a script reads.
	for _, w := range settings.Warnings {
		fmt.Fprintf(stderr, "warning: %s (set by %s)\n", w.Msg, w.Source)
	}
	return tw.Flush()
}

// pluginsList starts every selected provider under the profile (start, or start-dev when
// named) and prints its state. A provider that starts but cannot be configured (start's
// PostgreSQL store on a machine without the database) is listed all the same, with the
// reason below the table: the listing is about the processes, and `start` would refuse.
func pluginsList(args []string, stdout, stderr io.Writer) error {
	profile, args := profileArg(args)
	log := newLogger(stderr, args)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx := context.Background()
	h, configErrs, err := runtime.InspectProviders(ctx, log, runtime.Options{
		Profile: profile, Args: args, Environ: os.Environ(), Executable: exe,
	})
	if err != nil {
		return err
	}
	defer h.Stop(ctx)
	defer func() {
		for _, name := range slices.Sorted(maps.Keys(configErrs)) {
			fmt.Fprintf(stderr, "sessiond: %s: the provider runs but is not configured, so %s would refuse to run: %v\n", name, profile, configErrs[name])
		}
	}()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPI\tPROVIDER\tVERSION\tPROTOCOL\tMODE\tPID\tSTATE\tSHA256\tCOMMAND")
	for _, s := range h.Status() {
		mode, pid, proto := "plugin", fmt.Sprint(s.PID), fmt.Sprint(s.Protocol)
		if s.InProcess {
			mode, pid, proto = "in-process", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.SPI, s.ID, s.Version, proto, mode, pid, s.State, orDash(s.SHA256), orDash(s.Command))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func servePlugin(spiName, id string) error {
	f, ok := builtin.Lookup(spiName, id)
	if !ok {
		return errors.New("no built-in provider " + spiName + "/" + id)
	}
	sdk.Serve(f.New(sdk.Logger(spiName + "." + id)))
	return nil
}
