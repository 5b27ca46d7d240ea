package accountconsole

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/consolesession"
	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/internal/testmem"
)

const issuerBase = "https://sso.test"

// fakeAccount is the account service: one person, alice, whose token is accessToken and
// whose session is s-current until ended; it records every acting call.
type fakeAccount struct {
	mu    sync.Mutex
	calls []string
	ended bool
}

const accessToken, refreshToken = "access-token-of-alice", "refresh-token-of-alice"

func (f *fakeAccount) Authenticate(_ context.Context, realmName, raw string) (*account.Caller, error) {
	if raw != accessToken {
		return nil, &account.TokenError{Description: "not alice's"}
	}
	return &account.Caller{Realm: realmName, UserID: "alice", Username: "alice", SessionID: "s-current"}, nil
}

func (f *fakeAccount) Resume(_ context.Context, realmName, userID, sid, clientID string) (*account.Caller, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if userID != "alice" || sid != "s-current" || clientID != ClientID || f.ended {
		return nil, &account.TokenError{Description: "the sign-in's session has ended"}
	}
	return &account.Caller{Realm: realmName, UserID: "alice", Username: "alice", SessionID: "s-current", ClientID: clientID}, nil
}

// end ends alice's session elsewhere (another client's logout, an administrator).
func (f *fakeAccount) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = true
}

func (f *fakeAccount) Devices(context.Context, *account.Caller) ([]account.DeviceRep, error) {
	return []account.DeviceRep{{OS: "Linux", Sessions: []account.SessionRep{
		{ID: "s-current", Browser: "Firefox 128", OS: "Linux", Current: true, IPAddress: "192.0.2.1"},
		{ID: "s-other", Browser: "Chrome 126", OS: "Linux", IPAddress: "192.0.2.2"},
	}}}, nil
}

func (f *fakeAccount) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeAccount) Logout(_ context.Context, _ *account.Caller, id string) error {
	f.record("logout " + id)
	if id == "s-current" {
		f.end()
	}
	return nil
}

func (f *fakeAccount) LogoutAll(context.Context, *account.Caller, bool) (int, error) {
	f.record("logout-all")
	return 1, nil
}

func (f *fakeAccount) Applications(context.Context, *account.Caller) ([]account.ClientRep, error) {
	return nil, nil
}

func (f *fakeAccount) Revoke(_ context.Context, _ *account.Caller, clientID string) (int, error) {
	f.record("revoke " + clientID)
	return 1, nil
}

func (f *fakeAccount) acted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeLogins redeems the code "good" with the verifier it was started with.
type fakeLogins struct{ t *testing.T }

func (fakeLogins) Issuer(realmName string) string { return issuerBase + "/realms/" + realmName }

func (f fakeLogins) Redeem(_ context.Context, g login.CodeGrant) (*login.Exchange, error) {
	if g.Code != "good" || g.ClientID != ClientID || g.RedirectURI != issuerBase+"/realms/acme"+CallbackPath || g.Verifier == "" {
		return nil, &session.Error{Code: session.InvalidGrant, Description: "bad code"}
	}
	now := time.Now()
	return &login.Exchange{Grant: &session.Grant{AccessToken: accessToken, RefreshToken: refreshToken, IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)}}, nil
}

func newConsole(t *testing.T) (*Console, *fakeAccount) {
	t.Helper()
	acc := &fakeAccount{}
	return newNode(t, testmem.Store(t), acc), acc
}

// newNode is one node of the console over store and the account service acc: nodes over
// one store are a load balancer's view of the console, or a restart's.
func newNode(t *testing.T, store consolesession.Records, acc *fakeAccount) *Console {
	t.Helper()
	acme := &realm.Realm{Name: "acme", Enabled: true, Clients: []*realm.Client{realm.AccountConsoleClient(issuerBase + "/realms/acme")}}
	bare := &realm.Realm{Name: "bare", Enabled: true, Clients: []*realm.Client{{ClientID: "app", Enabled: true, PublicClient: true}}}
	rs, _, err := realm.NewRealms(acme, bare)
	if err != nil {
		t.Fatal(err)
	}
	return New(Deps{Account: acc, Logins: fakeLogins{t}, Realms: rs, Records: store})
}

