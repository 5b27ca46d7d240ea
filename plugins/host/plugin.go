package host

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
)

// Plugin is one started provider: in-process, or a supervised subprocess.
type Plugin struct {
	host     *Host
	spec     Spec // Command resolved to an absolute path, SHA256 lower-case
	log      hclog.Logger
	desc     spi.Descriptor
	provider spi.Provider // built once; over conn for a subprocess
	conn     *switchConn  // nil in-process

	// cfgMu serialises Configure with a restart's re-configure-and-switch, so a new
	// process never serves callers with other options than the last ones accepted.
	cfgMu sync.Mutex
	cfg   spi.Config // nil until a Configure succeeded

	mu        sync.Mutex
	proc      *process // nil while down
	protocol  int      // last negotiated
	state     State
	crashLoop bool // sticky until a process runs for StableAfter
	restarts  int
	lastErr   string

	supervised sync.WaitGroup
}

// Descriptor is what the provider said about itself at start.
func (p *Plugin) Descriptor() spi.Descriptor { return p.desc }

// Provider is the provider's client; it stays valid across restarts. Type-assert it to the
// SPI's interface. Configure it through Plugin.Configure, which restarts re-apply.
func (p *Plugin) Provider() spi.Provider { return p.provider }

// Configure configures the provider and remembers cfg; every restarted process is
// configured with it before it serves a call.
func (p *Plugin) Configure(ctx context.Context, cfg spi.Config) error {
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	if err := p.provider.Configure(ctx, cfg); err != nil {
		return fmt.Errorf("provider %s/%s: configure: %w", p.spec.SPI, p.spec.ID, err)
	}
	p.cfg = maps.Clone(cfg)
	return nil
}

func (p *Plugin) inProcess() bool { return p.spec.InProcess != nil }

func (p *Plugin) current() *process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

func (p *Plugin) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{
		SPI: p.spec.SPI, ID: p.spec.ID, Version: p.desc.Version, Protocol: p.protocol,
		Command: p.spec.Command, SHA256: p.spec.SHA256, State: p.state,
		Restarts: p.restarts, LastError: p.lastErr, InProcess: p.inProcess(),
	}
	if p.proc != nil {
		st.PID = p.proc.pid
	}
	return st
}

// setUp makes proc the live process and points callers at it.
func (p *Plugin) setUp(proc *process) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc, p.protocol = proc, proc.protocol
	p.state = StateRunning
	if p.crashLoop {
		p.state = StateCrashLooping
	}
	proc.served = p.conn.up(proc.conn)
}

// setDown records why the process is gone and makes calls fail fast.
func (p *Plugin) setDown(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc, p.lastErr = nil, reason
	p.state = StateRestarting
	p.conn.down(1)
}

// supervise watches the live process and replaces it when it dies, until the host stops.
func (p *Plugin) supervise() {
	defer p.supervised.Done()
	ctx, o := p.host.ctx, p.host.opts
	failures := 0          // consecutive, for the backoff
	var recent []time.Time // restart attempts within CrashLoopWindow
	proc := p.current()
	for {
		reason, down := p.watch(ctx, proc)
		if !down {
			return
		}
		// A process that served calls, or ran StableAfter, was not failing to start: its
		// death (an operator's kill -9, the OOM killer) starts the backoff afresh and is
		// not part of a crash loop, which is a process that cannot get to work at all.
		proved := proc.proved(o.Now(), o.StableAfter)
		if proved {
			failures = 0
		}
		p.log.Error("plugin exited", "pid", proc.pid, "reason", reason)
		p.setDown("plugin exited: " + reason)
		proc.kill(ctx) // reaps it and releases go-plugin's goroutines and conn

		for proc = nil; proc == nil; {
			failures++
			now := o.Now()
			recent = since(recent, now.Add(-o.CrashLoopWindow))
			if !proved {
				recent = append(recent, now)
			}
			proved = false // a restart that fails in turn counts
			delay := p.beforeRestart(failures, len(recent) > o.CrashLoopRestarts)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			var err error
			if proc, err = p.restart(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				p.log.Error("plugin restart failed", "attempt", failures, "error", err)
				p.mu.Lock()
				p.lastErr = err.Error()
				p.mu.Unlock()
				continue
			}
			p.log.Info("plugin restarted", "pid", proc.pid, "attempt", failures)
		}
	}
}

