package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/internal/testbrowser"
)

// TestBrowserLogin_devFrontEndSSOAndRPInitiatedLogout runs a real browser (headless Debian
// Chromium) through what a person does against `sessiond start-dev`: an application sends
// them to sessiond, the development login page takes a username, the application gets a
// code and verifies the ID token with the standard libraries; a second application gets a
// code with prompt=none and no page (SSO); the first one logs them out through
// end_session_endpoint, whose page loads the second one's front-channel logout URL, after
// which the SSO cookie and the session are gone. Cancel on the login page, and a logout
// without id_token_hint confirmed on sessiond's page, follow. No page may report an error.
//
// The application is on http://localhost and sessiond on http://127.0.0.1: two sites, so the
// SSO cookie's SameSite=Lax is exercised as a real deployment exercises it.
func TestBrowserLogin_devFrontEndSSOAndRPInitiatedLogout(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rp := newBrowserRP(t)
	d := startDaemon(t, "--realm-file="+rp.realmFile(t))
	rp.discover(t, d.base+"/realms/browser")
	b := testbrowser.New(t)
	sessiondRealm := d.base + "/realms/browser/"

	// The login: the application, sessiond's /auth, the development login page.
	step(t, b, "open the application's login", chromedp.Navigate(rp.origin+"/login?client=webapp"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	title := read(t, b, chromedp.Title())
	banner := read(t, b, chromedp.Text(chromedp.CSS(".warn")))
	if !strings.Contains(title, "not for production") || !strings.Contains(banner, "NOT FOR PRODUCTION") {
		t.Errorf("the development login page is not marked: title %q, banner %q", title, banner)
	}
	if loc := read(t, b, chromedp.Location()); !strings.HasPrefix(loc, sessiondRealm+"dev-login?login_challenge=") {
		t.Errorf("the login page is at %s, want sessiond's dev-login with a challenge", loc)
	}
	step(t, b, "sign in as alice", chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]:not([name])`)))
	if got := rp.page(t, b); got != "webapp: signed in as alice" {
		t.Fatalf("after signing in the application shows %q, want %q", got, "webapp: signed in as alice")
	}
	web := rp.login("webapp")
	if !introspect(t, d.base, web.accessToken) {
		t.Fatal("introspection of the new access token: inactive")
	}
	if !hasCookie(t, b, sessiondRealm, "SESSIOND_SSO") {
		t.Fatal("no SESSIOND_SSO cookie after the login")
	}

	// SSO: the second application asks with prompt=none, which cannot show a page.
	step(t, b, "open the portal with prompt=none", chromedp.Navigate(rp.origin+"/login?client=portal&prompt=none"))
	if got := rp.page(t, b); got != "portal: signed in as alice" {
		t.Fatalf("the portal with prompt=none shows %q, want %q (SSO)", got, "portal: signed in as alice")
	}
	portal := rp.login("portal")
	if portal.sid != web.sid {
		t.Errorf("the portal's ID token sid %q, the webapp's %q: not one SSO session", portal.sid, web.sid)
	}

	// RP-initiated logout, with id_token_hint and post_logout_redirect_uri.
	step(t, b, "log out from the application", chromedp.Navigate(rp.origin+"/logout"))
	if got := rp.page(t, b); got != "logged out" {
		t.Fatalf("after the logout the browser shows %q, want the application's %q", got, "logged out")
	}
	if hasCookie(t, b, sessiondRealm, "SESSIOND_SSO") {
		t.Error("the SESSIOND_SSO cookie survived the logout")
	}
	// The portal registered a front-channel logout URL: the logged-out page loaded it (in a
	// hidden iframe its Content-Security-Policy allows) before it went on to the webapp.
	if got, want := rp.frontChannelLogouts(), []string{d.base + "/realms/browser " + web.sid}; !slices.Equal(got, want) {
		t.Errorf("front-channel logouts received %q, want %q", got, want)
	}
	for _, l := range []*rpLogin{web, portal} {
		if introspect(t, d.base, l.accessToken) {
			t.Errorf("the %s access token is still active after the logout", l.client)
		}
	}
	step(t, b, "open the portal with prompt=none again", chromedp.Navigate(rp.origin+"/login?client=portal&prompt=none"))
	if got := rp.page(t, b); got != "portal: error login_required" {
		t.Errorf("prompt=none after the logout shows %q, want login_required", got)
	}
	step(t, b, "open the application's login again", chromedp.Navigate(rp.origin+"/login?client=webapp"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))

	// Cancel (not held back by the required username) sends access_denied to the client.
	step(t, b, "cancel the login", chromedp.Click(chromedp.CSS(`button[name="cancel"]`)))
	if got := rp.page(t, b); got != "webapp: error access_denied" {
		t.Errorf("after Cancel the application shows %q, want access_denied", got)
	}

	// A logout without id_token_hint asks first; confirming on sessiond's page ends the
	// session and goes on to the application.
	step(t, b, "open the application's login once more", chromedp.Navigate(rp.origin+"/login?client=webapp"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	step(t, b, "sign in as bob", chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]:not([name])`)))
	if got := rp.page(t, b); got != "webapp: signed in as bob" {
		t.Fatalf("after signing in again the application shows %q", got)
	}
	bob := rp.login("webapp")
	step(t, b, "log out without id_token_hint", chromedp.Navigate(rp.origin+"/logout?hint=no"),
		chromedp.WaitVisible(chromedp.CSS(`form button[type="submit"]`)))
	if h := read(t, b, chromedp.Text(chromedp.CSS("h1"))); h != "Log out?" {
		t.Errorf("logout without id_token_hint shows %q, want the confirmation", h)
	}
	step(t, b, "confirm the logout", chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	if got := rp.page(t, b); got != "logged out" {
		t.Fatalf("after the confirmed logout the browser shows %q, want the application's %q", got, "logged out")
	}
	if introspect(t, d.base, bob.accessToken) || hasCookie(t, b, sessiondRealm, "SESSIOND_SSO") {
		t.Error("the confirmed logout left the session active or its cookie")
	}

	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages reported errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("browser login, SSO and logout took %s, the start of sessiond and Chromium included", time.Since(start).Round(time.Millisecond))
}

