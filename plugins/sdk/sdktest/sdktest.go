// Package sdktest runs a provider under test the way sessiond runs it: as a plugin process,
// checked by SHA-256, handshaken over go-plugin and supervised by sessiond's own plugin
// host, so that a plugin author's tests, the conformance suite among them, cross the same
// process boundary as production.
//
// Two kinds of process can be started. The test binary itself, when the package's TestMain
// hands its providers to Main:
//
//	func TestMain(m *testing.M) { sdktest.Main(m, func(log hclog.Logger) spi.Provider { return mystore.New(log) }) }
//
//	func TestConformanceThroughPlugin(t *testing.T) {
//		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
//			return sdktest.Provider[usersessions.Provider](t, sdktest.Plugin{Config: spi.Config{"url": url}})
//		})
//	}
//
// The suites of the other three SPIs configure the provider themselves; Unconfigured opens
// one for them.
//
// Or a plugin binary built with go build, named by Plugin.Command: the very file an
// operator registers.
package sdktest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/spi"
)

// serveEnv tells a test binary started by Start to serve "<spi>/<id>" instead of testing.
const serveEnv = "SESSIOND_SDKTEST_SERVE"

// Factory builds a provider. It must not do I/O: Main builds every factory's provider to
// find the one asked for.
type Factory = func(log hclog.Logger) spi.Provider

var (
	mainMu    sync.Mutex
	factories []Factory
)

// Main is the TestMain of a package whose test binary doubles as its plugin. In a process
// that Start started, it serves the provider asked for and never returns; otherwise it
// runs the tests and exits with their status.
func Main(m *testing.M, providers ...Factory) {
	if want := os.Getenv(serveEnv); want != "" {
		for _, f := range providers {
			p := f(sdk.Logger(want))
			if d := p.Describe(); d.SPI+"/"+d.ID == want {
				sdk.Serve(p) // never returns
			}
		}
		fmt.Fprintf(os.Stderr, "sdktest: none of the providers given to Main is %s\n", want)
		os.Exit(2)
	}
	mainMu.Lock()
	factories = providers
	mainMu.Unlock()
	os.Exit(m.Run())
}

// Plugin says which plugin process to start and how to configure it.
type Plugin struct {
	// Command is the plugin binary. Empty: the running test binary, whose TestMain must
	// call Main.
	Command string
	// SPI and ID name the provider, as sessiond's --spi-<spi>-<id>-… keys do. With an empty
	// Command they may be left empty when Main was given exactly one provider.
	SPI, ID string
	// SHA256 is the digest the binary is registered with; empty means the file's own.
	SHA256 string
	// Args and Env are extra arguments and environment of the process. Of the test's own
	// environment only what sessiond passes every plugin (PATH, HOME, the locale, …)
	// reaches it, as in production: give the provider its settings in Config.
	Args, Env []string
	// Config is the provider's option values. Options not in it get their declared
	// default, as sessiond hands them over; give values in the form sessiond normalises
	// them to (bools true/false, durations in Go syntax).
	Config spi.Config
	// NodeID is passed under spi.HostNodeID ("sdktest" when empty).
	NodeID string
	// LogLevel is the host's log level, which the plugin inherits (hclog.Info when
	// NoLevel).
	LogLevel hclog.Level
	// Unconfigured leaves Configure to the test (through Process.Configure).
	Unconfigured bool
}

// Process is a started plugin as sessiond's host sees it. It is stopped when the test
// that started it ends.
type Process struct {
	plugin *host.Plugin
	host   *host.Host
	logs   *logBuffer
	cfg    spi.Config
}

// Provider returns the host's client of the provider; type-assert it to the SPI's
// interface, or use the Provider function.
func (p *Process) Provider() spi.Provider { return p.plugin.Provider() }

// Descriptor is what the plugin said about itself when it started.
func (p *Process) Descriptor() spi.Descriptor { return p.plugin.Descriptor() }

// Config is what the provider was (or, with Unconfigured, would be) configured with.
func (p *Process) Config() spi.Config { return p.cfg }

// Configure configures the provider through the host, as sessiond does at start.
func (p *Process) Configure(ctx context.Context, cfg spi.Config) error {
	return p.plugin.Configure(ctx, cfg)
}

// Status is the plugin's line of `sessiond plugins list`: version, protocol, pid, state,
// checksum.
func (p *Process) Status() host.Status {
	for _, s := range p.host.Status() {
		d := p.plugin.Descriptor()
		if s.SPI == d.SPI && s.ID == d.ID {
			return s
		}
	}
	return host.Status{}
}

// Log returns the host's log so far, with the lines the plugin logged through sdk.Logger
// (named "<spi>.<id>", at their own level).
func (p *Process) Log() string { return p.logs.String() }

