// Package host starts, verifies and supervises sessiond's provider plugins: it checks each
// executable's SHA-256, runs it under go-plugin over gRPC, and restarts it when it dies.
//
// A plugin binary is opened once; its digest is taken of that open file, and the process
// is started from that same file (on Linux through /proc/self/fd), so swapping the path
// between check and exec runs nothing unverified. A binary, or a folder above it, that
// anyone but root or sessiond's user could replace is refused. A plugin's environment is
// built from a short list (pluginEnv), so sessiond's credentials never reach it.
//
// A Plugin's Provider stays the same value across restarts; while the process is down its
// calls fail at once with errors wrapping spi.ErrUnavailable. A killed sessiond takes its
// plugins with it (Pdeathsig, see spawner).
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/spi"
)

// Spec says how to run one provider.
type Spec struct {
	SPI, ID   string
	InProcess spi.Provider // non-nil: run in-process, no subprocess
	Command   string       // executable path (built-ins: the sessiond binary itself)
	Args      []string     // built-ins: []string{"plugin", "serve", SPI, ID}
	SHA256    string       // hex; required with Command unless Self; mismatch refuses to start
	// Env is the process's environment besides the few variables of sessiond's own that
	// pass to every plugin (hostEnv).
	Env []string
	// Dir is the plugin folder (plugin-dir) that Command was registered in. When Command
	// lies in it, the folders from Dir down to the binary are checked and a symlink may
	// not lead out of it; otherwise the binary's own folder is the plugin folder.
	Dir string
	// Self says that Command is this process's own executable: sessiond serving its
	// built-ins, a test binary doubling as its plugin. The host then runs the very file
	// this process was started from (on Linux /proc/self/exe, whatever an upgrade did to
	// Command since), checks no folders, and takes that file's digest when SHA256 is empty.
	Self bool
}

