package accountconsole

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
)

const issuerBase = "https://sso.test"

// fakeAccount is the account service: one person, alice, whose token is "at"; it records
// every acting call.
type fakeAccount struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeAccount) Authenticate(_ context.Context, realmName, raw string) (*account.Caller, error) {
	if raw != "at" {
		return nil, &account.TokenError{Description: "not alice's"}
	}
	return &account.Caller{Realm: realmName, UserID: "alice", Username: "alice", SessionID: "s-current"}, nil
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
	return &login.Exchange{Grant: &session.Grant{AccessToken: "at", RefreshToken: "rt", IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)}}, nil
}

type noRefresh struct{}

func (noRefresh) Refresh(context.Context, session.RefreshRequest) (*session.Grant, error) {
	return nil, &session.Error{Code: session.InvalidGrant, Description: "no"}
}

func newConsole(t *testing.T) (*Console, *fakeAccount) {
	t.Helper()
	acme := &realm.Realm{Name: "acme", Enabled: true, Clients: []*realm.Client{realm.AccountConsoleClient(issuerBase + "/realms/acme")}}
	bare := &realm.Realm{Name: "bare", Enabled: true, Clients: []*realm.Client{{ClientID: "app", Enabled: true, PublicClient: true}}}
	rs, _, err := realm.NewRealms(acme, bare)
	if err != nil {
		t.Fatal(err)
	}
	acc := &fakeAccount{}
	return New(Deps{Account: acc, Logins: fakeLogins{t}, Tokens: noRefresh{}, Realms: rs}), acc
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
	page := httptest.NewRequest(http.MethodGet, "/realms/acme/account/device-activity", nil)
	page.AddCookie(session)
	w = serve(c, page)
	body := w.Body.String()
	i := strings.Index(body, `name="csrf" value="`)
	if w.Code != http.StatusOK || i < 0 || !strings.Contains(body, "Current session") {
		t.Fatalf("device activity = %d:\n%s", w.Code, body)
	}
	csrf := body[i+len(`name="csrf" value="`):]
	return session, csrf[:strings.IndexByte(csrf, '"')]
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
