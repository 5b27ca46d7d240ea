package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccountGuide runs docs/account-console.md's commands as written: start-dev, the REST
// API calls with alice's access token (whose output must be the one the page shows), and a
// realm file with the page's account-console client, whose console then sends the browser
// to the realm's authorization endpoint. Only the port, the binary's path and the folder
// the daemons run in differ: each runs in a temporary folder of its own, where start-dev's
// embedded store (data/sessiond.db) goes, not in the checkout, which other tests share.
func TestAccountGuide(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "account-console.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	bin := sessiondBinary(t)
	port := freePort(t)
	local := func(s string) string {
		s = strings.ReplaceAll(s, "./sessiond ", bin+" ")
		s = strings.ReplaceAll(s, "--http-port=8080", "--http-port="+port)
		return strings.ReplaceAll(s, "127.0.0.1:8080", "127.0.0.1:"+port)
	}
	start := local(guideBlock(t, guide, "account:start"))
	guideDaemon(t, t.TempDir(), "exec "+strings.TrimSpace(start))

	got := guideRun(t, t.TempDir(), local(guideBlock(t, guide, "account:api")))
	if want := guideBlock(t, guide, "account:api-output"); got != want {
		t.Errorf("the REST API calls printed\n%s\nthe page shows\n%s", got, want)
	}

	// A realm file with the page's client, on the other port.
	client := guideBlock(t, guide, "account:client")
	port2 := freePort(t)
	base := "http://127.0.0.1:" + port2
	client = strings.ReplaceAll(client, "https://sso.example.com", base)
	dir := t.TempDir()
	file := filepath.Join(dir, "myrealm.json")
	if err := os.WriteFile(file, []byte(`{"realm": "myrealm", "enabled": true, "clients": [`+client+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	guideDaemon(t, t.TempDir(), "exec "+bin+" start-dev --http-host=127.0.0.1 --http-port="+port2+" --realm-file="+file)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/realms/myrealm/account/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(loc, base+"/realms/myrealm/protocol/openid-connect/auth?") || !strings.Contains(loc, "client_id=account-console") {
		t.Errorf("the console of a realm with the page's client: %d to %q, want the realm's authorization endpoint", resp.StatusCode, loc)
	}
}
