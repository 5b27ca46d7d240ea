package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	loginflow "github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Fuzzing of the login flows' decoders (issue 16): the authorization endpoint's query and
// the token endpoint's authorization_code grant. Bad input gets the RFC's error and changes
// nothing: no session, and the fixture's code stays unused.

// fuzzFrontend is the fuzz realm's login front-end: never visited, only redirected to.
const fuzzFrontend = "https://frontend.test/login"

// freshCode runs a login by hand over the front-end API (no browser, no front-end server)
// and returns its code.
func (h *fuzzStack) freshCode(tb testing.TB) string {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, Transport: h.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *url.URL {
		resp, err := noFollow.Get(u)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			tb.Fatalf("GET %s: %d, Location %q", u, resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc
	}
	s := &loginStack{stack: h.stack}
	challenge := get(s.authURL(confidential, rpCallback)).Query().Get("login_challenge")
	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	h.do(tb, jsonPut(loginRequestPath(realmName, challenge)+"/accept", frontendToken, map[string]any{"user_id": user})).decode(tb, http.StatusOK, &to)
	code := get(to.RedirectTo).Query().Get("code")
	if code == "" {
		tb.Fatal("the fixture's login got no code")
	}
	return code
}

// codeRecords returns the stored codes.
func (h *fuzzStack) codeRecords(tb testing.TB) []*usersessions.Record {
	tb.Helper()
	recs, err := h.store.ListRecords(h.ctx, loginflow.CodeKind)
	if err != nil {
		tb.Fatal(err)
	}
	slices.SortFunc(recs, func(a, b *usersessions.Record) int { return strings.Compare(a.Key, b.Key) })
	return recs
}

// codeUnchanged fails a refused input that changed a stored code (used it, for one).
func (h *fuzzStack) codeUnchanged(t *testing.T, a answer) {
	t.Helper()
	after := h.codeRecords(t)
	if len(after) != len(h.codes) {
		t.Fatalf("answered %d and changed the number of codes: %s", a.Code, a.in)
	}
	for i := range after {
		if !bytes.Equal(after[i].Value, h.codes[i].Value) || after[i].Version != h.codes[i].Version {
			t.Fatalf("answered %d %s and changed a code: %s", a.Code, a.Body, a.in)
		}
	}
}

// checkCodeGrant checks a granted authorization_code request: only the fixture's code, by
// its client, with its redirect_uri and verifier, in its realm; then a new fixture.
func (h *fuzzStack) checkCodeGrant(t *testing.T, a answer, form url.Values) {
	t.Helper()
	switch {
	case a.in.realm != realmName || form.Get("code") != h.code:
		t.Fatalf("exchanged a code the realm did not issue: %s", a.in)
	case presentedClient(a.in.auth, form) != confidential:
		t.Fatalf("exchanged confidential's code for %q: %s", presentedClient(a.in.auth, form), a.in)
	case form.Get("redirect_uri") != rpCallback || form.Get("code_verifier") != testVerifier:
		t.Fatalf("exchanged a code with another redirect_uri or verifier: %s", a.in)
	}
	var got struct {
		tokens
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(a.Body.Bytes(), &got); err != nil || got.AccessToken == "" || got.IDToken == "" {
		t.Fatalf("code grant answer %s: %v", a.Body, err)
	}
	h.reset(t)
}

var (
	codeGrant = "grant_type=authorization_code&code={CODE}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"
	codeSeeds = []seed{
		formSeed("valid code grant", realmName, "{BASIC}", codeGrant, 200, ""),
		formSeed("client_secret_post", realmName, "", codeGrant+postSecret, 200, ""),
		formSeed("no code", realmName, "{BASIC}", "grant_type=authorization_code&redirect_uri={CALLBACK}&code_verifier={VERIFIER}", 400, "invalid_request"),
		formSeed("unknown code", realmName, "{BASIC}", "grant_type=authorization_code&code=abc&redirect_uri={CALLBACK}&code_verifier={VERIFIER}", 400, "invalid_grant"),
		formSeed("wrong verifier", realmName, "{BASIC}", "grant_type=authorization_code&code={CODE}&redirect_uri={CALLBACK}&code_verifier="+strings.Repeat("a", 43), 400, "invalid_grant"),
		formSeed("no verifier", realmName, "{BASIC}", "grant_type=authorization_code&code={CODE}&redirect_uri={CALLBACK}", 400, "invalid_grant"),
		formSeed("other redirect", realmName, "{BASIC}", "grant_type=authorization_code&code={CODE}&redirect_uri=https%3A%2F%2Frp.test%2F&code_verifier={VERIFIER}", 400, "invalid_grant"),
		formSeed("other client", realmName, "", codeGrant+"&client_id=spa", 400, "invalid_grant"),
		formSeed("other realm", otherRealm, "{BASIC}", codeGrant, 400, "invalid_grant"),
		formSeed("code twice", realmName, "{BASIC}", codeGrant+"&code={CODE}", 400, "invalid_request"),
		formSeed("a refresh token as code", realmName, "{BASIC}", "grant_type=authorization_code&code={RT}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}", 400, "invalid_grant"),
	}
)

// FuzzCodeGrant fuzzes the token endpoint's authorization_code grant around a live code.
func FuzzCodeGrant(f *testing.F) { fuzzForm(f, tokenTarget, codeSeeds) }

// authorizeSeeds are queries of GET /auth (in the body field; contentType and auth unused).
var authorizeSeeds = []seed{
	{name: "valid", realm: realmName, body: "response_type=code&client_id=confidential&redirect_uri={CALLBACK}&scope=openid&state=s", status: http.StatusFound},
	{name: "public client with PKCE", realm: realmName, body: "response_type=code&client_id=spa&redirect_uri=https%3A%2F%2Fspa.test%2Fcb&code_challenge=" + strings.Repeat("a", 43) + "&code_challenge_method=S256", status: http.StatusFound},
	{name: "unknown client", realm: realmName, body: "response_type=code&client_id=x&redirect_uri={CALLBACK}", status: http.StatusBadRequest},
	{name: "bad redirect", realm: realmName, body: "response_type=code&client_id=confidential&redirect_uri=https%3A%2F%2Fevil.test%2F", status: http.StatusBadRequest},
	{name: "prompt none", realm: realmName, body: "response_type=code&client_id=confidential&redirect_uri={CALLBACK}&prompt=none", status: http.StatusFound},
	{name: "token", realm: realmName, body: "response_type=token&client_id=confidential&redirect_uri={CALLBACK}", status: http.StatusFound},
	{name: "verifier", realm: realmName, body: "login_verifier=a.b", status: http.StatusBadRequest},
	{name: "unknown realm", realm: unknownRealm, body: "response_type=code", status: http.StatusBadRequest},
	{name: "bad escape", realm: realmName, body: "client_id=%zz", status: 0},
}

// runAuthorize serves one GET /auth: never a 5xx; a redirect goes to the front-end (and only
// then is an authentication session stored) or to the redirect_uri the query named, which
// must be registered, with an error, iss and no code; anything else is an HTML page. No
// session changes.
func runAuthorize(h *fuzzStack, t *testing.T, in input) answer {
	t.Helper()
	query := h.subst.Replace(in.body)
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, "http://sessiond.test/realms/"+url.PathEscape(in.realm)+"/protocol/openid-connect/auth", nil)
	if err != nil {
		t.Skipf("not a request: %v", err)
	}
	req.URL.RawQuery = query
	before, _ := h.store.ListRecords(h.ctx, loginflow.RequestKind)
	a := answer{ResponseRecorder: httptest.NewRecorder(), in: in, routed: routable.MatchString(in.realm)}
	h.api.ServeHTTP(a.ResponseRecorder, req)
	if a.Code >= 500 {
		t.Fatalf("answered %d to %q: %s", a.Code, query, a.Body)
	}
	after, _ := h.store.ListRecords(h.ctx, loginflow.RequestKind)
	loc := a.Header().Get("Location")
	params, _ := url.ParseQuery(query)
	switch {
	case !a.routed:
	case a.Code == http.StatusFound && strings.HasPrefix(loc, fuzzFrontend+"?login_challenge="):
		if len(after) != len(before)+1 {
			t.Fatalf("sent to the front-end with %d new authentication sessions: %q", len(after)-len(before), query)
		}
	case a.Code == http.StatusFound:
		u, err := url.Parse(loc)
		if err != nil || !strings.HasPrefix(loc, params.Get("redirect_uri")) || (params.Get("redirect_uri") != rpCallback && params.Get("redirect_uri") != spaCallback) {
			t.Fatalf("redirected to %q for %q", loc, query)
		}
		q := u.Query()
		if u.Fragment != "" {
			q, _ = url.ParseQuery(u.EscapedFragment())
		}
		if q.Get("error") == "" || q.Get("code") != "" || q.Get("access_token") != "" || q.Get("iss") != h.issuer(realmName) {
			t.Fatalf("redirected to the client without an error and iss, or with a code: %q for %q", loc, query)
		}
		fallthrough
	default:
		// Text no store can hold (NUL, invalid UTF-8) is refused before any route, in JSON
		// (text.go); everything else is a page.
		ct := a.Header().Get("Content-Type")
		if a.Code != http.StatusFound && (loc != "" || !strings.HasPrefix(ct, "text/html") && !(ct == "application/json" && a.Code == http.StatusBadRequest)) {
			t.Fatalf("answered %d, Location %q, Content-Type %q for %q", a.Code, loc, a.Header().Get("Content-Type"), query)
		}
		if len(after) != len(before) {
			t.Fatalf("stored an authentication session without sending the browser to the front-end: %q", query)
		}
	}
	h.settle(t, a, func() bool { return false })
	return a
}

// FuzzAuthorize fuzzes GET /realms/{realm}/protocol/openid-connect/auth.
func FuzzAuthorize(f *testing.F) {
	for _, s := range authorizeSeeds {
		f.Add(s.realm, s.body)
	}
	h := newFuzzStack(f)
	f.Fuzz(func(t *testing.T, realm, query string) {
		runAuthorize(h, t, input{realm: realm, body: query})
	})
}
