package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/internal/testbrowser"
)

// screenshots asks the console's browser test to save each page it visits as
// docs/img/console-<page>.png, for docs/admin-console.md and the README:
//
//	go test ./cmd/sessiond -run TestBrowserConsole -screenshots
var screenshots = flag.Bool("screenshots", false, "save the admin console's pages as docs/img/console-*.png")

// shot saves the page the browser shows as docs/img/console-<name>.png when -screenshots
// asks for it.
func shot(t *testing.T, b *testbrowser.Browser, name string) {
	t.Helper()
	if !*screenshots {
		return
	}
	png := read(t, b, chromedp.FullScreenshot(100)) // 100: PNG
	path := filepath.Join("..", "..", "docs", "img", "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserConsole_clickThroughEveryPage runs a real browser (headless Debian Chromium)
// through the admin console of `sessiond start-dev`: sign in with the admin credential, list
// the realm's sessions, filter them by type, page through them, see why one expires, sign
// one out from its row, open a client's tabs and set and push its not-before, find a user by
// username and revoke a consent, read the session limits, the push outbox and the realm
// settings, sign out all active sessions after the confirmation, set the realm's
// not-before to now and push it, and sign out of the console. No page may report an error
// (a stylesheet or form the Content-Security-Policy refuses would).
func TestBrowserConsole_clickThroughEveryPage(t *testing.T) {
	t.Parallel()
	const adminToken = "admin-token-of-the-console-browser-test-0123"
	const frontendToken = "frontend-token-of-the-console-browser-test-01"
	d := startDaemon(t, "--admin-token="+adminToken, "--frontend-token="+frontendToken)
	open := func(user string, offline bool) string {
		scope := "openid"
		if offline {
			scope += " offline_access"
		}
		body, _ := json.Marshal(map[string]any{"client_id": realm.DemoClient, "user_id": user, "username": user + "@example.test",
			"ip_address": "192.0.2.9", "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
			"scope": scope, "offline_access": offline})
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
	alice := open("alice", false)
	open("bob", false)
	open("carol", true) // a regular session and an offline one: a consent to revoke
	for i := range 3 {
		open(fmt.Sprintf("user-%d", i), false)
	}
	b := testbrowser.New(t)
	console := d.base + "/admin/console/"
	realmPage := console + "realms/" + realm.DemoRealm + "/"
	step(t, b, "a screen's size", chromedp.EmulateViewport(1280, 800))

	step(t, b, "open the console", chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)))
	shot(t, b, "signin")
	step(t, b, "sign in as the administrator", chromedp.SendKeys(chromedp.CSS(`input[name="credential"]`), adminToken),
		chromedp.Submit(chromedp.CSS(`input[name="credential"]`)), chromedp.WaitVisible(chromedp.CSS(`#realms`)))
	step(t, b, "pick the realm", chromedp.Click(chromedp.CSS(`#realms a`)), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
	shot(t, b, "sessions")
	table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`)))
	for _, want := range []string{"alice@example.test", "bob@example.test", "regular", "offline", "192.0.2.9", "Firefox 128 on Linux", realm.DemoClient} {
		if !strings.Contains(table, want) {
			t.Errorf("sessions table lacks %q:\n%s", want, table)
		}
	}

	step(t, b, "filter: offline sessions only", chromedp.SetValue(chromedp.CSS(`select[name="type"]`), "offline"),
		// The new page's option carries the attribute; SetValue set the old one's property only.
		chromedp.Click(chromedp.CSS(`#filter`)), chromedp.WaitReady(chromedp.CSS(`option[value="offline"][selected]`)))
	if table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`))); !strings.Contains(table, "carol") || strings.Contains(table, "alice") {
		t.Errorf("offline sessions:\n%s\nwant carol's only", table)
	}

	step(t, b, "regular sessions, 2 a page", chromedp.Navigate(realmPage+"sessions?type=regular&max=2"), chromedp.WaitVisible(chromedp.CSS(`#next`)))
	first := read(t, b, chromedp.Text(chromedp.CSS(`#sessions tbody`)))
	step(t, b, "next page", chromedp.Click(chromedp.CSS(`#next`)), chromedp.WaitVisible(chromedp.CSS(`#first`)))
	second := read(t, b, chromedp.Text(chromedp.CSS(`#sessions tbody`)))
	if first == second || strings.Count(second, "regular") != 2 {
		t.Errorf("first page:\n%s\nnext page:\n%s\nwant two other sessions", first, second)
	}
	step(t, b, "back to the first page", chromedp.Click(chromedp.CSS(`#first`)), chromedp.WaitNotPresent(chromedp.CSS(`#first`)),
		chromedp.WaitVisible(chromedp.CSS(`#next`)))
	if again := read(t, b, chromedp.Text(chromedp.CSS(`#sessions tbody`))); again != first {
		t.Errorf("first page again:\n%s\nwant\n%s", again, first)
	}

	step(t, b, "why does alice's session expire", chromedp.Navigate(realmPage+"sessions"),
		chromedp.Click(chromedp.CSS(`tr[data-id="`+alice+`"] a.explain`)), chromedp.WaitVisible(chromedp.CSS(`#explanation`)))
	shot(t, b, "explain")
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#explanation`))); !strings.Contains(got, "Idle") || !strings.Contains(got, realm.DemoClient) {
		t.Errorf("explanation %q", got)
	}

	step(t, b, "sign alice's session out from its row", chromedp.Navigate(realmPage+"sessions"),
		chromedp.Click(chromedp.CSS(`tr[data-id="`+alice+`"] button`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#result`))); !strings.Contains(got, alice) {
		t.Errorf("result %q, want alice's session ended", got)
	}
	step(t, b, "list the sessions again", chromedp.Navigate(realmPage+"sessions"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
	if table := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`))); strings.Contains(table, "alice") || !strings.Contains(table, "bob") {
		t.Errorf("after the sign out, sessions:\n%s\nwant bob's and not alice's", table)
	}

	step(t, b, "open Clients", chromedp.Click(chromedp.CSS(`nav a[href$="/clients"]`)), chromedp.WaitVisible(chromedp.CSS(`#clients`)))
	shot(t, b, "clients")
	row := `tr[data-client="` + realm.DemoClient + `"] `
	if active, offline := read(t, b, chromedp.Text(chromedp.CSS(row+`.active`))), read(t, b, chromedp.Text(chromedp.CSS(row+`.offline`))); active != "5" || offline != "1" {
		t.Errorf("client counts %s active, %s offline; want 5 and 1", active, offline)
	}
	step(t, b, "the client's Offline Access tab", chromedp.Click(chromedp.CSS(`tr[data-client="`+realm.DemoClient+`"] a.offline-tab`)),
		chromedp.WaitVisible(chromedp.CSS(`#tab`)))
	shot(t, b, "client")
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`))); !strings.Contains(got, "carol") {
		t.Errorf("offline access tab:\n%s\nwant carol's", got)
	}
	step(t, b, "set the client's not-before to now", chromedp.Click(chromedp.CSS(`#client-set-now`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#result`))); !strings.Contains(got, "Client "+realm.DemoClient+"'s not-before policy is") {
		t.Errorf("client not-before result %q", got)
	}
	step(t, b, "back to the client", chromedp.Click(chromedp.CSS(`#back`)), chromedp.WaitVisible(chromedp.CSS(`#client-push`)))
	if nb := read(t, b, chromedp.Text(chromedp.CSS(`#client-not-before`))); nb == "none" || nb == "" {
		t.Errorf("client not-before after Set to now: %q", nb)
	}
	step(t, b, "push the client's", chromedp.Click(chromedp.CSS(`#client-push`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))

	step(t, b, "open Users", chromedp.Click(chromedp.CSS(`nav a[href$="/users"]`)), chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)))
	step(t, b, "find carol by username", chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "carol@example.test"),
		chromedp.Submit(chromedp.CSS(`input[name="user"]`)), chromedp.WaitVisible(chromedp.CSS(`#consents`)))
	shot(t, b, "user")
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#resolved`))); !strings.Contains(got, "carol") {
		t.Errorf("username lookup %q", got)
	}
	step(t, b, "revoke carol's consent", chromedp.Click(chromedp.CSS(`#consents button`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#result`))); !strings.Contains(got, "offline tokens of client "+realm.DemoClient+" are revoked") {
		t.Errorf("revoke result %q", got)
	}
	step(t, b, "carol again", chromedp.Navigate(realmPage+"users?user=carol"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#sessions`))); strings.Contains(got, "offline") || !strings.Contains(got, "regular") {
		t.Errorf("carol's sessions after the revoke:\n%s\nwant her regular one only", got)
	}

	step(t, b, "open Session limits", chromedp.Click(chromedp.CSS(`nav a[href$="/limits"]`)), chromedp.WaitVisible(chromedp.CSS(`#limits`)))
	shot(t, b, "limits")
	step(t, b, "open the push outbox", chromedp.Click(chromedp.CSS(`nav a[href$="/deliveries"]`)), chromedp.WaitVisible(chromedp.CSS(`#deliveries`)))
	shot(t, b, "outbox")
	step(t, b, "open Realm settings", chromedp.Click(chromedp.CSS(`nav a[href$="/settings"]`)), chromedp.WaitVisible(chromedp.CSS(`#session-settings`)))
	shot(t, b, "settings")
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#session-settings`))); !strings.Contains(got, "SSO Session Idle") {
		t.Errorf("settings %q", got)
	}

	step(t, b, "open Actions", chromedp.Click(chromedp.CSS(`nav a[href$="/actions"]`)), chromedp.WaitVisible(chromedp.CSS(`#logout-all`)))
	shot(t, b, "actions")
	step(t, b, "ask to sign out all active sessions", chromedp.Click(chromedp.CSS(`#logout-all`)), chromedp.WaitVisible(chromedp.CSS(`#what`)))
	shot(t, b, "logout-all")
	if what := read(t, b, chromedp.Text(chromedp.CSS(`#what`))); !strings.Contains(what, "does not revoke outstanding access tokens") {
		t.Errorf("confirmation %q: want what it does not revoke", what)
	}
	step(t, b, "confirm", chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if got := read(t, b, chromedp.Text(chromedp.CSS(`#result`))); !strings.Contains(got, "5 active sessions have ended") {
		t.Errorf("sign out all: %q, want the 5 remaining sessions ended", got)
	}

	step(t, b, "open Actions again", chromedp.Navigate(realmPage+"actions"), chromedp.WaitVisible(chromedp.CSS(`#set-now`)))
	step(t, b, "set not-before to now", chromedp.Click(chromedp.CSS(`#set-now`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	step(t, b, "open Actions once more", chromedp.Navigate(realmPage+"actions"), chromedp.WaitVisible(chromedp.CSS(`#push`)))
	if nb := read(t, b, chromedp.Text(chromedp.CSS(`#not-before`))); nb == "none" || nb == "" {
		t.Errorf("not-before after Set to now: %q", nb)
	}
	step(t, b, "push it", chromedp.Click(chromedp.CSS(`#push`)), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	shot(t, b, "result")

	step(t, b, "sign out of the console", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)))
	step(t, b, "a page after signing out", chromedp.Navigate(realmPage+"sessions"), chromedp.WaitVisible(chromedp.CSS(`input[name="credential"]`)))
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages reported errors: %q", errs)
	}
}