// serve runs r through the console as the HTTP API mounts it, on the issuer's host unless
// r names another.
func serve(c *Console, r *http.Request) *httptest.ResponseRecorder {
	if r.Host == "example.com" { // httptest's default
		r.Host = "sso.test"
	}
	mux := http.NewServeMux()
	mux.Handle("GET /realms/{realm}/account/", c)
	mux.Handle("POST /realms/{realm}/account/", c)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// signIn goes through the sign-in: the redirect to the authorization endpoint, and the
// callback with the state; it returns the console's cookie and the page's CSRF token.
func signIn(t *testing.T, c *Console) (*http.Cookie, string) {
	t.Helper()
	w := serve(c, httptest.NewRequest(http.MethodGet, "/realms/acme/account/", nil))
	loc, _ := url.Parse(w.Header().Get("Location"))
	q := loc.Query()
	if w.Code != http.StatusSeeOther || loc.Path != "/realms/acme/protocol/openid-connect/auth" || q.Get("client_id") != ClientID ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		t.Fatalf("GET / = %d to %s, want the authorization endpoint with PKCE and state", w.Code, loc)
	}
	pending := w.Result().Cookies()[0]
	cb := httptest.NewRequest(http.MethodGet, "/realms/acme/account/callback?code=good&state="+url.QueryEscape(q.Get("state")), nil)
	cb.AddCookie(pending)
	w = serve(c, cb)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("callback = %d %s", w.Code, w.Body)
	}
	var session *http.Cookie
	for _, ck := range w.Result().Cookies() {
		if ck.Name == CookieName {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/realms/acme/account/" {
		t.Fatalf("console cookie %+v, want HttpOnly, SameSite=Lax, the realm's console path", session)
	}
	csrf, ok := devices(c, session)
	if !ok {
		t.Fatalf("device activity right after signing in: not signed in")
	}
	return session, csrf
}

// devices opens Device activity with the console cookie ck: ok and the page's CSRF token
// when it shows alice's sessions, false when it sends the browser to sign in.
func devices(c *Console, ck *http.Cookie) (csrf string, ok bool) {
	page := httptest.NewRequest(http.MethodGet, "/realms/acme/account/device-activity", nil)
	page.AddCookie(ck)
	w := serve(c, page)
	body := w.Body.String()
	i := strings.Index(body, `name="csrf" value="`)
	if w.Code != http.StatusOK || i < 0 || !strings.Contains(body, "Current session") {
		return "", false
	}
	csrf = body[i+len(`name="csrf" value="`):]
	return csrf[:strings.IndexByte(csrf, '"')], true
}

func post(path string, ck *http.Cookie, form url.Values, header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	if ck != nil {
		r.AddCookie(ck)
	}
	return r
}

