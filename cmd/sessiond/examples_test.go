package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPluginAuthorGuide runs the commands of docs/plugin-author-guide.md as written, from
// the repository root: it builds sessiond and the example plugins (plugins/examples, a
// module of its own), registers them by SHA-256, checks show-config and plugins list
// against the output the guide shows, starts sessiond on the Redis plugin and runs the
// guide's client commands against it. Only the output directory (bin/ becomes a temporary
// one), the HTTP port and the Redis key prefix differ, so the test leaves the checkout
// alone and runs beside anything else. It needs Redis and NATS: make test starts them.
func TestPluginAuthorGuide(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "plugin-author-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	out := t.TempDir()
	binDir := regexp.MustCompile(`(^|[\s=(])(\.\./\.\./)?bin/`)
	block := func(marker string) string {
		t.Helper()
		s := guideBlock(t, guide, marker)
		return binDir.ReplaceAllString(s, "${1}"+out+"/")
	}

	// 4. Build: both plugins and sessiond, and a digest printed for each plugin.
	built := guideRun(t, root, block("guide:build"))
	redisSum, natsSum := guideDigest(t, filepath.Join(out, "plugins", "sessiond-redis")), guideDigest(t, filepath.Join(out, "plugins", "sessiond-nats"))
	for _, want := range []string{redisSum + "  " + out + "/plugins/sessiond-redis", natsSum + "  " + out + "/plugins/sessiond-nats"} {
		if !strings.Contains(built, want) {
			t.Errorf("the build block's sha256sum did not print %q:\n%s", want, built)
		}
	}
	register := block("guide:register")

	// 6. show-config lists the plugin's options, typed and with their defaults, as shown.
	shown := guideRun(t, root, register+block("guide:show-config"))
	sha := regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	normalise := func(s string) []string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			lines = append(lines, strings.Join(strings.Fields(sha.ReplaceAllString(l, "<sha256>")), " "))
		}
		return lines
	}
	if got, want := normalise(shown), normalise(guideBlock(t, guide, "guide:show-config-output")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("show-config prints:\n%s\nthe guide shows:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(shown, redisSum) {
		t.Errorf("show-config does not show the registered digest %s:\n%s", redisSum, shown)
	}

	// 6. The configuration reference has a section for the plugin, as shown.
	refDir := t.TempDir()
	guideRun(t, root, register+strings.ReplaceAll(block("guide:reference"), "> reference.md", "> "+filepath.Join(refDir, "reference.md")))
	ref, err := os.ReadFile(filepath.Join(refDir, "reference.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := guideBlock(t, guide, "guide:reference-output"); !strings.Contains(string(ref), want) {
		t.Errorf("config reference has no section as the guide shows:\n%s\nit printed:\n%s", want, ref)
	}

	// 7. plugins list: a row per provider with version, protocol, pid, state and digest.
	listed := guideRun(t, root, register+block("guide:plugins-list"))
	gotRows, wantRows := guideRows(t, listed), guideRows(t, guideBlock(t, guide, "guide:plugins-list-output"))
	if len(gotRows) != len(wantRows) {
		t.Errorf("plugins list prints %d providers, the guide shows %d:\n%s", len(gotRows), len(wantRows), listed)
	}
	digests := map[string]string{"sessiond-redis": redisSum, "sessiond-nats": natsSum}
	for i := range min(len(gotRows), len(wantRows)) {
		got, want := gotRows[i], wantRows[i]
		if got["SPI"] != want["SPI"] || got["PROVIDER"] != want["PROVIDER"] || got["MODE"] != want["MODE"] || got["STATE"] != want["STATE"] ||
			!regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(got["PID"]) || !sha.MatchString(got["SHA256"]) ||
			filepath.Base(got["COMMAND"]) != filepath.Base(want["COMMAND"]) {
			t.Errorf("plugins list row %d is %v, the guide shows %v", i, got, want)
		}
		if sum, thirdParty := digests[filepath.Base(got["COMMAND"])]; thirdParty {
			if got["VERSION"] != want["VERSION"] || got["PROTOCOL"] != want["PROTOCOL"] || got["SHA256"] != sum {
				t.Errorf("plugins list row %d is %v; want version %s, protocol %s, sha256 %s", i, got, want["VERSION"], want["PROTOCOL"], sum)
			}
		}
	}

	// 7. Run: sessiond on the Redis plugin, and the guide's client commands against it.
	prefix := "guidetest-" + guideRandom() + ":"
	t.Cleanup(func() {
		// The daemon has stopped by now (cleanups run last first); drop what it stored.
		script := "redis-cli --scan --pattern '" + prefix + "*' | xargs -r redis-cli del >/dev/null"
		if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
			t.Logf("removing the test's keys from Redis: %v\n%s", err, out)
		}
	})
	port := freePort(t)
	start := strings.TrimSpace(block("guide:start")) + " --http-port=" + port + " --spi-user-sessions-redis-key-prefix=" + prefix
	d := guideDaemon(t, root, register+"exec "+start)
	if !d.waitLog(`\[INFO\] +sessiond\.plugins\.user-sessions\.redis\.sessiond-redis: redis session store: .*key_prefix=`+regexp.QuoteMeta(prefix), 5*time.Second) {
		t.Errorf("the plugin's start-up line is not in sessiond's log:\n%s", d.log())
	}

	try := guideBlock(t, guide, "guide:try")
	try = strings.ReplaceAll(try, "127.0.0.1:8080", "127.0.0.1:"+port)
	try = strings.ReplaceAll(try, `"sessiond:r10:`, `"`+prefix+`r10:`)
	tried := guideRun(t, t.TempDir(), try)
	for _, want := range []string{`"name":"provider user-sessions/redis","status":"UP"`, `"name":"provider revocation-push/nats","status":"UP"`} {
		if !strings.Contains(tried, want) {
			t.Errorf("readiness does not report %s:\n%s", want, tried)
		}
	}
	for _, kind := range []string{"s", "c"} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix+"r10:quickstart:"+kind+":on:") + `[a-z0-9]+$`)
		if !re.MatchString(tried) {
			t.Errorf("redis-cli lists no %s:on key of the new session:\n%s", kind, tried)
		}
	}
}

