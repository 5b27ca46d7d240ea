package benchproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before SIGKILL: sessiond's graceful
// shutdown (drain requests, stop the plugins in order) takes well under it.
const StopGrace = 15 * time.Second

// Process is a started command and the one goroutine that waits for it to end.
type Process struct {
	Started time.Time // just before the exec
	Log     string    // the file its output goes to

	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// Start starts cmd with its standard output and error written to the file logPath
// (created, or truncated) and, if lines is not nil, each line it writes to standard error
// handed to lines as well. lines runs on the goroutine that copies the output and must not
// block or keep the slice; every line has been handed on before Done is closed.
func Start(cmd *exec.Cmd, logPath string, lines func(line []byte)) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Process{Log: logPath, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = logf, logf
	var split *lineSplitter
	if lines != nil {
		split = &lineSplitter{to: lines}
		cmd.Stderr = io.MultiWriter(logf, split)
	}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait() // returns once the output is copied
		if split != nil {
			split.flush()
		}
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has ended and its output is written.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (cmd.Wait's error); it is meaningful once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop asks the process to end (SIGTERM: sessiond shuts down gracefully), waits StopGrace
// and then kills it — its process group, if it was started in one of its own — and waits
// for it. Stopping a process that has ended does nothing.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have just ended
	select {
	case <-p.done:
	case <-time.After(StopGrace):
		if a := p.cmd.SysProcAttr; a != nil && a.Setpgid {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the group it leads
		} else {
			p.cmd.Process.Kill() //nolint:errcheck // it may have just ended
		}
		<-p.done
	}
}

// Tail is the last n bytes of the process's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// EveryInterval is a poll schedule for WaitReady: the same interval throughout.
func EveryInterval(d time.Duration) func(time.Duration) time.Duration {
	return func(time.Duration) time.Duration { return d }
}

// WaitReady asks url until it answers 200 (each probe at most 2 s), waiting every(elapsed
// since the start) between probes. It fails when the process ends first, when ctx ends,
// or when timeout has passed since the start, with the end of the process's log.
func (p *Process) WaitReady(ctx context.Context, url string, timeout time.Duration, every func(time.Duration) time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := p.Started.Add(timeout)
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s; the end of %s:\n%s", url, timeout, p.Log, p.Tail(3000))
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s ended before it was ready (%v); the end of %s:\n%s", p.cmd.Path, p.err, p.Log, p.Tail(3000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every(time.Since(p.Started))):
		}
	}
}

// lineSplitter hands on each whole line written to it, without its newline.
type lineSplitter struct {
	mu      sync.Mutex
	to      func([]byte)
	partial []byte
}

func (s *lineSplitter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(b)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.partial = append(s.partial, b...)
			return n, nil
		}
		if len(s.partial) > 0 {
			s.to(append(s.partial, b[:i]...))
			s.partial = s.partial[:0]
		} else {
			s.to(b[:i])
		}
		b = b[i+1:]
	}
}

// flush hands on a last line that had no newline.
func (s *lineSplitter) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.to(s.partial)
		s.partial = nil
	}
}

// FreePort is a TCP port of 127.0.0.1 free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Loopback is where a `sessiond start` serves plain HTTP on 127.0.0.1, as behind a
// TLS-terminating proxy: its public port and its management port (health, metrics).
type Loopback struct{ Port, ManagementPort int }

// NewLoopback picks two free ports.
func NewLoopback() (Loopback, error) {
	port, err := FreePort()
	if err != nil {
		return Loopback{}, err
	}
	mport, err := FreePort()
	if err != nil {
		return Loopback{}, err
	}
	if mport == port {
		return Loopback{}, errors.New("the same free port twice")
	}
	return Loopback{Port: port, ManagementPort: mport}, nil
}

// Args are the flags of `sessiond start` for it: plain HTTP must be said (http-enabled),
// and start wants a fixed hostname.
func (l Loopback) Args() []string {
	return []string{"--http-enabled=true", "--http-host=127.0.0.1", "--http-port=" + strconv.Itoa(l.Port),
		"--http-management-port=" + strconv.Itoa(l.ManagementPort), "--hostname=" + l.URL()}
}

// URL is the public base URL, http://127.0.0.1:port.
func (l Loopback) URL() string { return "http://127.0.0.1:" + strconv.Itoa(l.Port) }

// ReadyURL is the readiness probe on the management port.
func (l Loopback) ReadyURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(l.ManagementPort) + "/health/ready"
}