// stepTimeout bounds one step, within the browser's own Timeout, so that a page that never
// comes fails that step with its name.
const stepTimeout = 30 * time.Second

func step(t *testing.T, b *testbrowser.Browser, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := b.Context()
	defer cancel()
	ctx, cancelStep := context.WithTimeout(ctx, stepTimeout)
	defer cancelStep()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := readErr(b, chromedp.Location())
		t.Fatalf("%s: %v (the browser is at %s)", what, err, loc)
	}
}

// read returns what a reads from the page, within stepTimeout.
func read[T any](t *testing.T, b *testbrowser.Browser, a chromedp.Action[T]) T {
	t.Helper()
	v, err := readErr(b, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readErr[T any](b *testbrowser.Browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := b.Context()
	defer cancel()
	ctx, cancelStep := context.WithTimeout(ctx, stepTimeout)
	defer cancelStep()
	return chromedp.Run(ctx, a)
}

// hasCookie reports whether the browser holds a cookie name for url.
func hasCookie(t *testing.T, b *testbrowser.Browser, url, name string) bool {
	t.Helper()
	ctx, cancel := b.Context()
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		t.Fatalf("read the browser's cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return true
		}
	}
	return false
}

// introspect asks sessiond whether token is active, as the webapp.
func introspect(t *testing.T, base, token string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/realms/browser/protocol/openid-connect/token/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.SetBasicAuth("webapp", "webapp-secret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("introspect: %v", err)
	}
	defer resp.Body.Close()
	var got struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: %d %v", resp.StatusCode, err)
	}
	return got.Active
}

// browserRP is a relying party in the test process, written as an application would be
// with golang.org/x/oauth2 and go-oidc: two clients of the realm, "webapp" (confidential)
// and "portal" (public), each with PKCE, state and nonce. Each page it renders says in
// #rp what happened, which the test reads.
type browserRP struct {
	srv      *httptest.Server
	origin   string // http://localhost:port
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	ctx      context.Context

	mu      sync.Mutex
	pending map[string]pendingLogin // by state
	logins  map[string]*rpLogin     // by client
	logout  string                  // the state of the logout under way
	ended   []string                // the front-channel logouts received, as "iss sid"
}

type pendingLogin struct{ client, verifier, nonce string }

type rpLogin struct {
	client, accessToken, idToken, sid string
}

func newBrowserRP(t *testing.T) *browserRP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &browserRP{pending: map[string]pendingLogin{}, logins: map[string]*rpLogin{}, ctx: context.Background()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", rp.startLogin)
	mux.HandleFunc("GET /callback/{client}", rp.callback)
	mux.HandleFunc("GET /logout", rp.startLogout)
	mux.HandleFunc("GET /logged-out", rp.loggedOut)
	mux.HandleFunc("GET /frontchannel", rp.frontChannel)
	rp.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	rp.srv.Start()
	t.Cleanup(rp.srv.Close)
	rp.origin = "http://localhost:" + fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	return rp
}

