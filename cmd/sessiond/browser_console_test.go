package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/internal/testbrowser"
)

// TestBrowserConsole_signInListSignOutARowSignOutAllRevocation runs a real browser (headless
// Debian Chromium) through the admin console of `sessiond start-dev`: sign in with the
// admin credential, list the realm's sessions, sign one out from its row, sign out all
// active sessions after the confirmation, set the not-before policy to now and push it,
// and sign out of the console. No page may report an error (a stylesheet or form the
// Content-Security-Policy refuses would).
func TestBrowserConsole_signInListSignOutARowSignOutAllRevocation(t *testing.T) {
	t.Parallel()
	const adminToken = "admin-token-of-the-console-browser-test-0123"
	const frontendToken = "frontend-token-of-the-console-browser-test-01"
	d := startDaemon(t, "--admin-token="+adminToken, "--frontend-token="+frontendToken)
	open := func(user string) string {
		body, _ := json.Marshal(map[string]any{"client_id": realm.DemoClient, "user_id": user, "username": user,
			"ip_address": "192.0.2.9", "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "scope": "openid"})
		req, _ := http.NewRequest(http.MethodPost, d.base+"/realms/"+realm.DemoRealm+"/sessions", bytes.NewReader(body))
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
	alice, _ := open("alice"), open("bob")
	b := testbrowser.New(t)
	console := d.base + "/admin/console/"

	step(t, b, "open the console", chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)))
	step(t, b, "sign in as the administrator", chromedp.SendKeys(chromedp.CSS(`input[name="credential"]`), adminToken),
		chromedp.Submit(chromedp.CSS(`input[name="credential"]`)), chromedp.WaitVisible(chromedp.CSS(`#realms`)))
	step(t, b, "pick the realm", chromedp.Click(chromedp.CSS(`#realms a`)), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
	table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`)))
	for _, want := range []string{"alice", "bob", "regular", "192.0.2.9", "Firefox 128 on Linux", realm.DemoClient} {
		if !strings.Contains(table, want) {
			t.Errorf("sessions table lacks %q:\n%s", want, table)
		}
	}

	step(t, b, "sign alice's session out from its row", chromedp.Click(chromedp.CSS(`tr[data-id="`+alice+`"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#result`))); !strings.Contains(got, alice) {
		t.Errorf("result %q, want alice's session ended", got)
	}
	step(t, b, "list the sessions again", chromedp.Navigate(console+"realms/"+realm.DemoRealm+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
	if table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`))); strings.Contains(table, "alice") || !strings.Contains(table, "bob") {
		t.Errorf("after the sign out, sessions:\n%s\nwant bob's only", table)
	}

	step(t, b, "open Actions", chromedp.Navigate(console+"realms/"+realm.DemoRealm+"/actions"), chromedp.WaitVisible(chromedp.CSS(`#logout-all`)))
	step(t, b, "ask to sign out all active sessions", chromedp.Click(chromedp.CSS(`#logout-all`)), chromedp.WaitVisible(chromedp.CSS(`#what`)))
	if what := read(t, b, chromedp.Text(chromedp.CSS(`#what`))); !strings.Contains(what, "does not revoke outstanding access tokens") {
		t.Errorf("confirmation %q: want what it does not revoke", what)
	}
	step(t, b, "confirm", chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#result`))); !strings.Contains(got, "1 active sessions have ended") {
		t.Errorf("sign out all: %q, want bob's session ended", got)
	}

	step(t, b, "open Actions again", chromedp.Navigate(console+"realms/"+realm.DemoRealm+"/actions"), chromedp.WaitVisible(chromedp.CSS(`#set-now`)))
	step(t, b, "set not-before to now", chromedp.Click(chromedp.CSS(`#set-now`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	step(t, b, "open Actions once more", chromedp.Navigate(console+"realms/"+realm.DemoRealm+"/actions"), chromedp.WaitVisible(chromedp.CSS(`#push`)))
	if nb := read(t, b, chromedp.Text(chromedp.CSS(`#not-before`))); nb == "none" || nb == "" {
		t.Errorf("not-before after Set to now: %q", nb)
	}
	step(t, b, "push it", chromedp.Click(chromedp.CSS(`#push`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))

	step(t, b, "sign out of the console", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)))
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages reported errors: %q", errs)
	}
}