// beforeRestart records restart attempt n and returns how long to wait before it.
func (p *Plugin) beforeRestart(n int, crashLooping bool) time.Duration {
	o := p.host.opts
	delay := o.InitialBackoff
	for i := 1; i < n && delay < o.MaxBackoff; i++ {
		delay *= 2
	}
	delay = min(delay, o.MaxBackoff)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.restarts++
	p.conn.down(n)
	if crashLooping && !p.crashLoop {
		p.crashLoop = true
		p.lastErr = fmt.Sprintf("crash loop: more than %d restarts within %s; last: %s",
			o.CrashLoopRestarts, o.CrashLoopWindow, p.lastErr)
		p.log.Error("plugin is crash-looping", "restarts", p.restarts, "backoff", o.MaxBackoff)
	}
	p.state = StateRestarting
	if p.crashLoop {
		p.state, delay = StateCrashLooping, o.MaxBackoff
	}
	return delay
}

// restart launches a new process, configures it as the last one was, and only then
// switches callers over to it.
func (p *Plugin) restart(ctx context.Context) (*process, error) {
	proc, err := p.host.launch(ctx, p.spec, p.log)
	if err != nil {
		return nil, err
	}
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	if p.cfg != nil {
		cctx, cancel := context.WithTimeout(ctx, p.host.opts.StartTimeout)
		err := proc.direct.Configure(cctx, p.cfg)
		cancel()
		if err != nil {
			proc.kill(ctx)
			return nil, fmt.Errorf("provider %s/%s: re-configure after restart: %w", p.spec.SPI, p.spec.ID, err)
		}
	}
	p.setUp(proc)
	return proc, nil
}

// watch returns when proc is down, with the reason, or false when the host stops.
func (p *Plugin) watch(ctx context.Context, proc *process) (string, bool) {
	o := p.host.opts
	exitTick := time.NewTicker(o.ExitPoll)
	defer exitTick.Stop()
	pingTick := time.NewTicker(o.PingInterval)
	defer pingTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", false
		case <-exitTick.C:
			if reason, ok := proc.exited(); ok {
				return reason, true
			}
			p.settle(proc)
		case <-pingTick.C:
			err := proc.ping(ctx, o.PingTimeout)
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return "", false
			default:
				if reason, ok := proc.exited(); ok {
					return reason, true
				}
				// Alive but not answering: make sure it is gone before another starts.
				proc.sigkill()
				return "health check failed: " + err.Error(), true
			}
		}
	}
}

// settle ends a crash loop once a process has proved itself: it answered a call, or
// stayed up for StableAfter.
func (p *Plugin) settle(proc *process) {
	o := p.host.opts
	if !proc.proved(o.Now(), o.StableAfter) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashLoop && p.proc == proc {
		p.crashLoop, p.state = false, StateRunning
	}
}

// stop closes the provider and ends its process; the host's context is already cancelled.
func (p *Plugin) stop(ctx context.Context) error {
	p.supervised.Wait()
	p.mu.Lock()
	proc := p.proc
	p.proc, p.state = nil, StateStopped
	p.mu.Unlock()

	var err error
	switch {
	case p.inProcess():
		err = p.provider.Close(ctx)
	case proc != nil:
		p.conn.stop()
		err = proc.direct.Close(ctx)
		proc.kill(ctx)
	default:
		p.conn.stop()
	}
	if err != nil {
		return fmt.Errorf("provider %s/%s: close: %w", p.spec.SPI, p.spec.ID, err)
	}
	return nil
}

// since drops the times before cutoff from ts, which is in time order.
func since(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cutoff) {
		i++
	}
	return ts[i:]
}
