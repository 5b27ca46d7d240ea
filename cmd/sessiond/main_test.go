package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/testpg"
)

// The tests in this file run the real binary: real plugin processes, real HTTP.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func sessiondBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sessiond-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sessiond")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// raceExitSleep is how long, in milliseconds, a race-enabled process these tests start
// waits before it exits (GORACE's atexit_sleep_ms), where the race detector's default is
// 1000: its goroutines still running at exit get that long to make a racy access. The
// binary is built with -race, so every daemon stopped, every plugin process (they get
// GORACE through the host's allowlist) and every CLI run that exits 0 slept a second
// before exiting (status 0 only: os.Exit with another skips it): a second per daemon stop
// and per successful `sessiond admin`, `show-config` or `plugins list` run, of which the
// package has well over a hundred. 100 ms keeps a window for late races; a
// GORACE that sets atexit_sleep_ms itself wins.
const raceExitSleep = "atexit_sleep_ms=100"

func TestMain(m *testing.M) {
	// Set for the processes the tests start (they inherit os.Environ); the race runtime of
	// this test binary read GORACE when it started.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" "+raceExitSleep))
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// daemon is a sessiond process under test.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	logs   bytes.Buffer
	stdout bytes.Buffer // what reaches the operator's terminal once (start-dev's generated secrets)
	done   chan struct{}
}

// daemonStdout collects the process's stdout, which exec's own goroutine copies.
type daemonStdout struct{ d *daemon }

func (w daemonStdout) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.stdout.Write(p)
}

func (d *daemon) printed() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stdout.String()
}

var addrLine = regexp.MustCompile(`sessiond started.*address=(https?://\S+)`)

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), append([]string{"--http-port=0"}, args...)...)
}

// startDaemonIn runs `sessiond start-dev args…` in dir and waits until it serves.
func startDaemonIn(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	return startCommandIn(t, dir, os.Environ(), append([]string{"start-dev"}, args...)...)
}

