package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/testpg"
)

// TestPluginProcessesSeeNoneOfSessiondsSecrets: sessiond is given its credentials and a
// database password through its environment, as an operator would; none of them is in
// the environment of any of its plugin processes, which get their options through the
// configure call instead.
func TestPluginProcessesSeeNoneOfSessiondsSecrets(t *testing.T) {
	dbURL, err := url.Parse(testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	const dbPassword = "db-password-e2e-3b7a" // the test database trusts its clients: ignored
	dbURL.User = url.UserPassword(dbURL.User.Username(), dbPassword)
	secrets := map[string]string{
		"SESSIOND_ADMIN_TOKEN":                    "admin-token-e2e-5f1c0b9a7e",
		"SESSIOND_FRONTEND_TOKEN":                 "frontend-token-e2e-8d2e4a7c",
		"SESSIOND_SPI_USER_SESSIONS_PROVIDER":     "postgres",
		"SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL": dbURL.String(),
		"AWS_SECRET_ACCESS_KEY":                   "aws-secret-e2e-51e0",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	d := startDaemon(t)
	// The credentials did reach sessiond: it runs on them.
	if own := environOf(t, d.cmd.Process.Pid); !strings.Contains(own, secrets["SESSIOND_ADMIN_TOKEN"]) {
		t.Fatal("sessiond's own environment lacks the admin token: the test set nothing up")
	}
	kids := pluginChildren(t, d.cmd.Process.Pid)
	if kids["user-sessions/postgres"] == 0 || len(kids) != 4 {
		t.Fatalf("plugin processes: %v, want 4 with the postgres store", kids)
	}
	for name, pid := range kids {
		env := environOf(t, pid)
		for k, v := range secrets {
			if strings.Contains(env, k+"=") || strings.Contains(env, v) {
				t.Errorf("plugin %s (pid %d) has sessiond's %s in its environment", name, pid, k)
			}
		}
		if strings.Contains(env, dbPassword) {
			t.Errorf("plugin %s (pid %d) has the database password in its environment", name, pid)
		}
		if !strings.Contains(env, "\x00PATH=") && !strings.HasPrefix(env, "PATH=") {
			t.Errorf("plugin %s (pid %d) has no PATH: the environment was not read", name, pid)
		}
	}
}

// environOf is the environment pid started with, NUL between variables.
func environOf(t *testing.T, pid int) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