// Options tunes the host. Zero fields take the defaults in parentheses; tests shorten the
// timings.
type Options struct {
	// SocketDir is where plugins put their unix sockets (os.TempDir()). A socket path is
	// limited to about 108 bytes, so keep it short.
	SocketDir string
	// StartTimeout bounds the wait for a plugin's handshake (20 s).
	StartTimeout time.Duration
	// ExitPoll is how often the supervisor checks for an exited process (100 ms).
	ExitPoll time.Duration
	// PingInterval is how often a live plugin is health-checked (5 s); PingTimeout bounds
	// one check (5 s). A failed check counts as the plugin being down.
	PingInterval, PingTimeout time.Duration
	// InitialBackoff is the delay before the first restart (100 ms); it doubles with each
	// further failure up to MaxBackoff (30 s).
	InitialBackoff, MaxBackoff time.Duration
	// A process has proved itself once it answered a call without error, or ran for
	// StableAfter (60 s); its failure starts the backoff afresh and does not count
	// towards a crash loop.
	StableAfter time.Duration
	// More than CrashLoopRestarts restarts within CrashLoopWindow (5 in 60 s) of processes
	// that never proved themselves is a crash loop: the plugin is reported as such and
	// restarted only every MaxBackoff, until a process proves itself.
	CrashLoopRestarts int
	CrashLoopWindow   time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.SocketDir == "" {
		o.SocketDir = os.TempDir()
	}
	def(&o.StartTimeout, 20*time.Second)
	def(&o.ExitPoll, 100*time.Millisecond)
	def(&o.PingInterval, 5*time.Second)
	def(&o.PingTimeout, 5*time.Second)
	def(&o.InitialBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.StableAfter, 60*time.Second)
	def(&o.CrashLoopWindow, 60*time.Second)
	if o.CrashLoopRestarts <= 0 {
		o.CrashLoopRestarts = 5
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Host owns the plugins it started: their processes, supervisors and the thread that
// forks them. Stop releases all of it.
type Host struct {
	log     hclog.Logger
	opts    Options
	spawner *spawner

	ctx    context.Context // cancelled by Stop; ends supervisors and their starts
	cancel context.CancelFunc

	mu        sync.Mutex
	plugins   []*Plugin
	socketDir string         // created on the first subprocess start
	starting  sync.WaitGroup // Starts in flight, so Stop can wait for them
	stopped   bool
	stopDone  chan struct{} // closed when the first Stop has finished, with stopErr set
	stopErr   error

	selfSHA256 func() (string, error) // digest of this process's executable, taken once
}

// New returns a Host that logs through log (plugins log through log.Named("<spi>.<id>")).
func New(log hclog.Logger, opts Options) *Host {
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{log: log, opts: opts.withDefaults(), spawner: newSpawner(),
		ctx: ctx, cancel: cancel, stopDone: make(chan struct{}),
		selfSHA256: sync.OnceValues(func() (string, error) {
			path, err := ownExecutable()
			if err != nil {
				return "", err
			}
			return FileSHA256(path)
		}),
	}
}

// Start runs the provider s describes and returns once it is up, has handshaken and has
// described itself as s.SPI/s.ID. A subprocess is then supervised until Stop. While it
// starts, Status lists it as starting.
func (h *Host) Start(ctx context.Context, s Spec) (*Plugin, error) {
	p, err := h.newPlugin(s)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil, fmt.Errorf("provider %s/%s: %w", s.SPI, s.ID, errStopped)
	}
	for _, q := range h.plugins {
		if q.spec.SPI == s.SPI && q.spec.ID == s.ID {
			h.mu.Unlock()
			return nil, fmt.Errorf("provider %s/%s is already started", s.SPI, s.ID)
		}
	}
	h.plugins = append(h.plugins, p)
	h.starting.Add(1)
	h.mu.Unlock()
	defer h.starting.Done()

	var proc *process
	if !p.inProcess() {
		proc, err = h.launch(ctx, p.spec, p.log)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil:
		h.plugins = slices.DeleteFunc(h.plugins, func(q *Plugin) bool { return q == p })
		return nil, err
	case h.stopped:
		// Stop ran while this one started and waits for it: leave nothing running.
		if proc != nil {
			proc.kill(context.Background())
		}
		return nil, fmt.Errorf("provider %s/%s: %w", s.SPI, s.ID, errStopped)
	case proc != nil:
		p.mu.Lock()
		p.desc = proc.desc
		p.mu.Unlock()
		p.setUp(proc)
		p.supervised.Add(1)
		go p.supervise()
	}
	return p, nil
}

// newPlugin checks s and builds its Plugin, not yet started.
func (h *Host) newPlugin(s Spec) (*Plugin, error) {
	if s.SPI == "" || s.ID == "" {
		return nil, fmt.Errorf("plugin spec needs an SPI and an ID (got %q/%q)", s.SPI, s.ID)
	}
	p := &Plugin{host: h, spec: s, log: h.log.Named(s.SPI + "." + s.ID)}
	if s.InProcess != nil {
		p.desc = s.InProcess.Describe()
		if err := checkDescriptor(s, p.desc); err != nil {
			return nil, err
		}
		p.provider, p.state = s.InProcess, StateInProcess
		return p, nil
	}
	if s.Command == "" {
		return nil, fmt.Errorf("provider %s/%s: spec has neither InProcess nor Command", s.SPI, s.ID)
	}
	if s.Self && s.SHA256 == "" {
		sum, err := h.selfSHA256()
		if err != nil {
			return nil, fmt.Errorf("provider %s/%s: checksum of sessiond's own executable: %w", s.SPI, s.ID, err)
		}
		s.SHA256 = sum
	}
	want, err := hex.DecodeString(s.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("provider %s/%s: SHA256 %q is not a hex SHA-256 digest", s.SPI, s.ID, s.SHA256)
	}
	p.spec.SHA256 = hex.EncodeToString(want)
	if p.spec.Command, err = resolveCommand(s.Command); err != nil {
		return nil, fmt.Errorf("provider %s/%s: %w", s.SPI, s.ID, err)
	}
	p.conn = &switchConn{name: s.SPI + "/" + s.ID}
	if p.provider, err = wire.NewClient(s.SPI, p.conn); err != nil {
		return nil, fmt.Errorf("provider %s/%s: %w", s.SPI, s.ID, err)
	}
	p.state = StateStarting
	return p, nil
}

// launch verifies, execs and handshakes one process for s (s.Command already resolved).
func (h *Host) launch(ctx context.Context, s Spec, log hclog.Logger) (*process, error) {
	fail := func(err error) (*process, error) {
		return nil, fmt.Errorf("provider %s/%s (%s): %w", s.SPI, s.ID, s.Command, err)
	}
	exe, err := openExecutable(s)
	var checksum *ChecksumError
	var unsafe *UnsafeError
	switch {
	case errors.As(err, &checksum), errors.As(err, &unsafe):
		return nil, err // they name the provider, the file and the key
	case err != nil:
		return fail(err)
	}
	defer exe.Close() // the process has its own copy once started
	socketDir, err := h.pluginSocketDir()
	if err != nil {
		return fail(err)
	}
	var defaults []string
	if s.Self {
		defaults = builtinEnv
	}
	env := pluginEnv(defaults, os.Environ(), []string{sdk.LogLevelEnv + "=" + log.GetLevel().String()}, s.Env)

	// go-plugin's own runner would exec Cmd.Path with sessiond's environment; this one
	// starts the verified file with env and go-plugin's handshake variables, which come
	// last (the magic cookie, the protocol versions, the client certificate, the socket
	// folder it made in socketDir). go-plugin's SecureConfig, a second checksum by path,
	// would check a file other than the one that runs, so it is not used.
	var cmd *exec.Cmd
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake(),
		VersionedPlugins: wire.ClientPlugins(),
		RunnerFunc: func(_ hclog.Logger, handshake *exec.Cmd, _ string) (runner.Runner, error) {
			c, err := exe.command(s.Args, append(env, handshake.Env...))
			if err != nil {
				return nil, err
			}
			cmd = c
			return newRunner(s.Command, c)
		},
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     h.opts.StartTimeout,
		Logger:           log,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: socketDir},
	})
	proc := &process{client: client}
	if err := h.spawner.do(ctx, func() error { _, err := client.Start(); return err }); err != nil {
		proc.kill(ctx)
		return fail(wire.ExplainStart(err)) // names both sides' versions when they share none
	}
	proc.cmd, proc.pid = cmd, cmd.Process.Pid
	proc.started = h.opts.Now()
	proc.protocol = client.NegotiatedVersion()
	rpc, err := client.Client()
	if err != nil {
		proc.kill(ctx)
		return fail(err)
	}
	gc, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		proc.kill(ctx)
		return fail(fmt.Errorf("plugin spoke %T, want gRPC", rpc))
	}
	proc.conn = gc.Conn
	// The descriptor check goes through a client on the raw conn: the switching conn a
	// Plugin's callers use must not see a process before it is known to be the right one.
	direct, err := wire.NewClient(s.SPI, proc.conn)
	if err != nil {
		proc.kill(ctx)
		return fail(err)
	}
	proc.direct = direct
	if proc.desc, err = describe(ctx, direct); err != nil {
		proc.kill(ctx)
		return fail(err)
	}
	if err := checkDescriptor(s, proc.desc); err != nil {
		proc.kill(ctx)
		return nil, err
	}
	return proc, nil
}

