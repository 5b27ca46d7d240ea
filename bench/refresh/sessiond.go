package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// build compiles ./cmd/sessiond of the tree at dir into out.
func build(ctx context.Context, dir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/sessiond")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/sessiond in %s: %w\n%s", dir, err, b)
	}
	return nil
}

// buildBase builds sessiond at commit rev from a detached git worktree of the repository,
// removed again afterwards.
func buildBase(ctx context.Context, repo, rev, work, out string) error {
	dir := filepath.Join(work, "base-tree")
	if b, err := exec.CommandContext(ctx, "git", "-C", repo, "worktree", "add", "--detach", dir, rev).CombinedOutput(); err != nil {
		return fmt.Errorf("git worktree add %s: %w\n%s", rev, err, b)
	}
	defer exec.Command("git", "-C", repo, "worktree", "remove", "--force", dir).Run() //nolint:errcheck // best effort
	return build(ctx, dir, out)
}

// realmFile writes the run's realm file: realm rot-off (Revoke Refresh Token off) and
// rot-on (on), each with the confidential client "bench". Timeouts are the seeds'
// defaults: nothing in a 10-minute run expires.
func realmFile(dir string) (string, error) {
	realms := []map[string]any{}
	for _, r := range []struct {
		name   string
		revoke bool
	}{{"rot-off", false}, {"rot-on", true}} {
		realms = append(realms, map[string]any{
			"realm":                 r.name,
			"ssoSessionIdleTimeout": 1800,
			"ssoSessionMaxLifespan": 36000,
			"accessTokenLifespan":   300,
			"revokeRefreshToken":    r.revoke,
			"clients": []map[string]any{{
				"clientId": "bench", "secret": "bench-secret", "publicClient": false,
				"redirectUris": []string{"http://127.0.0.1/*"},
			}},
		})
	}
	b, err := json.MarshalIndent(realms, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "realms.json")
	return p, os.WriteFile(p, b, 0o600)
}

// daemon is one running `sessiond start`.
type daemon struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	frontend string
	logPath  string
	done     chan error
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p, nil
}

func secret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// withSearchPath returns rawURL with search_path set to schema.
func withSearchPath(rawURL, schema string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// startSessiond runs `bin start` over plain HTTP (as behind a TLS-terminating proxy) with
// the PostgreSQL provider on schema, as a plugin process unless inProcess, and waits until
// it is ready.
func startSessiond(ctx context.Context, bin, realms, dbURL, schema, logDir, label string, inProcess bool) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	u, err := withSearchPath(dbURL, schema)
	if err != nil {
		return nil, err
	}
	d := &daemon{base: "http://127.0.0.1:" + port, frontend: secret(), done: make(chan error, 1),
		logPath: filepath.Join(logDir, label+".log")}
	args := []string{"start",
		"--http-enabled=true", "--http-host=127.0.0.1", "--http-port=" + port, "--http-management-port=" + mport,
		"--hostname=" + d.base, "--realm-file=" + realms,
		"--frontend-token=" + d.frontend, "--admin-token=" + secret(), "--key-encryption-key=" + secret(),
		"--spi-user-sessions-postgres-url=" + u,
	}
	if inProcess {
		args = append(args, "--spi-user-sessions-postgres-in-process=true")
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Dir = logDir
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { d.done <- d.cmd.Wait(); logf.Close() }()
	ready := "http://127.0.0.1:" + mport + "/health/ready"
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-d.done:
			b, _ := os.ReadFile(d.logPath)
			return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", label, err, tail(b, 3000))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("%s not ready after 60 s; log in %s", label, d.logPath)
		}
	}
}

// stop ends sessiond with SIGTERM (a graceful shutdown) and waits; its plugin processes
// are its own children and end with it.
func (d *daemon) stop() {
	if d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the group we started
		<-d.done
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// countLines returns how many lines of sessiond's log contain s.
func countLines(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	return bytes.Count(b, []byte(s))
}

// pidOf returns the pids of the sessiond process and its plugin children (for CPU time).
func (d *daemon) pids() []int {
	pids := []int{d.cmd.Process.Pid}
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(d.cmd.Process.Pid)).Output()
	if err == nil {
		for _, f := range strings.Fields(string(out)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}
