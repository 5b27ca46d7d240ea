package host_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
)

// TestNoOrphanWhenHostKilled SIGKILLs a process running a Host and checks that its plugin
// dies with it. The plugin runs in "raw" mode, without the SDK's parent watch, so only the
// Pdeathsig the host sets can end it.
//
// Once the host dies the plugin is re-parented, normally to init, which may not reap it
// (leaving a zombie we could not tell from a dead process) or may reap it (freeing the pid
// for reuse). To observe the end honestly this test makes itself a child subreaper: the
// orphaned plugin becomes its child, and wait4 reports how it ended — SIGKILL, from the
// kernel — not merely that a pid disappeared.
func TestNoOrphanWhenHostKilled(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a child subreaper: %v", err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hostCmd := exec.Command(exe, "-test.run=^$")
	hostCmd.Env = append(os.Environ(), modeEnv+"=host")
	var stderr bytes.Buffer
	hostCmd.Stderr = &stderr
	stdout, err := hostCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hostCmd.Start(); err != nil {
		t.Fatal(err)
	}
	hostReaped := false
	t.Cleanup(func() {
		if !hostReaped {
			_ = hostCmd.Process.Kill()
			_ = hostCmd.Wait()
		}
		if t.Failed() {
			t.Logf("host stderr:\n%s", stderr.String())
		}
	})

	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		s.Scan()
		line <- s.Text()
	}()
	var pid int
	select {
	case l := <-line:
		if pid, err = strconv.Atoi(strings.TrimSpace(l)); err != nil || pid <= 0 {
			t.Fatalf("host printed %q, want the plugin pid", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("host did not report its plugin pid")
	}
	if ppid, state := procStat(t, pid); ppid != hostCmd.Process.Pid || state == "Z" {
		t.Fatalf("pid %d: parent %d state %s; want a live child of the host %d", pid, ppid, state, hostCmd.Process.Pid)
	}

	if err := hostCmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = hostCmd.Wait()
	hostReaped = true

	// wait4 fails with ECHILD until the orphan has been handed to us.
	deadline := time.Now().Add(3 * time.Second)
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case got == pid:
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("plugin ended with %v, want SIGKILL from its parent-death signal", ws)
			}
			return
		case err != nil && !errors.Is(err, syscall.ECHILD) && !errors.Is(err, syscall.EINTR):
			t.Fatalf("wait4(%d): %v", pid, err)
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d still alive 3 s after its host was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procStat returns the parent pid and state letter from /proc/<pid>/stat.
func procStat(t *testing.T, pid int) (ppid int, state string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("plugin pid %d: %v", pid, err)
	}
	// The command name in parentheses may hold spaces; the fields after it do not.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, fields[0]
}

// TestPluginOutlivesStartingThread starts a plugin from a goroutine whose OS thread then
// ends. Pdeathsig follows the forking thread, so a host that forked from its caller's
// thread would see its plugin SIGKILLed here; the host's spawner thread prevents that.
func TestPluginOutlivesStartingThread(t *testing.T) {
	h, _ := newHost(t, host.Options{})
	type result struct {
		p   *host.Plugin
		err error
	}
	res := make(chan result, 1)
	go func() {
		// Never unlocked: the runtime ends this thread when the goroutine returns.
		runtime.LockOSThread()
		if syscall.Gettid() == os.Getpid() {
			res <- result{err: errors.New("test goroutine runs on the main thread, which never ends")}
			return
		}
		p, err := h.Start(context.Background(), selfSpec(t, "raw", spi.UserSessions, memory.ID))
		res <- result{p, err}
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	pid := pidOf(h, r.p)
	time.Sleep(500 * time.Millisecond) // the starting thread is gone; a death signal would have landed
	st := h.Status()[0]
	if st.PID != pid || st.Restarts != 0 || st.State != host.StateRunning {
		t.Fatalf("status = %+v; want pid %d still running, never restarted", st, pid)
	}
	if _, state := procStat(t, pid); state == "Z" {
		t.Fatalf("plugin %d is a zombie", pid)
	}
}

// childrenInMode lists this process's children that run the test binary in mode.
func childrenInMode(t *testing.T, mode string) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if ppid, _ := strconv.Atoi(fields[1]); ppid != os.Getpid() {
			continue
		}
		env, _ := os.ReadFile("/proc/" + d.Name() + "/environ")
		if slices.Contains(strings.Split(string(env), "\x00"), modeEnv+"="+mode) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestStartingThenStopped(t *testing.T) {
	h := host.New(hclog.NewNullLogger(), host.Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := h.Start(context.Background(), selfSpec(t, "slow", spi.UserSessions, memory.ID))
		errc <- err
	}()
	eventually(t, 5*time.Second, "the plugin process runs", func() bool { return len(childrenInMode(t, "slow")) == 1 })
	if st := h.Status(); len(st) != 1 || st[0].State != host.StateStarting {
		t.Errorf("status while starting = %+v", st)
	}
	if ok, reasons := h.Ready(); ok || len(reasons) != 1 || !strings.Contains(reasons[0], "user-sessions/memory is starting") {
		t.Errorf("Ready() while starting = %v, %q", ok, reasons)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Start interrupted by Stop returned %v, want an error saying the host stopped", err)
	}
	if pids := childrenInMode(t, "slow"); len(pids) != 0 {
		t.Errorf("plugin processes left after Stop: %v", pids)
	}
}
