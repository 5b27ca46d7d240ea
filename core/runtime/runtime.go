// Package runtime wires sessiond together: it reads the configuration, starts each SPI's
// provider (in-process or as a verified plugin process), loads the realms and serves HTTP.
//
// It owns every long-lived goroutine of the daemon and stops them, and the plugin processes,
// on shutdown.
package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/core/preload"
	"github.com/sessiond/sessiond/core/push"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/core/ssf"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/builtin"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Providers are the configured provider of each SPI, as the core calls them.
type Providers struct {
	plugins map[string]*host.Plugin
}

// Get returns the provider of an SPI.
func (p Providers) Get(spiName string) spi.Provider { return p.plugins[spiName].Provider() }

// Runtime is a started sessiond.
type Runtime struct {
	log       hclog.Logger
	settings  *conf.Settings
	host      *host.Host
	providers Providers
	realms    *realm.Realms
	// notices are generated credentials for the operator's terminal, shown once Start
	// serves (Options.Stdout).
	notices []string
	// public serves the API; management, under start, health and metrics (listen.go).
	public, management *listener
	serveDone          chan error
	readTimeout        time.Duration
	cache              *cache.Cache
	writer             *groupcommit.Writer
	store              usersessions.Provider // the sessions' store as the core sees it
	// storeReady is the store's readiness check, run at most once per readinessEvery.
	storeReady *cachedCheck
	// writeProbe is the store's own probe of whether it can write, when it has one.
	writeProbe usersessions.WriteProber
	preload    *preload.Runner      // the offline preload, run once at start-up
	policies   *revocation.Policies // the not-before policies in force
	push       *push.Outbox         // the revocation-push outbox and its retry worker
	ssf        *ssf.Transmitter     // the Shared Signals transmitter; nil unless the ssf provider pushes
	obs        observability        // metrics and event log

	// bg is the context of the runtime's background work (change feed, cleanup); Stop
	// cancels it and waits for every goroutine started with goBackground. The event log's
	// writer is not background work: it stops after it (obs.stopEventLog).
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

// goBackground runs fn in a goroutine the runtime owns until Stop.
func (rt *Runtime) goBackground(fn func(ctx context.Context)) {
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		fn(rt.bg)
	}()
}

// stopBackground ends the background work and waits for it.
func (rt *Runtime) stopBackground() {
	rt.stopBg()
	rt.wg.Wait()
}

// Options are what the command line hands the runtime besides configuration.
type Options struct {
	Profile conf.Profile
	Args    []string
	Environ []string
	// Executable is the sessiond binary that serves built-in providers as plugins
	// ("sessiond plugin serve <spi> <id>").
	Executable string
	// Stdout receives what must reach the operator once, outside the log (start-dev's
	// generated credentials).
	Stdout io.Writer

	// Seams for this package's tests: wrapStore wraps the user-sessions provider before
	// anything uses it (to count or break its calls); now is the clock of the session
	// service, tokens and the cache.
	wrapStore func(usersessions.Provider) usersessions.Provider
	now       func() time.Time
	// readTimeout replaces httpapi.ReadTimeout, so that a test of a slow sender is short.
	readTimeout time.Duration
	// serving applies the profile's serving rules to the configuration: set by Start,
	// not by plugins list.
	serving bool
	// checkFirst, when set, runs on the configuration before any provider process starts:
	// Start reads the realm files there, so that a mistake in one is reported at once and
	// not after the plugins have started.
	checkFirst func(*conf.Settings) error
}

