package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// accountRealm is a realm with the account console's client, whose redirect URI is on the
// nodes' shared public name (persistHostname).
const accountRealm = "acct"

const accountRealmJSON = `{
  "realm": "acct",
  "ssoSessionIdleTimeout": 1800,
  "ssoSessionMaxLifespan": 36000,
  "accessTokenLifespan": 300,
  "clients": [
    {
      "clientId": "account-console",
      "publicClient": true,
      "redirectUris": ["` + persistHostname + `/realms/acct/account/callback"],
      "attributes": {"pkce.code.challenge.method": "S256"}
    }
  ]
}`

// lbBrowser is a browser behind a load balancer: it asks for persistHostname, and each
// request goes to whichever node the test points it at.
type lbBrowser struct {
	t      *testing.T
	jar    *cookiejar.Jar
	client *http.Client
	node   string // host:port the next request goes to
}

func newLBBrowser(t *testing.T) *lbBrowser {
	b := &lbBrowser{t: t}
	b.jar, _ = cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	b.client = &http.Client{Jar: b.jar, Timeout: 20 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, // each request reaches the node it is pointed at
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, b.node)
		},
	}}
	return b
}

// on points the browser at node d.
func (b *lbBrowser) on(d *daemon) *lbBrowser {
	u, err := url.Parse(d.base)
	if err != nil {
		b.t.Fatal(err)
	}
	b.node = u.Host
	return b
}

// do sends a request following redirects (the jar keeps the cookies) and returns the last
// answer's status, address and body; redirects to another site are not followed.
func (b *lbBrowser) do(method, path string, form url.Values) (int, *url.URL, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, persistHostname+path, strings.NewReader(form.Encode()))
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin") // as a browser posts a page's own forms
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Request.URL, string(body)
}

var (
	csrfField      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	currentSession = regexp.MustCompile(`data-id="([^"]+)">\s*<td>[^<]*<span class="badge" id="current">`)
)

// devices opens Device activity: the CSRF token and the current session's id when it
// shows the person's sessions, "" when the node sent the browser to sign in.
func (b *lbBrowser) devices() (csrf, current string) {
	b.t.Helper()
	code, at, body := b.do(http.MethodGet, "/realms/"+accountRealm+"/account/device-activity", nil)
	switch {
	case code == http.StatusOK && strings.HasSuffix(at.Path, "/account/device-activity"):
		m, c := csrfField.FindStringSubmatch(body), currentSession.FindStringSubmatch(body)
		if m == nil || c == nil || !strings.Contains(body, `id="user">alice<`) {
			b.t.Fatalf("Device activity without a CSRF token, a current session or alice:\n%s", body)
		}
		return m[1], c[1]
	case strings.HasSuffix(at.Path, "/dev-login"):
		return "", ""
	}
	b.t.Fatalf("Device activity: %d at %s\n%s", code, at, body)
	return "", ""
}

// signIn signs alice in through the account console: the realm's authorization endpoint,
// the development login page, the console's callback, Device activity.
func (b *lbBrowser) signIn() (csrf, current string) {
	b.t.Helper()
	code, at, body := b.do(http.MethodGet, "/realms/"+accountRealm+"/account/", nil)
	challenge := at.Query().Get("login_challenge")
	if code != http.StatusOK || !strings.HasSuffix(at.Path, "/dev-login") || challenge == "" {
		b.t.Fatalf("the account console sent the browser to %d %s, want the development login page\n%s", code, at, body)
	}
	if code, at, body := b.do(http.MethodPost, at.Path, url.Values{"login_challenge": {challenge}, "username": {"alice"}}); code != http.StatusOK ||
		!strings.HasSuffix(at.Path, "/account/device-activity") {
		b.t.Fatalf("signing in as alice ended at %d %s\n%s", code, at, body)
	}
	csrf, current = b.devices()
	if csrf == "" {
		b.t.Fatal("right after signing in, Device activity sends the browser to sign in")
	}
	return csrf, current
}

// TestAccountConsoleSignInHoldsAcrossNodesAndARestart is a load balancer's view of the
// account console: two sessiond processes on one PostgreSQL schema, a person's requests
// going to either. Signed in on node A, Device activity works on node B with the same CSRF
// token, and on node A restarted; signed out on node B, the old cookie opens nothing on
// either. Signed in again, an administrator's logout of the user session on one node ends
// the console's sign-in on the other.
func TestAccountConsoleSignInHoldsAcrossNodesAndARestart(t *testing.T) {
	t.Parallel()
	var realmFile string
	a, b, dbURL := startTwoNodesWith(t, func(t *testing.T) string {
		realmFile = filepath.Join(t.TempDir(), "account-realm.json")
		if err := os.WriteFile(realmFile, []byte(accountRealmJSON), 0o600); err != nil {
			t.Fatal(err)
		}
		return realmFile
	})
	br := newLBBrowser(t)
	csrf, _ := br.on(a).signIn()
	if got, _ := br.on(b).devices(); got != csrf {
		t.Fatalf("node B after signing in on node A: CSRF %q, want signed in with node A's %q", got, csrf)
	}
	stopDaemon(t, a)
	a = startDaemonIn(t, t.TempDir(), append(persistArgs(realmFile), "--spi-user-sessions-provider=postgres",
		"--spi-user-sessions-postgres-url="+dbURL, "--node-id=node-a")...)
	if got, _ := br.on(a).devices(); got != csrf {
		t.Fatalf("node A restarted: CSRF %q, want still signed in with %q", got, csrf)
	}

	u, _ := url.Parse(persistHostname + "/realms/" + accountRealm + "/account/")
	old := br.jar.Cookies(u)
	if code, _, body := br.on(b).do(http.MethodPost, "/realms/"+accountRealm+"/account/signout", url.Values{"csrf": {csrf}}); code != http.StatusOK ||
		!strings.Contains(body, `id="signedout"`) {
		t.Fatalf("sign out on node B: %d\n%s", code, body)
	}
	for name, node := range map[string]*daemon{"node A": a, "node B": b} {
		br.jar.SetCookies(u, old)
		if got, _ := br.on(node).devices(); got != "" {
			t.Errorf("%s, the old cookie after signing out on node B: still signed in", name)
		}
	}

	_, current := br.on(a).signIn()
	req, _ := http.NewRequest(http.MethodDelete, a.base+"/admin/realms/"+accountRealm+"/sessions/"+current, nil)
	req.Header.Set("Authorization", "Bearer "+persistAdmin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("the admin API's logout of alice's session on node A: %d", res.StatusCode)
	}
	// Node B learns of the logout through the store's change feed.
	deadline := time.Now().Add(10 * invalidationBound)
	for got, _ := br.on(b).devices(); got != ""; got, _ = br.devices() {
		if time.Now().After(deadline) {
			t.Fatalf("node B %v after an administrator ended alice's session on node A: still signed in", 10*invalidationBound)
		}
		time.Sleep(pollEvery)
	}
}