// startCommandIn runs `sessiond args…` (start or start-dev and its options) in dir with the
// environment env, at debug level, and waits until it serves.
func startCommandIn(t *testing.T, dir string, env []string, args ...string) *daemon {
	t.Helper()
	bin := sessiondBinary(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(env, "SESSIOND_LOG_LEVEL=debug")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = daemonStdout{d}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.logs.WriteString(line + "\n")
			d.mu.Unlock()
			if m := addrLine.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("sessiond log:\n%s", d.log())
		}
	})
	select {
	case a := <-addr:
		d.base = a
	case <-d.done:
		t.Fatalf("sessiond exited before serving:\n%s", d.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("sessiond did not start in 60s:\n%s", d.log())
	}
	return d
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

func (d *daemon) waitLog(pattern string, timeout time.Duration) bool {
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if re.MatchString(d.log()) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

type health struct {
	Status string `json:"status"`
	Checks []struct {
		Name, Status, Reason string
	} `json:"checks"`
}

func (d *daemon) ready() (int, health) {
	d.t.Helper()
	resp, err := http.Get(d.base + "/health/ready")
	if err != nil {
		d.t.Fatalf("GET /health/ready: %v", err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		d.t.Fatalf("decode readiness: %v", err)
	}
	return resp.StatusCode, h
}

// pluginChildren returns the pids of processes whose parent is pid and whose command line
// is "… plugin serve <spi> <id>", keyed by "<spi>/<id>".
func pluginChildren(t *testing.T, pid int) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parentOf(child) != pid {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) == 5 && args[1] == "plugin" && args[2] == "serve" {
			out[args[3]+"/"+args[4]] = child
		}
	}
	return out
}

func parentOf(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may contain spaces; fields after the last ')' are fixed.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return -1
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func TestStartDevServesReadinessWithPluginProcesses(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	code, h := d.ready()
	if code != http.StatusOK || h.Status != "UP" {
		t.Fatalf("ready = %d %+v, want 200 UP", code, h)
	}
	if len(h.Checks) != 6 || h.Checks[0].Name != "user-sessions store" || h.Checks[1].Name != "not-before policies" {
		t.Errorf("readiness lists %d checks, want the session store's, the not-before policies' and one per SPI (6): %+v", len(h.Checks), h.Checks)
	}
	kids := pluginChildren(t, d.cmd.Process.Pid)
	for _, want := range []string{"user-sessions/embedded", "offline-preload/lazy", "cache-lifespan/default", "revocation-push/log-only"} {
		if kids[want] == 0 {
			t.Errorf("no plugin process for %s among children %v", want, kids)
		}
	}
	resp, err := http.Get(d.base + "/health/live")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestKilledPluginIsRestartedAndReadinessTellsTheTruth(t *testing.T) {
	// A long first backoff keeps the provider down long enough to observe readiness.
	d := startDaemon(t, "--plugin-restart-backoff=1500ms", "--frontend-token=fe")
	kids := pluginChildren(t, d.cmd.Process.Pid)
	victim := kids["user-sessions/embedded"]
	if victim == 0 {
		t.Fatalf("no user-sessions plugin among %v", kids)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !d.waitLog(`plugin exited`, 5*time.Second) {
		t.Fatal("host did not log the plugin's exit")
	}
	code, h := d.ready()
	if code != http.StatusServiceUnavailable || h.Status != "DOWN" {
		t.Fatalf("ready while the plugin is down = %d %+v, want 503 DOWN", code, h)
	}
	// A request that needs the store fails at once with a retriable answer, not a hang.
	req, _ := http.NewRequest(http.MethodPost, d.base+"/realms/demo/sessions",
		strings.NewReader(`{"client_id":"demo-app","user_id":"u1","username":"alice"}`))
	req.Header.Set("Authorization", "Bearer fe")
	req.Header.Set("Content-Type", "application/json")
	started := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("open session while the store plugin is down = %d (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Generous bound: it only tells "answered" from "hung until a timeout".
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("the refused request took %v; it must fail fast, not wait for the plugin", took)
	}
	if !d.waitLog(`plugin restarted`, 10*time.Second) {
		t.Fatal("host did not log a restart")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := d.ready(); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready again 5s after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	again := pluginChildren(t, d.cmd.Process.Pid)["user-sessions/embedded"]
	if again == 0 || again == victim {
		t.Fatalf("user-sessions plugin pid after restart = %d (was %d)", again, victim)
	}
}

func TestNoPluginOutlivesSessiond(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			d := startDaemon(t)
			kids := pluginChildren(t, d.cmd.Process.Pid)
			if len(kids) != 4 {
				t.Fatalf("want 4 plugin processes, got %v", kids)
			}
			if err := d.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			<-d.done
			deadline := time.Now().Add(5 * time.Second)
			for name, pid := range kids {
				for alive(pid) {
					if time.Now().After(deadline) {
						t.Fatalf("plugin %s (pid %d) still running after sessiond got %v", name, pid, sig)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

// runCLI runs the binary to completion and returns its exit code and combined output.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return runBinary(t, os.Environ(), args...)
}

// runBinary runs the binary to completion in a temporary directory with the environment
// env and returns its exit code and combined output.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(sessiondBinary(t), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestStartRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	plugin := filepath.Join(t.TempDir(), "sessiond-store")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrongSum := strings.Repeat("ab", 32)
	// A plugin anyone may rewrite is refused whatever its digest.
	writable := filepath.Join(t.TempDir(), "sessiond-store")
	if err := os.WriteFile(writable, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o777); err != nil {
		t.Fatal(err)
	}
	writableSum := sha256.Sum256([]byte("#!/bin/sh\nexit 0\n"))
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"typo in an spi key names it and suggests the right one",
			[]string{"--spi-user-sesions-provider=memory"},
			[]string{"spi-user-sesions-provider", "spi-user-sessions-provider"}},
		{"unknown provider lists the known ones",
			[]string{"--spi-user-sessions-provider=nosuch"},
			[]string{"nosuch", "memory"}},
		{"wrong type names the key and the value",
			[]string{"--http-port=eighty"},
			[]string{"http-port", "eighty"}},
		{"plugin binary with a wrong checksum is refused, naming it",
			[]string{"--spi-user-sessions-provider=store", "--spi-user-sessions-store-command=" + plugin, "--spi-user-sessions-store-sha256=" + wrongSum},
			[]string{plugin, wrongSum, "checksum"}},
		{"world-writable plugin binary is refused, naming it, its key and the fix",
			[]string{"--spi-user-sessions-provider=store", "--spi-user-sessions-store-command=" + writable, "--spi-user-sessions-store-sha256=" + hex.EncodeToString(writableSum[:])},
			[]string{writable, "spi-user-sessions-store-command", "writable by group or others", "chmod go-w " + writable}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := runCLI(t, append([]string{"start-dev", "--http-port=0"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("start-dev %v exited 0; output:\n%s", tc.args, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestPluginsListShowsEveryProvider(t *testing.T) {
	t.Parallel()
	// Under the start profile the store is PostgreSQL.
	code, out := runCLI(t, "plugins", "list", "--spi-user-sessions-postgres-url="+testpg.URL())
	if code != 0 {
		t.Fatalf("plugins list exited %d:\n%s", code, out)
	}
	for _, want := range []string{"user-sessions", "postgres", "offline-preload", "lazy", "cache-lifespan", "revocation-push", "log-only", "running"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugins list does not show %q:\n%s", want, out)
		}
	}
}

// The suite's own variables stay set in the shell that runs it (and in os.Environ, which
// the daemons of these tests inherit): the binary must neither refuse them nor show them
// as options. conf's TestTestSuiteVariablesAreNotConfiguration covers the loader.
func TestTestSuiteVariablesDoNotStopTheBinary(t *testing.T) {
	t.Parallel()
	env := append(os.Environ(),
		"SESSIOND_TEST_POSTGRES_URL="+testpg.URL(),
		"SESSIOND_TEST_REDIS_URL=redis://127.0.0.1:6379",
		"SESSIOND_TEST_NATS_URL=nats://127.0.0.1:4222")
	code, out := runBinary(t, env, "show-config", "start-dev")
	if code != 0 {
		t.Fatalf("show-config start-dev with SESSIOND_TEST_* set exited %d:\n%s", code, out)
	}
	if strings.Contains(out, "SESSIOND_TEST") || strings.Contains(out, "test-postgres-url") {
		t.Errorf("show-config shows a test-suite variable:\n%s", out)
	}
}
