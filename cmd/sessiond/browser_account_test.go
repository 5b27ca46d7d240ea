package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/internal/testbrowser"
)

// TestBrowserAccount_signInDevicesSignOutAnotherRevoke runs a real browser (headless Debian
// Chromium) through the account console of `sessiond start-dev`: the console sends it
// through the realm's authorization endpoint (as the account-console client, with PKCE) to
// the development login page; signed in as alice, Device activity lists her sessions (the
// console's own marked current, one on a Mac from elsewhere, the one her offline login
// opened) and none of bob's; she signs the Mac out, revokes demo-app's offline tokens on
// Applications (the admin API then shows none), and signs out. No page may report an error.
// With -update it saves each page as docs/img/account-*.png.
func TestBrowserAccount_signInDevicesSignOutAnotherRevoke(t *testing.T) {
	t.Parallel()
	const adminToken = "admin-token-of-the-account-browser-test-0123"
	const frontendToken = "frontend-token-of-the-account-browser-test-01"
	d := startDaemon(t, "--admin-token="+adminToken, "--frontend-token="+frontendToken)
	open := func(user, ip, ua string, offline bool) string {
		body := map[string]any{"client_id": realm.DemoClient, "user_id": user, "username": user,
			"ip_address": ip, "user_agent": ua, "scope": "openid"}
		if offline {
			body["scope"], body["offline_access"] = "openid offline_access", true
		}
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, d.base+"/realms/"+realm.DemoRealm+"/sessions", bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+frontendToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			SessionID string `json:"session_id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&got)
		if resp.StatusCode != http.StatusCreated || got.SessionID == "" {
			t.Fatalf("open a session of %s: %d", user, resp.StatusCode)
		}
		return got.SessionID
	}
	const mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	const phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	onMac := open("alice", "198.51.100.23", mac, false)
	open("alice", "203.0.113.40", phone, true)
	bob := open("bob", "192.0.2.77", mac, false)

	b := testbrowser.New(t)
	account := d.base + "/realms/" + realm.DemoRealm + "/account/"
	step(t, b, "open the account console", chromedp.EmulateViewport(1200, 700), chromedp.Navigate(account), chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	if loc := read(t, b, chromedp.Location()); !strings.Contains(loc, "/realms/"+realm.DemoRealm+"/dev-login?login_challenge=") {
		t.Errorf("the sign-in page is at %s, want the development login page", loc)
	}
	step(t, b, "sign in as alice", chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]:not([name])`)), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
	if who := read(t, b, chromedp.Text(chromedp.CSS(`#user`))); who != "alice" {
		t.Errorf("signed in as %q, want alice", who)
	}
	table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`)))
	for _, want := range []string{"Current session", "Chrome 126 on macOS", "198.51.100.23", "Safari 17 on iOS", "203.0.113.40",
		realm.DemoClient, realm.AccountConsoleClientID} {
		if !strings.Contains(table, want) {
			t.Errorf("Device activity lacks %q:\n%s", want, table)
		}
	}
	rows := read(t, b, chromedp.Evaluate[int](`document.querySelectorAll("#sessions tr.session").length`))
	current := read(t, b, chromedp.Evaluate[int](`document.querySelectorAll("#sessions #current").length`))
	bobs := read(t, b, chromedp.Evaluate[int](`document.querySelectorAll('#sessions tr[data-id="`+bob+`"]').length`))
	if rows != 3 || current != 1 || bobs != 0 {
		t.Errorf("Device activity: %d sessions, %d current, %d of bob's; want alice's 3, 1 current, none of bob's", rows, current, bobs)
	}
	screenshot(t, b, "account-device-activity.png")

	// The forms are submitted through the browser (chromedp.Submit: the form's own POST, its
	// CSRF field and cookies), not by a synthesized mouse click, which on a loaded machine
	// missed its button about once in ten runs and left the page as it was.
	step(t, b, "sign the Mac out", chromedp.Submit(chromedp.CSS(`tr[data-id="`+onMac+`"] button`)), chromedp.WaitVisible(chromedp.CSS(`#done`)))
	if table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`))); strings.Contains(table, "macOS") || !strings.Contains(table, "Current session") {
		t.Errorf("after signing the Mac out:\n%s", table)
	}

	step(t, b, "open Applications", chromedp.Click(chromedp.CSS(`#nav-apps`)), chromedp.WaitVisible(chromedp.CSS(`#apps`)))
	apps := read(t, b, chromedp.Text(chromedp.CSS(`tr[data-client="`+realm.DemoClient+`"]`)))
	if !strings.Contains(apps, "yes") || !strings.Contains(apps, "offline_access") {
		t.Errorf("demo-app's row %q, want its offline access and scopes", apps)
	}
	screenshot(t, b, "account-applications.png")
	step(t, b, "revoke demo-app's offline access", chromedp.Submit(chromedp.CSS(`tr[data-client="`+realm.DemoClient+`"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#done`)))
	var offline []any
	adminJSON(t, d.base+"/admin/realms/"+realm.DemoRealm+"/users/alice/offline-sessions/"+realm.DemoClient, adminToken, &offline)
	if len(offline) != 0 {
		t.Errorf("alice's offline sessions of demo-app after the revocation: %v", offline)
	}
	var bobSessions []any
	adminJSON(t, d.base+"/admin/realms/"+realm.DemoRealm+"/users/bob/sessions", adminToken, &bobSessions)
	if len(bobSessions) != 1 {
		t.Errorf("bob's sessions: %v, want his one, untouched", bobSessions)
	}

	step(t, b, "sign out", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`#signedout`)))
	step(t, b, "open the console again", chromedp.Navigate(account), chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages reported errors: %q", errs)
	}
}

// adminJSON GETs an admin API path with the admin credential and decodes the answer.
func adminJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// screenshot saves the page as docs/img/name when the tests run with -update.
func screenshot(t *testing.T, b *testbrowser.Browser, name string) {
	t.Helper()
	if !*update {
		return
	}
	png := read(t, b, chromedp.FullScreenshot(100))
	path := filepath.Join("..", "..", "docs", "img", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