// TestFormsRefuseCrossSiteAndStaleRequests: without the session's CSRF token, from another
// site, or without a console session, a form changes nothing; with them it acts.
func TestFormsRefuseCrossSiteAndStaleRequests(t *testing.T) {
	c, acc := newConsole(t)
	ck, csrf := signIn(t, c)
	const signOutOther = "/realms/acme/account/device-activity/s-other/signout"
	for _, tc := range []struct {
		name string
		r    *http.Request
		want int
	}{
		{"no CSRF token", post(signOutOther, ck, url.Values{}), http.StatusForbidden},
		{"a wrong CSRF token", post(signOutOther, ck, url.Values{"csrf": {"forged"}}), http.StatusForbidden},
		{"another site (Sec-Fetch-Site)", post(signOutOther, ck, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		{"another origin (Origin)", post(signOutOther, ck, url.Values{"csrf": {csrf}}, "Origin", "https://evil.test"), http.StatusForbidden},
		{"no console session", post(signOutOther, nil, url.Values{"csrf": {csrf}}), http.StatusSeeOther},
		{"revoke without a token", post("/realms/acme/account/apps/app/revoke", ck, url.Values{}), http.StatusForbidden},
		{"NUL in a form", post(signOutOther, ck, url.Values{"csrf": {csrf + "\x00"}}), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := serve(c, tc.r); w.Code != tc.want {
				t.Errorf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
			if got := acc.acted(); len(got) != 0 {
				t.Errorf("refused request acted: %q", got)
			}
		})
	}
	if w := serve(c, post(signOutOther, ck, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "same-origin")); w.Code != http.StatusSeeOther {
		t.Fatalf("same-origin form with the token = %d %s", w.Code, w.Body)
	}
	if got := acc.acted(); len(got) != 1 || got[0] != "logout s-other" {
		t.Errorf("acted %q, want the other session signed out", got)
	}
}

// TestSignInRefusesAForeignCallback: a callback with another state, or without the login
// cookie, gives no console session; a realm without the account-console client has no
// console.
func TestSignInRefusesAForeignCallback(t *testing.T) {
	c, _ := newConsole(t)
	w := serve(c, httptest.NewRequest(http.MethodGet, "/realms/acme/account/", nil))
	pending := w.Result().Cookies()[0]
	for _, tc := range []struct {
		name   string
		query  string
		cookie *http.Cookie
	}{
		{"another state", "code=good&state=forged", pending},
		{"no login cookie", "code=good&state=x", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/realms/acme/account/callback?"+tc.query, nil)
			if tc.cookie != nil {
				r.AddCookie(tc.cookie)
			}
			w := serve(c, r)
			for _, ck := range w.Result().Cookies() {
				if ck.Name == CookieName && ck.Value != "" {
					t.Errorf("a console session was given: %+v", ck)
				}
			}
			if w.Code != http.StatusBadRequest {
				t.Errorf("callback = %d, want 400", w.Code)
			}
		})
	}
	other := httptest.NewRequest(http.MethodGet, "/realms/acme/account/", nil)
	other.Host = "localhost:8080"
	if w := serve(c, other); w.Code != http.StatusSeeOther || w.Header().Get("Location") != issuerBase+"/realms/acme/account/" || len(w.Result().Cookies()) != 0 {
		t.Errorf("by another name of the host: %d to %q, want the issuer's console first, no cookie", w.Code, w.Header().Get("Location"))
	}
	if w := serve(c, httptest.NewRequest(http.MethodGet, "/realms/bare/account/", nil)); w.Code != http.StatusNotFound ||
		!strings.Contains(w.Body.String(), "account-console client") {
		t.Errorf("a realm without the client: %d %s", w.Code, w.Body)
	}
}

// TestSignInHoldsOnEveryNodeOfTheStore: two nodes over one store and one account service
// (a load balancer's view), and a third started later (a restart). Signed in on A, B and
// the restarted node show Device activity with the same CSRF token; the cookie holds no
// token; signed out on B, the old cookie opens nothing on A, even before the user
// session's end reaches A.
func TestSignInHoldsOnEveryNodeOfTheStore(t *testing.T) {
	store, acc := testmem.Store(t), &fakeAccount{}
	a, b := newNode(t, store, acc), newNode(t, store, acc)
	ck, csrf := signIn(t, a)
	for _, tc := range []struct {
		name string
		node *Console
	}{{"node B", b}, {"a restarted node", newNode(t, store, acc)}} {
		if got, ok := devices(tc.node, ck); !ok || got != csrf {
			t.Errorf("%s: signed in %v with CSRF %q, want signed in with node A's %q", tc.name, ok, got, csrf)
		}
	}
	for _, part := range strings.Split(ck.Value, ".") {
		raw, _ := base64.RawURLEncoding.DecodeString(part)
		if text := string(raw) + part; strings.Contains(text, accessToken) || strings.Contains(text, refreshToken) {
			t.Errorf("the console cookie holds a token: %s", raw)
		}
	}
	if w := serve(b, post("/realms/acme/account/signout", ck, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "same-origin")); w.Code != http.StatusOK {
		t.Fatalf("sign out on node B = %d %s", w.Code, w.Body)
	}
	if got := acc.acted(); len(got) != 1 || got[0] != "logout s-current" {
		t.Errorf("signing out acted %q, want alice's current session ended", got)
	}
	acc.mu.Lock()
	acc.ended = false // the user session's end has not reached node A's cache yet
	acc.mu.Unlock()
	if _, ok := devices(a, ck); ok {
		t.Errorf("node A, the old cookie after signing out on node B: still signed in")
	}
	if w := serve(a, post("/realms/acme/account/device-activity/s-other/signout", ck, url.Values{"csrf": {csrf}})); w.Code != http.StatusSeeOther ||
		len(acc.acted()) != 1 {
		t.Errorf("node A, a form with the old cookie: %d, acted %q; want sent to sign in, nothing done", w.Code, acc.acted())
	}
}

// TestTheUserSessionsEndEndsTheSignIn: a logout elsewhere, an administrator or "sign out
// all" ends the user session; the console's sign-in ends with it, and the page signs in
// again at the authorization endpoint.
func TestTheUserSessionsEndEndsTheSignIn(t *testing.T) {
	c, acc := newConsole(t)
	ck, _ := signIn(t, c)
	acc.end()
	page := httptest.NewRequest(http.MethodGet, "/realms/acme/account/device-activity", nil)
	page.AddCookie(ck)
	w := serve(c, page)
	if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, issuerBase+"/realms/acme/protocol/openid-connect/auth?") {
		t.Errorf("after the user session ended: %d to %q, want the authorization endpoint", w.Code, loc)
	}
}

// TestAnotherConsolesCookieOpensNothing: the admin console's cookie, from the same store,
// is not a sign-in here.
func TestAnotherConsolesCookieOpensNothing(t *testing.T) {
	store, acc := testmem.Store(t), &fakeAccount{}
	c := newNode(t, store, acc)
	adminSessions := consolesession.New(consolesession.Options{Records: store, Idle: time.Hour, Max: time.Hour})
	value, _, err := adminSessions.StartSession(context.Background(), consolesession.Session{Actor: "alice", Realm: "acme",
		UserSession: "s-current", Username: "alice"}, credential)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := devices(c, &http.Cookie{Name: CookieName, Value: value}); ok {
		t.Errorf("the admin console's cookie signed alice in to the account console")
	}
}
