package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// waitUp waits for readiness: the stored not-before policies load just after start-up.
func waitUp(t *testing.T, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, h := d.ready()
		if code == http.StatusOK && h.Status == "UP" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready = %d %+v, want 200 UP", code, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The delivering revocation-push providers run as plugin processes of the sessiond binary,
// like every built-in, and a webhook without its secret stops start-up with a clear error.
func TestRevocationPushProvidersAsPluginProcesses(t *testing.T) {
	t.Parallel()
	t.Run("adapter", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, "--spi-revocation-push-provider=adapter", "--spi-revocation-push-adapter-timeout=3s")
		waitUp(t, d)
		if kids := pluginChildren(t, d.cmd.Process.Pid); kids["revocation-push/adapter"] == 0 {
			t.Errorf("no plugin process for revocation-push/adapter among children %v", kids)
		}
	})
	t.Run("webhook", func(t *testing.T) {
		t.Parallel()
		const secret = "webhook-secret-never-shown"
		d := startDaemon(t, "--spi-revocation-push-provider=webhook", "--spi-revocation-push-webhook-secret="+secret)
		waitUp(t, d)
		if kids := pluginChildren(t, d.cmd.Process.Pid); kids["revocation-push/webhook"] == 0 {
			t.Errorf("no plugin process for revocation-push/webhook among children %v", kids)
		}
		code, out := runCLI(t, "show-config", "--spi-revocation-push-provider=webhook", "--spi-revocation-push-webhook-secret="+secret)
		if code != 0 || strings.Contains(out, secret) || !strings.Contains(out, "spi-revocation-push-webhook-secret") {
			t.Errorf("show-config exited %d and shows the secret or not the key:\n%s", code, out)
		}
		if logs := d.log(); strings.Contains(logs, secret) {
			t.Errorf("the webhook secret is in the log:\n%s", logs)
		}
	})
	t.Run("webhook without its secret", func(t *testing.T) {
		t.Parallel()
		code, out := runCLI(t, "start-dev", "--http-port=0", "--spi-revocation-push-provider=webhook")
		if code == 0 || !strings.Contains(out, "spi-revocation-push-webhook-secret is required") {
			t.Errorf("start-dev exited %d; want a failure naming the missing secret:\n%s", code, out)
		}
	})
}
