package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/builtin"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// startMemory starts the memory provider as a plugin (mode "serve" or "crash") or, with
// mode "", in-process, and configures it.
func startMemory(t testing.TB, h *host.Host, mode string, set map[string]string) (*host.Plugin, usersessions.Provider) {
	t.Helper()
	ctx := context.Background()
	spec := host.Spec{SPI: spi.UserSessions, ID: memory.ID, InProcess: memory.New(hclog.NewNullLogger())}
	if mode != "" {
		spec = selfSpec(t, mode, spi.UserSessions, memory.ID)
	}
	p, err := h.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := p.Configure(ctx, defaults(p.Descriptor(), set)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	us, ok := p.Provider().(usersessions.Provider)
	if !ok {
		t.Fatalf("provider is %T, not a usersessions.Provider", p.Provider())
	}
	return p, us
}

func TestStatus(t *testing.T) {
	h, _ := newHost(t, host.Options{})
	plug, _ := startMemory(t, h, "serve", nil)
	inproc, err := h.Start(context.Background(), host.Spec{
		SPI: spi.CacheLifespan, ID: "default", InProcess: mustBuiltin(t, spi.CacheLifespan, "default"),
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := selfSpec(t, "serve", spi.UserSessions, memory.ID)
	st := h.Status()
	if len(st) != 2 {
		t.Fatalf("status has %d entries, want 2: %+v", len(st), st)
	}
	got, want := st[0], host.Status{
		SPI: spi.UserSessions, ID: memory.ID, Version: plug.Descriptor().Version, Protocol: 1,
		Command: spec.Command, SHA256: spec.SHA256, PID: st[0].PID, State: host.StateRunning,
	}
	if got != want || got.PID <= 0 || got.Version == "" {
		t.Errorf("plugin status = %+v, want %+v with a pid and a version", got, want)
	}
	if err := syscall.Kill(got.PID, 0); err != nil {
		t.Errorf("plugin pid %d: %v", got.PID, err)
	}
	got, want = st[1], host.Status{
		SPI: spi.CacheLifespan, ID: "default", Version: inproc.Descriptor().Version,
		State: host.StateInProcess, InProcess: true,
	}
	if got != want {
		t.Errorf("in-process status = %+v, want %+v", got, want)
	}
	if ok, reasons := h.Ready(); !ok {
		t.Errorf("Ready() = false, %q with everything up", reasons)
	}
}

func mustBuiltin(t testing.TB, spiName, id string) spi.Provider {
	t.Helper()
	f, ok := builtin.Lookup(spiName, id)
	if !ok {
		t.Fatalf("no built-in %s/%s", spiName, id)
	}
	return f.New(hclog.NewNullLogger())
}

func TestChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "plugin.sh")
	body := fmt.Sprintf("#!/bin/sh\ntouch %q\nsleep 10\n", marker)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	actual := sha256Hex(t, script)
	wrong := strings.Repeat("ab", 32)

	h, _ := newHost(t, host.Options{})
	_, err := h.Start(context.Background(), host.Spec{
		SPI: spi.UserSessions, ID: "tampered", Command: script, SHA256: wrong,
	})
	var ce *host.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("Start error = %v, want a *host.ChecksumError", err)
	}
	if ce.Path != script || ce.Expected != wrong || ce.Actual != actual {
		t.Errorf("ChecksumError = %+v, want path %s, expected %s, actual %s", ce, script, wrong, actual)
	}
	for _, s := range []string{"user-sessions/tampered", script, wrong, actual} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	time.Sleep(100 * time.Millisecond) // what an exec'd script would need to leave its mark
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the plugin ran despite its checksum (marker: %v)", err)
	}
	if st := h.Status(); len(st) != 0 {
		t.Errorf("a refused plugin is listed: %+v", st)
	}
}