// Start loads the configuration, starts every provider and begins serving HTTP. On error
// everything already started is stopped again.
func Start(ctx context.Context, log hclog.Logger, opts Options) (rt *Runtime, err error) {
	opts.serving = true
	var (
		realms      *realm.Realms
		realmNotice string
	)
	opts.checkFirst = func(settings *conf.Settings) (err error) {
		realms, realmNotice, err = loadRealms(log, settings, opts.Profile)
		return err
	}
	settings, h, plugins, err := StartProviders(ctx, log, opts)
	if err != nil {
		return nil, err
	}
	rt = &Runtime{log: log, settings: settings, host: h, providers: Providers{plugins: plugins},
		readTimeout: cmp.Or(opts.readTimeout, httpapi.ReadTimeout)}
	rt.bg, rt.stopBg = context.WithCancel(context.WithoutCancel(ctx))
	started := rt // rt is nil by the time a failure's deferred cleanup runs
	defer func() {
		if err != nil {
			started.stopBackground()
			_ = h.Stop(context.Background())
			started.stopEventLog(eventLogDrain)
		}
	}()
	if opts.Profile == conf.ProfileDev {
		log.Info("start-dev relaxes start's rules: plain HTTP allowed (here on " + settings.HTTPHost + "), no hostname needed (tokens carry the bound address), development credentials allowed, health and metrics on the one port")
	}

	rt.realms = realms
	if realmNotice != "" {
		rt.notices = append(rt.notices, realmNotice)
	}
	if err = rt.openListeners(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			started.closeListeners()
		}
	}()
	api, err := rt.wire(opts, rt.issuerBase(opts.Profile))
	if err != nil {
		return nil, err
	}
	rt.awaitPolicies(ctx)
	rt.serveDone = make(chan error, 2)
	rt.serve(api)
	if rt.management != nil {
		log.Info("management interface (health, metrics)", "address", rt.ManagementURL())
	}
	if settings.Listen.ProxyHeaders != "" {
		log.Info("client address and scheme taken from the proxy's headers", "proxy-headers", settings.Listen.ProxyHeaders,
			"proxy-trusted-addresses", len(settings.Listen.ProxyTrusted))
	}
	log.Info("sessiond started", "address", rt.public.url(), "node-id", settings.NodeID)
	// Generated secrets are shown only now that sessiond serves: a start that failed (a
	// port in use) must not have printed secrets nobody can use.
	if opts.Stdout != nil {
		for _, n := range rt.notices {
			fmt.Fprintln(opts.Stdout, n)
		}
	}
	rt.notices = nil
	return rt, nil
}

// Addr is the address the public listener listens on.
func (rt *Runtime) Addr() net.Addr { return rt.public.ln.Addr() }

// URL is the public listener's base URL as bound (https:// with TLS material).
func (rt *Runtime) URL() string { return rt.public.url() }

// ManagementURL is the management interface's base URL, its relative path included; ""
// when health and metrics are served on the public listener (start-dev).
func (rt *Runtime) ManagementURL() string {
	if rt.management == nil {
		return ""
	}
	return rt.management.url() + strings.TrimSuffix(rt.settings.Listen.ManagementPath, "/")
}

// Done receives an HTTP server's error when one stops serving on its own.
func (rt *Runtime) Done() <-chan error { return rt.serveDone }

// readinessProbe bounds the store round trip of a readiness check.
const readinessProbe = 2 * time.Second

// Checks implements httpapi.Readiness: every provider process is running, and the session
// store answers (a plugin can be up while its database is not). The store is asked at most
// once per readinessEvery, whatever the probe rate; the other checks read memory.
func (rt *Runtime) Checks(ctx context.Context) []httpapi.Check {
	checks := []httpapi.Check{}
	if rt.storeReady != nil {
		checks = append(checks, rt.storeReady.get(ctx))
	}
	if rt.policies != nil {
		checks = append(checks, rt.policiesCheck())
	}
	if st := rt.preloadStatus(); st != nil && st.State != preload.Lazy {
		// DOWN with the progress while offline sessions are preloaded; UP once done, or
		// once a failed preload fell back to lazy loading, with the reason. Lazy loading
		// has nothing to report.
		c := httpapi.Check{Name: "offline preload", Status: "UP", Reason: st.String()}
		if !st.Ready() {
			c.Status = "DOWN"
		}
		checks = append(checks, c)
	}
	for _, st := range rt.host.Status() {
		c := httpapi.Check{Name: "provider " + st.SPI + "/" + st.ID, Status: "UP"}
		if st.State != host.StateRunning && st.State != host.StateInProcess {
			c.Status = "DOWN"
			c.Reason = string(st.State)
			if st.LastError != "" {
				c.Reason += ": " + st.LastError
			}
		}
		checks = append(checks, c)
	}
	return checks
}