// describe asks a remote provider for its descriptor, with the error Describe hides.
func describe(ctx context.Context, p spi.Provider) (spi.Descriptor, error) {
	if dc, ok := p.(interface {
		DescribeContext(context.Context) (spi.Descriptor, error)
	}); ok {
		return dc.DescribeContext(ctx)
	}
	return p.Describe(), nil
}

func checkDescriptor(s Spec, d spi.Descriptor) error {
	if d.SPI != s.SPI || d.ID != s.ID {
		what := s.Command
		if what == "" {
			what = "the in-process provider"
		}
		return fmt.Errorf("provider %s/%s: %s describes itself as %q/%q; refusing it",
			s.SPI, s.ID, what, d.SPI, d.ID)
	}
	return nil
}

// pluginSocketDir makes, once, the directory all of this host's plugins put their sockets
// in; Stop removes it with whatever sockets killed plugins left behind.
func (h *Host) pluginSocketDir() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.socketDir != "" {
		return h.socketDir, nil
	}
	dir, err := os.MkdirTemp(h.opts.SocketDir, "sd-")
	if err != nil {
		return "", fmt.Errorf("socket directory: %w", err)
	}
	// Each plugin gets a folder in it, "plugin-dir" plus up to 10 digits, and names its
	// socket "plugin" plus up to 10 digits; sun_path holds 108 bytes.
	if n := len(filepath.Join(dir, "plugin-dir0123456789", "plugin0123456789")); n >= 104 {
		os.Remove(dir)
		return "", fmt.Errorf("socket directory %s is too long for unix socket paths (%d bytes); set a shorter one", dir, n)
	}
	h.socketDir = dir
	return dir, nil
}