func TestSpecErrors(t *testing.T) {
	self := selfSpec(t, "serve", spi.UserSessions, memory.ID)
	tests := []struct {
		name string
		spec host.Spec
		want string
	}{
		{"no SPI", host.Spec{ID: "x", Command: self.Command, SHA256: self.SHA256}, "needs an SPI"},
		{"no command", host.Spec{SPI: spi.UserSessions, ID: "x"}, "neither InProcess nor Command"},
		{"bad digest", host.Spec{SPI: spi.UserSessions, ID: "x", Command: self.Command, SHA256: "xyz"}, "not a hex SHA-256"},
		{"missing binary", host.Spec{SPI: spi.UserSessions, ID: "x", Command: "/nonexistent/plugin", SHA256: self.SHA256}, "/nonexistent/plugin"},
		{"wrong id", func() host.Spec { s := self; s.ID = "other"; return s }(), `describes itself as "user-sessions"/"memory"`},
		{"wrong in-process id", host.Spec{SPI: spi.UserSessions, ID: "other", InProcess: memory.New(hclog.NewNullLogger())}, `describes itself as "user-sessions"/"memory"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHost(t, host.Options{})
			_, err := h.Start(context.Background(), tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start error = %v, want one containing %q", err, tt.want)
			}
			if st := h.Status(); len(st) != 0 {
				t.Errorf("a refused plugin is listed: %+v", st)
			}
		})
	}
}

func TestStartTwice(t *testing.T) {
	h, _ := newHost(t, host.Options{})
	startMemory(t, h, "", nil)
	_, err := h.Start(context.Background(), host.Spec{SPI: spi.UserSessions, ID: memory.ID, InProcess: memory.New(hclog.NewNullLogger())})
	if err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("second Start error = %v, want already started", err)
	}
}

func TestRestartAfterKill(t *testing.T) {
	// A long first backoff leaves a window in which the plugin is known to be down.
	h, logs := newHost(t, host.Options{InitialBackoff: time.Second})
	ctx := context.Background()
	p, us := startMemory(t, h, "serve", map[string]string{memory.OptMaxSessions: "2"})
	oldPID := pidOf(h, p)

	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "Ready() turns false", func() bool { ok, _ := h.Ready(); return !ok })

	start := time.Now()
	_, err := us.Get(ctx, []usersessions.Key{{RealmID: "r", ID: "s"}})
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a call while the plugin is down took %s; want it to fail fast", took)
	}
	if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "restarting (attempt 1)") {
		t.Errorf("call while down: %v, want spi.ErrUnavailable saying it is restarting", err)
	}
	_, reasons := h.Ready()
	if len(reasons) != 1 || !strings.Contains(reasons[0], "user-sessions/memory is restarting") ||
		!strings.Contains(reasons[0], "signal: killed") {
		t.Errorf("Ready reasons = %q, want the plugin restarting after being killed", reasons)
	}
	if st := h.Status()[0]; st.State != host.StateRestarting || st.PID != 0 {
		t.Errorf("status while down = %+v", st)
	}

	eventually(t, 5*time.Second, "the plugin is back", func() bool { ok, _ := h.Ready(); return ok })
	st := h.Status()[0]
	if st.PID == oldPID || st.PID <= 0 || st.Restarts != 1 || st.State != host.StateRunning {
		t.Errorf("status after restart = %+v, want running with a new pid (old %d) and 1 restart", st, oldPID)
	}
	if err := syscall.Kill(oldPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("old plugin pid %d still exists (kill 0: %v)", oldPID, err)
	}

	// The new process is empty (memory) but must carry max-sessions=2 again.
	errs, err := us.Create(ctx, []*usersessions.UserSession{session("a"), session("b"), session("c")})
	if err != nil {
		t.Fatalf("create after restart: %v", err)
	}
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], spi.ErrInvalid) {
		t.Errorf("create of 3 sessions with max-sessions=2 re-applied: %v", errs)
	}
	got, err := us.Get(ctx, []usersessions.Key{{RealmID: "r", ID: "a"}})
	if err != nil || len(got) != 1 || got[0] == nil || got[0].ID != "a" {
		t.Errorf("get after restart = %v, %v", got, err)
	}
	for _, line := range []string{"[ERROR] sessiond.user-sessions.memory: plugin exited: pid=", "plugin restarted: pid="} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("host log lacks %q", line)
		}
	}
}

func TestRestartAfterHang(t *testing.T) {
	h, _ := newHost(t, host.Options{PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	p, _ := startMemory(t, h, "serve", nil)
	oldPID := pidOf(h, p)
	// A stopped process has not exited: only the health check can tell it is gone.
	if err := syscall.Kill(oldPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a restart after a failed health check", func() bool {
		st := h.Status()[0]
		return st.Restarts == 1 && st.State == host.StateRunning
	})
	if st := h.Status()[0]; st.PID == oldPID || !strings.Contains(st.LastError, "health check failed") {
		t.Errorf("status = %+v, want a new pid (old %d) and the failed health check as last error", st, oldPID)
	}
	if err := syscall.Kill(oldPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the hung plugin %d was not killed (kill 0: %v)", oldPID, err)
	}
}

func session(id string) *usersessions.UserSession {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &usersessions.UserSession{
		ID: id, RealmID: "r", UserID: "u", State: usersessions.LoggedIn,
		Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour),
	}
}

// TestKilledWhileServingIsNotACrashLoop: a plugin that serves calls and is killed again and
// again (an operator's kill -9, the OOM killer) is restarted each time after the first
// backoff, never declared crash-looping: only a process that cannot get to work is.
func TestKilledWhileServingIsNotACrashLoop(t *testing.T) {
	const kills = 8
	h, _ := newHost(t, host.Options{
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Second,
		CrashLoopRestarts: 3, CrashLoopWindow: time.Minute,
	})
	p, us := startMemory(t, h, "serve", nil)
	for i := range kills {
		pid := pidOf(h, p)
		// It serves a call, then dies.
		eventually(t, 10*time.Second, "the plugin answers", func() bool {
			_, err := us.Get(context.Background(), []usersessions.Key{{RealmID: "r", ID: "s"}})
			return err == nil
		})
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		eventually(t, 10*time.Second, fmt.Sprintf("restart %d", i+1), func() bool {
			st := h.Status()[0]
			return st.PID != pid && st.PID > 0
		})
		if st := h.Status()[0]; st.State != host.StateRunning {
			t.Fatalf("after kill %d: %+v, want running", i+1, st)
		}
		// The backoff did not grow: far below MaxBackoff (a start takes a few hundred ms).
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("restart %d took %s: the backoff grew for a process that was serving", i+1, took)
		}
	}
	if st := h.Status()[0]; st.Restarts != kills {
		t.Errorf("restarts = %d, want %d", st.Restarts, kills)
	}
}

func TestCrashLoop(t *testing.T) {
	const maxBackoff = 3 * time.Second
	h, _ := newHost(t, host.Options{
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: maxBackoff,
		CrashLoopRestarts: 3, CrashLoopWindow: time.Minute,
	})
	startMemory(t, h, "crash", nil)

	eventually(t, 15*time.Second, "state crash-looping", func() bool {
		return h.Status()[0].State == host.StateCrashLooping
	})
	before := h.Status()[0]
	time.Sleep(maxBackoff / 2)
	after := h.Status()[0]
	if after.Restarts > before.Restarts+1 || after.Restarts > 3+2 {
		t.Errorf("restarts went from %d to %d in %s; a crash loop must back off at the cap",
			before.Restarts, after.Restarts, maxBackoff/2)
	}
	if after.State != host.StateCrashLooping || !strings.Contains(after.LastError, "crash loop") ||
		!strings.Contains(after.LastError, "exit status 3") {
		t.Errorf("status = %+v, want crash-looping with the reason", after)
	}
	if ok, reasons := h.Ready(); ok || len(reasons) != 1 || !strings.Contains(reasons[0], "crash-looping") {
		t.Errorf("Ready() = %v, %q; want not ready because of the crash loop", ok, reasons)
	}
}

func TestStopLeavesNoProcesses(t *testing.T) {
	h := host.New(hclog.NewNullLogger(), host.Options{})
	ctx := context.Background()
	// Stores that keep data are pointed at the test's own places; the webhook needs its
	// secret.
	set := map[string]map[string]string{
		"embedded": {"path": filepath.Join(t.TempDir(), "sessions.db")},
		"postgres": {"url": testpg.URL()},
		"webhook":  {"secret": "test-secret"},
	}
	var pids []int
	for _, f := range builtin.Catalog() {
		p, err := h.Start(ctx, selfSpec(t, "serve", f.SPI, f.ID))
		if err != nil {
			t.Fatalf("start %s/%s: %v", f.SPI, f.ID, err)
		}
		if err := p.Configure(ctx, defaults(p.Descriptor(), set[f.ID])); err != nil {
			t.Fatalf("configure %s/%s: %v", f.SPI, f.ID, err)
		}
		pids = append(pids, pidOf(h, p))
	}
	if err := h.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	for _, pid := range pids {
		// The plugins are this process's children, reaped by go-plugin: no zombie either.
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("plugin pid %d survived Stop (kill 0: %v)", pid, err)
		}
	}
	for _, st := range h.Status() {
		if st.State != host.StateStopped || st.PID != 0 {
			t.Errorf("after Stop: %+v", st)
		}
	}
	if err := h.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := h.Start(ctx, selfSpec(t, "serve", spi.UserSessions, memory.ID)); err == nil {
		t.Error("Start after Stop succeeded")
	}
}

func TestCallsAfterStop(t *testing.T) {
	h := host.New(hclog.NewNullLogger(), host.Options{})
	_, us := startMemory(t, h, "serve", nil)
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := us.Get(context.Background(), []usersessions.Key{{RealmID: "r", ID: "a"}})
	if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("call after Stop: %v, want spi.ErrUnavailable (stopped)", err)
	}
}

func benchmarkGet(b *testing.B, mode string) {
	h, _ := newHost(b, host.Options{})
	_, us := startMemory(b, h, mode, nil)
	ctx := context.Background()
	if _, err := us.Create(ctx, []*usersessions.UserSession{session("a")}); err != nil {
		b.Fatal(err)
	}
	keys := []usersessions.Key{{RealmID: "r", ID: "a"}}
	for b.Loop() {
		if got, err := us.Get(ctx, keys); err != nil || got[0] == nil {
			b.Fatal(got, err)
		}
	}
}

func BenchmarkGetPlugin(b *testing.B)    { benchmarkGet(b, "serve") }
func BenchmarkGetInProcess(b *testing.B) { benchmarkGet(b, "") }