// storeCheck is the store's readiness: one read of a key no session has. It reaches the
// store, never the cache; offline, so that it reaches the database even with online
// sessions kept in memory.
func (rt *Runtime) storeCheck(ctx context.Context) httpapi.Check {
	c := httpapi.Check{Name: storeCheckName, Status: "UP"}
	ctx, cancel := context.WithTimeout(ctx, readinessProbe)
	defer cancel()
	if _, err := rt.store.Get(ctx, []usersessions.Key{{RealmID: "sessiond.readiness", ID: "probe", Offline: true}}); err != nil {
		c.Status, c.Reason = "DOWN", err.Error()
		return c
	}
	// A database can answer reads and not writes (a standby, a fenced primary, commits
	// waiting for a synchronous standby that is gone): a node that cannot write cannot
	// open or refresh a session, so it is not ready.
	if rt.writeProbe != nil {
		if err := rt.writeProbe.ProbeWrite(ctx); err != nil {
			c.Status, c.Reason = "DOWN", "cannot write: "+err.Error()
		}
	}
	return c
}

const storeCheckName = "user-sessions store"

func (rt *Runtime) preloadStatus() *preload.Status {
	if rt.preload == nil {
		return nil
	}
	st := rt.preload.Status()
	return &st
}

// Stop shuts down HTTP (letting requests in flight finish), then the background work, then
// the providers, and the event log last, so that it takes the events of all the rest.
func (rt *Runtime) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, rt.settings.ShutdownTimeout)
	defer cancel()
	var errs []error
	for _, l := range []*listener{rt.management, rt.public} {
		if l != nil {
			errs = append(errs, l.server.Shutdown(ctx))
		}
	}
	err := errors.Join(errs...)
	rt.stopBackground()
	if rt.writer != nil {
		rt.writer.Close() // answers every write already taken before the store goes
	}
	// A provider that cannot be closed politely has been killed by now; that is worth a
	// warning, not a failed shutdown.
	if perr := rt.host.Stop(ctx); perr != nil {
		rt.log.Warn("providers did not all close cleanly", "error", perr)
	}
	limit := eventLogDrain
	if deadline, ok := ctx.Deadline(); ok {
		limit = max(limit, time.Until(deadline))
	}
	rt.stopEventLog(limit)
	rt.log.Info("sessiond stopped")
	return err
}

// StartProviders resolves the configuration and starts the selected provider of every SPI.
// It is the part of Start that `plugins list` and `show-config` need too.
func StartProviders(ctx context.Context, log hclog.Logger, opts Options) (*conf.Settings, *host.Host, map[string]*host.Plugin, error) {
	settings, h, plugins, _, err := startProviders(ctx, log, opts, false)
	return settings, h, plugins, err
}

// InspectProviders starts the selected provider of every SPI, as StartProviders does, for
// `plugins list`: a provider that starts but cannot be configured (its database is not
// there, as on a fresh machine) is reported in configErrs, by SPI, rather than failing the
// listing. Stop the host when done.
func InspectProviders(ctx context.Context, log hclog.Logger, opts Options) (h *host.Host, configErrs map[string]error, err error) {
	_, h, _, configErrs, err = startProviders(ctx, log, opts, true)
	return h, configErrs, err
}