// guideBlock returns the fenced block after the marker comment in the guide.
func guideBlock(t *testing.T, guide, marker string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\\s*```[a-z]*\\n(.*?)```")
	m := re.FindStringSubmatch(guide)
	if m == nil {
		t.Fatalf("docs/plugin-author-guide.md has no fenced block after <!-- %s -->", marker)
	}
	return m[1]
}

// guideRun runs script with bash in dir and returns its standard output; the test fails
// when it fails.
func guideRun(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v running:\n%s\nstdout:\n%s\nstderr:\n%s", err, script, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func guideDigest(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func guideRandom() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// guideRows parses the table plugins list prints, keyed by its header.
func guideRows(t *testing.T, table string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	header := strings.Fields(lines[0])
	var rows []map[string]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(header) {
			t.Fatalf("plugins list row %q does not have the %d columns of %v", l, len(header), header)
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// guideDaemon runs the guide's start command with bash (which execs sessiond) and waits
// until sessiond serves; it is stopped with SIGTERM when the test ends.
type guideProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

func guideDaemon(t *testing.T, dir, script string) *guideProcess {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &guideProcess{cmd: cmd, done: make(chan struct{})}
	started := make(chan struct{}, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if addrLine.MatchString(sc.Text()) {
				select {
				case started <- struct{}{}:
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
	case <-started:
	case <-d.done:
		t.Fatalf("sessiond exited before serving:\n%s", d.log())
	case <-time.After(3 * time.Minute): // a bound, not a figure: a loaded CI machine starts slowly
		t.Fatalf("sessiond did not start in 3 minutes:\n%s", d.log())
	}
	return d
}

func (d *guideProcess) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

func (d *guideProcess) waitLog(pattern string, timeout time.Duration) bool {
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if re.MatchString(d.log()) {
			return true
		}
	}
	return re.MatchString(d.log())
}