// State is where a plugin is in its life.
type State string

const (
	StateStarting     State = "starting"
	StateRunning      State = "running"
	StateRestarting   State = "restarting"
	StateCrashLooping State = "crash-looping"
	StateStopped      State = "stopped"
	StateInProcess    State = "in-process"
)

// Status is one line of `sessiond plugins list`.
type Status struct {
	SPI, ID   string
	Version   string // the provider's own, from its descriptor
	Protocol  int    // negotiated plugin protocol version; 0 in-process
	Command   string
	SHA256    string
	PID       int // 0 when no process is live
	State     State
	Restarts  int // restart attempts since Start
	LastError string
	InProcess bool
}

// Status reports every plugin, in start order.
func (h *Host) Status() []Status {
	h.mu.Lock()
	plugins := slices.Clone(h.plugins)
	h.mu.Unlock()
	out := make([]Status, len(plugins))
	for i, p := range plugins {
		out[i] = p.status()
	}
	return out
}

// Ready reports whether every plugin is serving, and why not.
func (h *Host) Ready() (bool, []string) {
	var reasons []string
	for _, s := range h.Status() {
		if s.State == StateRunning || s.State == StateInProcess {
			continue
		}
		r := fmt.Sprintf("provider %s/%s is %s", s.SPI, s.ID, s.State)
		if s.LastError != "" {
			r += ": " + s.LastError
		}
		reasons = append(reasons, r)
	}
	return len(reasons) == 0, reasons
}

// Stop ends supervision, closes each provider (last started first) within ctx, then kills
// the processes. Later calls wait for the first and return its result.
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		select {
		case <-h.stopDone:
			return h.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.stopped = true
	plugins := slices.Clone(h.plugins)
	h.mu.Unlock()

	h.cancel()
	h.starting.Wait()
	// Plugins do not depend on each other, and each takes about a second to shut down
	// gracefully (go-plugin's Shutdown, then the process's exit): stopped one after the
	// other, they made SIGTERM take seconds.
	errs := make([]error, len(plugins))
	var wg sync.WaitGroup
	for i, p := range plugins {
		wg.Go(func() { errs[i] = p.stop(ctx) })
	}
	wg.Wait()
	h.spawner.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.socketDir != "" {
		os.RemoveAll(h.socketDir)
	}
	h.stopErr = errors.Join(errs...)
	close(h.stopDone)
	return h.stopErr
}

// process is one running plugin executable.
type process struct {
	client   *plugin.Client
	cmd      *exec.Cmd
	conn     *grpc.ClientConn
	direct   spi.Provider // wire client on conn, for calls before the switch points here
	desc     spi.Descriptor
	pid      int
	protocol int
	started  time.Time
	served   *atomic.Bool // set once a call through the switch succeeded; nil before setUp
}

// proved reports whether the process did useful work: it answered a call, or it has run
// for stable.
func (pr *process) proved(now time.Time, stable time.Duration) bool {
	return (pr.served != nil && pr.served.Load()) || now.Sub(pr.started) >= stable
}

// exited reports whether the process has ended, and how.
func (pr *process) exited() (string, bool) {
	if !pr.client.Exited() {
		return "", false
	}
	// Exited is set under the client's lock after cmd.Wait returned, so ProcessState is
	// visible here.
	if st := pr.cmd.ProcessState; st != nil {
		return st.String(), true
	}
	return "exited", true
}

// ping checks the plugin's gRPC health service. It is what GRPCClient.Ping does, with a
// deadline: Ping uses context.Background and would hang on a stopped process.
func (pr *process) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(pr.conn).Check(ctx,
		&grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

// kill ends the process: go-plugin's Kill asks it to shut down and force-kills after 2 s;
// when ctx ends first, or the process is wedged, SIGKILL goes straight to the pid.
func (pr *process) kill(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pr.client.Kill()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		pr.sigkill()
		<-done
	}
}

func (pr *process) sigkill() {
	if pr.pid > 0 {
		_ = syscall.Kill(pr.pid, syscall.SIGKILL)
	}
}