// realmFile writes testdata/browser-realm.json with this RP's origin in its URIs.
func (rp *browserRP) realmFile(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "browser-realm.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "browser-realm.json")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(raw), "RP_ORIGIN", rp.origin)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (rp *browserRP) discover(t *testing.T, issuer string) {
	t.Helper()
	p, err := oidc.NewProvider(rp.ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	rp.provider = p
	rp.verifier = p.Verifier(&oidc.Config{SkipClientIDCheck: true}) // aud is checked per client below
}

func (rp *browserRP) config(client string) *oauth2.Config {
	c := &oauth2.Config{ClientID: client, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.origin + "/callback/" + client, Scopes: []string{oidc.ScopeOpenID}}
	if client == "webapp" {
		c.ClientSecret = "webapp-secret"
	}
	return c
}

func (rp *browserRP) login(client string) *rpLogin {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.logins[client]
}

var rpPage = template.Must(template.New("rp").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>RP</title><link rel="icon" href="data:,"></head><body><p id="rp">{{.}}</p></body></html>`))

func (rp *browserRP) show(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = rpPage.Execute(w, fmt.Sprintf(format, args...))
}

func (rp *browserRP) startLogin(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("client")
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = pendingLogin{client: client, verifier: verifier, nonce: nonce}
	rp.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if p := r.URL.Query().Get("prompt"); p != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", p))
	}
	http.Redirect(w, r, rp.config(client).AuthCodeURL(state, opts...), http.StatusFound)
}

func (rp *browserRP) callback(w http.ResponseWriter, r *http.Request) {
	client, q := r.PathValue("client"), r.URL.Query()
	rp.mu.Lock()
	p, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	switch {
	case !ok || p.client != client:
		rp.show(w, http.StatusBadRequest, "%s: unknown state %q", client, q.Get("state"))
		return
	case q.Get("error") != "":
		rp.show(w, http.StatusOK, "%s: error %s", client, q.Get("error"))
		return
	}
	tok, err := rp.config(client).Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		rp.show(w, http.StatusBadGateway, "%s: exchange: %v", client, err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(r.Context(), raw)
	if err != nil {
		rp.show(w, http.StatusBadGateway, "%s: ID token refused: %v", client, err)
		return
	}
	if len(idt.Audience) != 1 || idt.Audience[0] != client || idt.Nonce != p.nonce {
		rp.show(w, http.StatusBadGateway, "%s: ID token aud %v, nonce %q, want %s and %q", client, idt.Audience, idt.Nonce, client, p.nonce)
		return
	}
	var claims struct {
		Sid string `json:"sid"`
	}
	var profile struct {
		Username string `json:"preferred_username"`
	}
	// The name comes from UserInfo, as an application reads the profile (the ID token
	// carries sub, which the development front-end makes the username too).
	info, err := rp.provider.UserInfo(r.Context(), oauth2.StaticTokenSource(tok))
	if err == nil {
		err = info.Claims(&profile)
	}
	if err == nil {
		err = idt.Claims(&claims)
	}
	if err != nil || info.Subject != idt.Subject {
		rp.show(w, http.StatusBadGateway, "%s: userinfo or ID token claims: %v", client, err)
		return
	}
	rp.mu.Lock()
	rp.logins[client] = &rpLogin{client: client, accessToken: tok.AccessToken, idToken: raw, sid: claims.Sid}
	rp.mu.Unlock()
	rp.show(w, http.StatusOK, "%s: signed in as %s", client, profile.Username)
}

// startLogout sends the browser to end_session_endpoint with the webapp's ID token, or with
// its client_id only when the query has hint=no.
func (rp *browserRP) startLogout(w http.ResponseWriter, r *http.Request) {
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := rp.provider.Claims(&meta); err != nil || meta.EndSession == "" {
		rp.show(w, http.StatusBadGateway, "no end_session_endpoint in discovery: %v", err)
		return
	}
	web := rp.login("webapp")
	if web == nil {
		rp.show(w, http.StatusBadRequest, "not signed in")
		return
	}
	state := rand.Text()
	rp.mu.Lock()
	rp.logout = state
	rp.mu.Unlock()
	q := url.Values{"post_logout_redirect_uri": {rp.origin + "/logged-out"}, "state": {state}}
	if r.URL.Query().Get("hint") == "no" {
		q.Set("client_id", "webapp")
	} else {
		q.Set("id_token_hint", web.idToken)
	}
	http.Redirect(w, r, meta.EndSession+"?"+q.Encode(), http.StatusFound)
}

func (rp *browserRP) loggedOut(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	want := rp.logout
	rp.mu.Unlock()
	if got := r.URL.Query().Get("state"); want == "" || got != want {
		rp.show(w, http.StatusBadRequest, "logout state %q, want %q", got, want)
		return
	}
	rp.show(w, http.StatusOK, "logged out")
}

// frontChannel is the portal's front-channel logout URL, which sessiond's logged-out page
// loads in an iframe.
func (rp *browserRP) frontChannel(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	rp.ended = append(rp.ended, r.URL.Query().Get("iss")+" "+r.URL.Query().Get("sid"))
	rp.mu.Unlock()
	rp.show(w, http.StatusOK, "portal: front-channel logout")
}

func (rp *browserRP) frontChannelLogouts() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.ended...)
}

// page waits for the RP's page and returns what it says.
func (rp *browserRP) page(t *testing.T, b *testbrowser.Browser) string {
	t.Helper()
	step(t, b, "wait for the application's page", chromedp.WaitVisible(chromedp.CSS("#rp")))
	return read(t, b, chromedp.Text(chromedp.CSS("#rp")))
}

// TestReadmeBrowserLogin does what README.md's "log in in a browser" note says, against
// `start-dev` with nothing else (the demo realm): it opens the note's URL (with the test's
// port for sessiond's), signs in on the development login page, and gets the code at the
// demo client's redirect URI, which it exchanges with the secret start-dev printed and
// checks with go-oidc. The browser's request to http://127.0.0.1:8080/callback is answered
// by the test (DevTools' Fetch domain), so nothing listening on port 8080 matters.
func TestReadmeBrowserLogin(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("<!-- readme:browser-login -->\\s*```text\\n(\\S+)\\n```").FindSubmatch(raw)
	if m == nil {
		t.Fatal("README.md has no ```text block with one URL after <!-- readme:browser-login -->")
	}
	const readmeBase, callback = "http://127.0.0.1:8080/realms/", "http://127.0.0.1:8080/callback"
	authURL := string(m[1])
	if !strings.HasPrefix(authURL, readmeBase) || !strings.Contains(authURL, "redirect_uri="+callback) {
		t.Fatalf("README's browser-login URL %q is not on %s with redirect_uri %s", authURL, readmeBase, callback)
	}
	d := startDaemon(t)
	secret := ""
	for deadline := time.Now().Add(10 * time.Second); secret == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s := regexp.MustCompile(`client "demo-app", client secret (\S+)`).FindStringSubmatch(d.printed()); s != nil {
			secret = s[1]
		}
	}
	if secret == "" {
		t.Fatalf("start-dev printed no demo client secret; stdout:\n%s", d.printed())
	}

	b := testbrowser.New(t)
	ctx, cancel := b.Context()
	defer cancel()
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: callback + "*"}}}); err != nil {
		t.Fatalf("intercept %s: %v", callback, err)
	}
	step(t, b, "open the README's URL", chromedp.Navigate(d.base+"/realms/"+strings.TrimPrefix(authURL, readmeBase)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	step(t, b, "sign in as alice", chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]:not([name])`)))
	var back string
	for ev, err := range paused {
		if err != nil {
			t.Fatalf("waiting for the browser at %s: %v", callback, err)
		}
		back = ev.Request.URL
		if _, err := chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: http.StatusOK,
			ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
			Body:            []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"></head><body><p id="app">the application</p></body></html>`)}); err != nil {
			t.Fatalf("answer the browser's request to %s: %v", back, err)
		}
		break
	}
	step(t, b, "wait for the application's page", chromedp.WaitVisible(chromedp.CSS("#app")))

	u, err := url.Parse(back)
	if err != nil || !strings.HasPrefix(back, callback+"?") || u.Query().Get("code") == "" || u.Query().Get("iss") != d.base+"/realms/demo" {
		t.Fatalf("the browser came back to %q, want %s?code=…&iss=%s/realms/demo", back, callback, d.base)
	}
	provider, err := oidc.NewProvider(ctx, d.base+"/realms/demo")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: "demo-app", ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: callback}
	tok, err := cfg.Exchange(ctx, u.Query().Get("code"))
	if err != nil {
		t.Fatalf("exchange the code as README says: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "demo-app"}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("ID token of the README's login: %v", err)
	}
	if idt.Subject != "alice" {
		t.Errorf("ID token of the README's login: sub %q, want alice", idt.Subject)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