// Start starts the plugin and configures it, failing the test when it cannot. The host's
// log is printed when the test fails.
func Start(t testing.TB, pl Plugin) *Process {
	t.Helper()
	p, err := TryStart(t, pl)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Provider starts the plugin like Start and returns its provider as T, the interface of
// its SPI (usersessions.Provider, revocationpush.Provider, …).
func Provider[T spi.Provider](t testing.TB, pl Plugin) T {
	t.Helper()
	p := Start(t, pl)
	v, ok := p.Provider().(T)
	if !ok {
		var want T
		t.Fatalf("the %s/%s plugin's provider is a %T, not a %T", p.Descriptor().SPI, p.Descriptor().ID, p.Provider(), &want)
	}
	return v
}

// Unconfigured starts the plugin like Start but leaves Configure to the caller, and returns
// its provider as T with the configuration sessiond would give it (declared defaults, then
// pl.Config): what the conformance suites of offline-preload, cache-lifespan and
// revocation-push open, since they configure the provider themselves.
//
//	revocationpushtest.Run(t, func(t *testing.T) (revocationpush.Provider, spi.Config) {
//		return sdktest.Unconfigured[revocationpush.Provider](t, sdktest.Plugin{Command: bin})
//	})
func Unconfigured[T spi.Provider](t testing.TB, pl Plugin) (T, spi.Config) {
	t.Helper()
	pl.Unconfigured = true
	p := Start(t, pl)
	v, ok := p.Provider().(T)
	if !ok {
		var want T
		t.Fatalf("the %s/%s plugin's provider is a %T, not a %T", p.Descriptor().SPI, p.Descriptor().ID, p.Provider(), &want)
	}
	return v, p.Config()
}

// TryStart is Start that returns the error instead of failing the test: for tests of a
// plugin that sessiond must refuse. Whatever it started is stopped when the test ends.
func TryStart(t testing.TB, pl Plugin) (*Process, error) {
	t.Helper()
	p, stop, err := start(pl)
	t.Cleanup(func() { stop(t) })
	return p, err
}

// Prestart returns a function that hands each caller a plugin process of its own, started
// and configured ahead of time by workers goroutines so that start-ups overlap with the
// tests that use them: the conformance suite opens a fresh provider for every one of its
// checks. next says what to start each time (a fresh key prefix, say); it is called from
// the workers. A process is stopped when the test it was handed to ends; those never
// handed out are stopped when t ends.
func Prestart(t testing.TB, workers int, next func() Plugin) func(t testing.TB) *Process {
	type started struct {
		p    *Process
		stop func(testing.TB)
		err  error
	}
	ready := make(chan started)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				var s started
				s.p, s.stop, s.err = start(next())
				select {
				case ready <- s:
				case <-quit:
					s.stop(t)
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		close(quit)
		wg.Wait()
	})
	return func(t testing.TB) *Process {
		t.Helper()
		s := <-ready
		t.Cleanup(func() { s.stop(t) })
		if s.err != nil {
			t.Fatal(s.err)
		}
		return s.p
	}
}

// start starts and, unless pl says otherwise, configures the plugin. stop ends whatever
// was started, and prints the host's log when the test it is given failed; it is never nil.
func start(pl Plugin) (*Process, func(testing.TB), error) {
	spec, err := specFor(pl)
	if err != nil {
		return nil, func(testing.TB) {}, err
	}
	level := pl.LogLevel
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	logs := &logBuffer{}
	h := host.New(hclog.New(&hclog.LoggerOptions{Name: "sessiond", Level: level, Output: logs}), host.Options{})
	stop := func(t testing.TB) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stopping the %s/%s plugin: %v", spec.SPI, spec.ID, err)
		}
		if t.Failed() {
			t.Logf("host log of the %s/%s plugin:\n%s", spec.SPI, spec.ID, logs.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hp, err := h.Start(ctx, spec)
	if err != nil {
		return nil, stop, err
	}
	p := &Process{plugin: hp, host: h, logs: logs, cfg: spi.Config{}}
	for _, o := range hp.Descriptor().Options {
		if o.Default != "" {
			p.cfg[o.Name] = o.Default
		}
	}
	for k, v := range pl.Config {
		p.cfg[k] = v
	}
	p.cfg[spi.HostNodeID] = pl.NodeID
	if pl.NodeID == "" {
		p.cfg[spi.HostNodeID] = "sdktest"
	}
	if !pl.Unconfigured {
		if err := hp.Configure(ctx, p.cfg); err != nil {
			return nil, stop, err
		}
	}
	return p, stop, nil
}

// specFor is the host's Spec of pl.
func specFor(pl Plugin) (host.Spec, error) {
	spec := host.Spec{SPI: pl.SPI, ID: pl.ID, Command: pl.Command, SHA256: pl.SHA256, Args: pl.Args,
		// A -race binary otherwise sleeps a second at exit, and every stop would wait for it.
		Env: append([]string{"GORACE=atexit_sleep_ms=0"}, pl.Env...)}
	if spec.Command == "" {
		exe, err := os.Executable()
		if err != nil {
			return spec, err
		}
		spec.Command, spec.Self = exe, true
		// Should the serve variable not reach the child, it runs no tests.
		spec.Args = append([]string{"-test.run=^$"}, spec.Args...)
		if spec.SPI == "" || spec.ID == "" {
			mainMu.Lock()
			fs := factories
			mainMu.Unlock()
			if len(fs) != 1 {
				return spec, fmt.Errorf("sdktest: Plugin names no SPI and ID, and TestMain gave sdktest.Main %d providers (want exactly one)", len(fs))
			}
			d := fs[0](hclog.NewNullLogger()).Describe()
			spec.SPI, spec.ID = d.SPI, d.ID
		}
		spec.Env = append(spec.Env, serveEnv+"="+spec.SPI+"/"+spec.ID)
	}
	if spec.SPI == "" || spec.ID == "" {
		return spec, fmt.Errorf("sdktest: Plugin %s needs an SPI and an ID", spec.Command)
	}
	if spec.SHA256 == "" && !spec.Self { // the host takes its own executable's digest
		sum, err := host.FileSHA256(spec.Command)
		if err != nil {
			return spec, fmt.Errorf("sdktest: %w", err)
		}
		spec.SHA256 = sum
	}
	return spec, nil
}

// logBuffer collects the host's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
