package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPreloadThroughThePluginProcess opens offline sessions, restarts sessiond on the same
// PostgreSQL store with the seed's preload flag, and checks that the store, a plugin
// process, streamed the realm once to the preload's workers, that every session was
// preloaded, and that each refreshes.
func TestPreloadThroughThePluginProcess(t *testing.T) {
	t.Parallel()
	const sessions = 30
	args := append(persistArgs(writeRealm(t)), "--spi-user-sessions-provider=postgres", "--spi-user-sessions-postgres-url="+pgSchema(t))
	dir := t.TempDir()

	first := startDaemonIn(t, dir, args...)
	c := newAPIClient(first.base, 10*time.Second)
	var tokens []string
	for i := range sessions {
		tokens = append(tokens, mustOpen(t, c, fmt.Sprint("user", i), true).RefreshToken)
	}
	c.close()
	stopDaemon(t, first)

	second := startDaemonIn(t, dir, append(args, "--spi-user-sessions-infinispan-preload-offline-sessions-from-database=true",
		"--spi-offline-preload-database-workers=3", "--spi-offline-preload-database-page-size=4")...)
	if !second.waitLog(fmt.Sprintf(`offline sessions preloaded.*sessions=%d`, sessions), 60*time.Second) {
		t.Fatalf("no log line of %d sessions preloaded:\n%s", sessions, second.log())
	}
	if !strings.Contains(second.log(), "the store streamed a realm once to all the workers") {
		t.Errorf("the plugin's store was not streamed once to the workers:\n%s", second.log())
	}
	c = newAPIClient(second.base, 10*time.Second)
	defer c.close()
	for i, rt := range tokens {
		r, err := c.refresh(rt)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || tokenType(t, r.RefreshToken) != "Offline" {
			t.Fatalf("refresh of preloaded offline session %d = %s, want 200 with an offline token", i, r.summary())
		}
	}
}
