package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
)

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
	*benchproc.Process
	base     string // http://127.0.0.1:port
	frontend string
}

func secret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// withSearchPath returns rawURL with search_path set to schema (and sslmode=disable if it
// names none).
func withSearchPath(rawURL, schema string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Query().Get("sslmode") == "" {
		q := u.Query()
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
	}
	return benchproc.SchemaURL(u.String(), schema)
}

// startSessiond runs `bin start` over plain HTTP (as behind a TLS-terminating proxy) with
// the PostgreSQL provider on schema, as a plugin process unless inProcess, and waits until
// it is ready.
func startSessiond(ctx context.Context, bin, realms, dbURL, schema, logDir, label string, inProcess bool) (*daemon, error) {
	lb, err := benchproc.NewLoopback()
	if err != nil {
		return nil, err
	}
	u, err := withSearchPath(dbURL, schema)
	if err != nil {
		return nil, err
	}
	d := &daemon{base: lb.URL(), frontend: secret()}
	args := append([]string{"start"}, lb.Args()...)
	args = append(args, "--realm-file="+realms,
		"--frontend-token="+d.frontend, "--admin-token="+secret(), "--key-encryption-key="+secret(),
		"--spi-user-sessions-postgres-url="+u)
	if inProcess {
		args = append(args, "--spi-user-sessions-postgres-in-process=true")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = logDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if d.Process, err = benchproc.Start(cmd, filepath.Join(logDir, label+".log"), nil); err != nil {
		return nil, err
	}
	if err := d.WaitReady(ctx, lb.ReadyURL(), 60*time.Second, benchproc.EveryInterval(100*time.Millisecond)); err != nil {
		d.Stop()
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return d, nil
}

// pids are the pids of the sessiond process and its plugin processes (for CPU time).
func (d *daemon) pids() []int {
	return append([]int{d.Pid()}, benchproc.Descendants(d.Pid())...)
}