func startProviders(ctx context.Context, log hclog.Logger, opts Options, inspect bool) (*conf.Settings, *host.Host, map[string]*host.Plugin, map[string]error, error) {
	fail := func(err error) (*conf.Settings, *host.Host, map[string]*host.Plugin, map[string]error, error) {
		return nil, nil, nil, nil, err
	}
	loaded, err := conf.Load(opts.Profile, opts.Args, opts.Environ)
	if err != nil {
		return fail(err)
	}
	if opts.serving {
		loaded = loaded.ForServing()
	}
	regs, err := loaded.Registrations()
	if err != nil {
		return fail(err)
	}
	// A first resolution with the built-ins alone settles the server options the host
	// needs; third-party plugins' own keys wait, unchecked, for their descriptors.
	descs := builtinDescriptors()
	settings, err := loaded.Resolve(descs)
	if err != nil {
		return fail(err)
	}
	if opts.checkFirst != nil {
		if err := opts.checkFirst(settings); err != nil {
			return fail(err)
		}
	}
	h := host.New(log.Named("plugins"), host.Options{
		SocketDir:      settings.PluginSocketDir,
		InitialBackoff: settings.PluginRestartBackoff,
	})
	ok := false
	defer func() {
		if !ok {
			_ = h.Stop(context.Background())
		}
	}()

	// Third-party plugins must be running before their options can be validated: their
	// descriptor, which lists the options, comes over the plugin protocol.
	thirdParty := map[string]*host.Plugin{}
	for _, r := range regs.ThirdParty {
		if _, isBuiltin := builtin.Lookup(r.SPI, r.ID); isBuiltin {
			return fail(fmt.Errorf("spi-%s-%s-command: %q is a built-in provider of %s; a plugin needs its own id", r.SPI, r.ID, r.ID, r.SPI))
		}
		if regs.Selected[r.SPI] != r.ID {
			continue // registered but not selected: nothing to start
		}
		p, err := h.Start(ctx, host.Spec{SPI: r.SPI, ID: r.ID, Command: r.Command, SHA256: r.SHA256, Dir: settings.PluginDir})
		if err != nil {
			return fail(explainCommand(settings, r, err))
		}
		thirdParty[r.SPI] = p
		descs = append(descs, p.Descriptor())
	}
	if len(thirdParty) > 0 {
		if settings, err = loaded.Resolve(descs); err != nil {
			return fail(err)
		}
	}
	if opts.serving {
		for _, w := range settings.Warnings {
			log.Warn("configuration: "+w.Msg, "key", w.Key, "source", w.Source.String())
		}
	}

	plugins := map[string]*host.Plugin{}
	// Each provider is configured while the next ones start: the store's Configure
	// (connect, check the migrations) takes as long as starting a plugin process, and a
	// start-up should be ready in well under a second. Providers do not depend on one
	// another. Every Configure has returned before StartProviders does (this defer runs
	// before the one that stops the host on failure).
	var configures sync.WaitGroup
	defer configures.Wait()
	configErrs := make([]error, len(spi.Names()))
	for i, spiName := range spi.Names() {
		ss := settings.SPIs[spiName]
		ps := ss.Providers[ss.Provider]
		p := thirdParty[spiName]
		if p == nil {
			f, found := builtin.Lookup(spiName, ss.Provider)
			if !found {
				return fail(fmt.Errorf("spi-%s-provider: no provider %q", spiName, ss.Provider))
			}
			spec := host.Spec{SPI: spiName, ID: ss.Provider}
			if ps.InProcess {
				spec.InProcess = f.New(log.Named(spiName + "." + ss.Provider))
			} else {
				// Self: the host runs the file this sessiond was started from, even once an
				// upgrade has replaced opts.Executable, and takes its digest once.
				spec.Command, spec.Self = opts.Executable, true
				spec.Args = []string{"plugin", "serve", spiName, ss.Provider}
			}
			if p, err = h.Start(ctx, spec); err != nil {
				return fail(err)
			}
		}
		cfg := spi.Config{spi.HostNodeID: settings.NodeID}
		for k, v := range ps.Config {
			cfg[k] = v
		}
		configures.Add(1)
		go func() {
			defer configures.Done()
			if err := p.Configure(ctx, cfg); err != nil {
				configErrs[i] = fmt.Errorf("configure %s provider %q: %w%s", spiName, ss.Provider, err, optionSources(settings, spiName, ss.Provider, err))
			}
		}()
		plugins[spiName] = p
	}
	configures.Wait()
	failed := map[string]error{}
	for i, err := range configErrs {
		if err == nil {
			continue
		}
		if !inspect {
			return fail(err)
		}
		failed[spi.Names()[i]] = err
	}
	ok = true
	return settings, h, plugins, failed, nil
}

func builtinDescriptors() []spi.Descriptor {
	var descs []spi.Descriptor
	for _, f := range builtin.Catalog() {
		descs = append(descs, f.New(hclog.NewNullLogger()).Describe())
	}
	return descs
}

// BuiltinDescriptors lists every built-in provider's descriptor, for the configuration
// reference.
func BuiltinDescriptors() []spi.Descriptor { return builtinDescriptors() }
