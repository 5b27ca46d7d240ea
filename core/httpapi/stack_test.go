package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/actiontoken"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/core/dpop"
	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/core/httpapi"
	loginflow "github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/core/ssf"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The test realms, clients and credentials.
const (
	realmName     = "acme"
	otherRealm    = "other"  // the same clients, its own signing keys
	disabledRealm = "closed" // configured but disabled: answered as unknown
	unknownRealm  = "nowhere"

	confidential = "confidential" // client_secret_basic/post, may get offline tokens
	spa          = "spa"          // public
	adminApp     = "admin-app"    // confidential, with an admin URL
	short        = "short"        // confidential, with client-session and access-token overrides
	disabled     = "disabled"     // configured but disabled
	service      = "service"      // confidential, with a service account (client_credentials)
	// implicitClient is public with the implicit flow enabled (login_test.go).
	implicitClient = "implicit"

	// confidentialSecret holds characters RFC 6749 §2.3.1 makes clients form-encode
	// before Basic encoding, so the tests show both sides agree on it.
	confidentialSecret = "c0nf:id+ential/secret"
	otherSecret        = "another-secret"

	frontendToken = "frontend-credential"
	adminToken    = "admin-credential"

	user = "u-1"

	// The relying parties' redirect URIs (login_test.go): hosts the test browser never
	// reaches, it stops at the redirect.
	rpCallback  = "https://rp.test/callback"
	rpLoggedOut = "https://rp.test/bye"
	spaCallback = "https://spa.test/cb"
	// implicitCallback is implicitClient's.
	implicitCallback = "https://implicit.test/cb"

	// The per-client overrides of short.
	shortIdle   = 5 * time.Minute
	shortMax    = time.Hour
	shortAccess = time.Minute
)

// testRealms returns the realms every stack serves; change, when set, edits acme first.
func testRealms(change func(*realm.Realm)) []*realm.Realm {
	acme := &realm.Realm{Name: realmName, Enabled: true, Clients: []*realm.Client{
		{ClientID: confidential, Secret: confidentialSecret, Enabled: true, OfflineAccess: true,
			RedirectURIs: []string{rpCallback}, PostLogoutRedirectURIs: []string{rpLoggedOut}},
		{ClientID: spa, PublicClient: true, Enabled: true, RedirectURIs: []string{spaCallback}},
		{ClientID: adminApp, Secret: otherSecret, Enabled: true, AdminURL: "https://app.test/admin",
			BackchannelLogoutURL: "https://app.test/logout"},
		{ClientID: short, Secret: otherSecret, Enabled: true,
			SessionIdle: shortIdle, SessionMax: shortMax, AccessTokenLifespan: shortAccess},
		{ClientID: disabled, Secret: otherSecret, Enabled: false},
		{ClientID: service, Secret: otherSecret, Enabled: true, ServiceAccountsEnabled: true},
		{ClientID: implicitClient, PublicClient: true, Enabled: true, ImplicitFlowEnabled: true, RedirectURIs: []string{implicitCallback}},
	}}
	acme.SSOSessionIdleRememberMe = 2 * time.Hour
	if change != nil {
		change(acme)
	}
	other := &realm.Realm{Name: otherRealm, Enabled: true, Clients: []*realm.Client{
		{ClientID: confidential, Secret: confidentialSecret, Enabled: true},
	}}
	closed := &realm.Realm{Name: disabledRealm, Enabled: false, Clients: []*realm.Client{
		{ClientID: confidential, Secret: confidentialSecret, Enabled: true},
	}}
	return []*realm.Realm{acme, other, closed}
}

// clock is the controllable time of the session service, the token service and the key
// manager. It starts at the current second, so that libraries reading the real clock
// (golang.org/x/oauth2) agree with it until a test moves it.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Now().UTC().Truncate(time.Second)) }

// stackConfig is what a test may choose before a stack is built.
type stackConfig struct {
	store        usersessions.Provider // nil: a fresh in-process memory provider
	realm        func(*realm.Realm)
	noTransient  bool
	guard        authfail.Options // the failed-authentication guard's; the zero value slows nothing
	refuseLegacy bool             // legacy-tokens=refuse
	issuer       string           // the issuer base; "": the stack's own URL
}

// withIssuer issues and accepts tokens of issuer base, e.g. another stack's URL, as the
// nodes of one deployment share a hostname.
func withIssuer(base string) option {
	return func(c *stackConfig) { c.issuer = base }
}

// withLegacyRefused refuses tokens in the format from before at+jwt and realm secrets.
func withLegacyRefused() option {
	return func(c *stackConfig) { c.refuseLegacy = true }
}

type option func(*stackConfig)

// withStore serves the stack from store (a plugin, a counting wrapper).
func withStore(store usersessions.Provider) option {
	return func(c *stackConfig) { c.store = store }
}

// withGuard slows failed authentication with o (its clock is the stack's).
func withGuard(o authfail.Options) option {
	return func(c *stackConfig) { c.guard = o }
}

// withRealm edits the acme realm before it is loaded.
func withRealm(change func(*realm.Realm)) option {
	return func(c *stackConfig) {
		// Several edits apply in order.
		if before := c.realm; before != nil {
			c.realm = func(r *realm.Realm) { before(r); change(r) }
			return
		}
		c.realm = change
	}
}

// stack is sessiond's HTTP API over the real services, wired as core/runtime/services.go
// wires them, served by an httptest server whose URL is the issuer base.
type stack struct {
	ctx    context.Context
	clock  *clock
	store  usersessions.Provider
	cache  *cache.Cache
	realms *realm.Realms
	keys   *token.KeyManager
	tokens *token.Service
	ssf    *ssf.Transmitter // the Shared Signals transmitter (ssf_test.go)
	// actions is the action-token service (actions_test.go).
	actions *actiontoken.Service
	api     *httpapi.Server
	srv     *httptest.Server
	client  *http.Client
	adm     *adminFixture // the admin API's service and what it is wired to (admin_test.go)
	login   *loginflow.Service
	guard   *guardRecorder
	account *account.Service // the account API's service (account_test.go)
}

func newStack(tb testing.TB, opts ...option) *stack {
	tb.Helper()
	cfg := stackConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	s := &stack{ctx: context.Background(), clock: newClock(), store: cfg.store}
	if s.store == nil {
		s.store = memoryStore(tb)
	}
	var err error
	if s.realms, _, err = realm.NewRealms(testRealms(cfg.realm)...); err != nil {
		tb.Fatal(err)
	}
	// The issuer base is the server's own URL, known only once it listens: the mux takes
	// the API after the server has started.
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	tb.Cleanup(s.srv.Close)
	s.client = s.srv.Client()

	log := hclog.NewNullLogger()
	if s.keys, err = token.NewKeyManager(s.store, token.KeyOptions{Now: s.clock.Now, Log: log}); err != nil {
		tb.Fatal(err)
	}
	issuer := cfg.issuer
	if issuer == "" {
		issuer = s.srv.URL
	}
	s.tokens = token.New(s.keys, token.Options{IssuerBase: issuer, Now: s.clock.Now, RefuseLegacy: cfg.refuseLegacy})
	// As the runtime: the session cache, over group commit, over the provider.
	writer := groupcommit.New(s.store, groupcommit.Options{})
	tb.Cleanup(writer.Close)
	s.cache = cache.New(groupcommit.Front(s.store, writer), cache.Options{NodeID: testNode, Now: s.clock.Now, Log: log})
	follow, stop := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); s.cache.Follow(follow) }()
	tb.Cleanup(func() { stop(); <-followed })
	for !s.cache.Stats().Following {
		time.Sleep(time.Millisecond)
	}
	s.adm = newAdminFixture(s)
	// As the runtime: limits count in the store, and end sessions the admin API's way.
	limits := sessionlimit.New(sessionlimit.Deps{Store: s.store, End: s.adm.service.EndForLimit, Now: s.clock.Now, Log: log})
	sessions := session.New(session.Deps{
		Limits:             limits,
		Store:              s.cache,
		Realms:             s.realms,
		Tokens:             s.tokens,
		Now:                s.clock.Now,
		PersistentSessions: true,
		TransientSessions:  !cfg.noTransient,
		Log:                log,
		Records:            s.store,
	})
	s.actions = actiontoken.New(actiontoken.Deps{Tokens: s.tokens, Store: s.store, Realms: s.realms, Now: s.clock.Now, Log: log})
	s.login = loginflow.New(loginflow.Deps{
		Records: s.store, Sessions: sessions, UserSessions: s.cache, Tokens: s.tokens, Realms: s.realms,
		End: s.adm.service.EndSession, PersistentSessions: true, Now: s.clock.Now, Log: log,
	})
	s.ssf = newTransmitter(tb, s)
	s.guard = &guardRecorder{lines: &lineRecorder{}}
	cfg.guard.Now = s.clock.Now
	s.guard.Guard = authfail.New(s.guard.lines, cfg.guard)
	s.account = account.New(account.Deps{Tokens: s.tokens, Sessions: s.cache, Lister: s.store, End: s.adm.service,
		Realms: s.realms, NotBefore: s.adm.policies, PersistentSessions: true, Now: s.clock.Now, Log: log})
	s.api = httpapi.New(log, httpapi.Deps{
		Ready:         ready{},
		Sessions:      sessions,
		Keys:          s.keys,
		Realms:        s.realms,
		Issuer:        s.tokens.Issuer,
		FrontendToken: frontendToken,
		AdminToken:    adminToken,
		// The admin API (admin_test.go).
		AdminViewerToken: viewerToken,
		Admin:            s.adm.service,
		Guard:            s.guard,
		Actions:          s.actions,
		Login:            s.login,
		SSF:              s.ssf,
		// The account API (account_test.go).
		Account: s.account,
		DPoP:    dpop.New(s.store, dpop.Options{Now: s.clock.Now}),
	})
	mux.Handle("/", fromAddr(s.api))
	return s
}

// testAddrHeader sets the caller's address of a test request, as the runtime's trusted
// proxy middleware sets it from a proxy's headers: all test requests come from loopback.
const testAddrHeader = "X-Test-Remote-Addr"

func fromAddr(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get(testAddrHeader); a != "" {
			r.RemoteAddr = net.JoinHostPort(a, "40000")
		}
		next.ServeHTTP(w, r)
	})
}

// testNode is the node id of the stack: its own writes come back on the change feed with
// it, and the cache skips them as the runtime's does.
const testNode = "node-test"

// memoryStore is a memory provider configured as the runtime configures it.
func memoryStore(tb testing.TB) *memory.Provider {
	tb.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{spi.HostNodeID: testNode}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// guardRecorder is the runtime's guard, recording every refusal handed to it (before the
// aggregation) and every line it writes.
type guardRecorder struct {
	*authfail.Guard
	recorded[authfail.Refusal]
	lines *lineRecorder
}

func (g *guardRecorder) Refused(r authfail.Refusal) {
	g.add(r)
	g.Guard.Refused(r)
}

// lineRecorder keeps the lines the guard writes to the event log.
type lineRecorder struct{ recorded[authfail.Record] }

func (l *lineRecorder) AuthRefused(r authfail.Record) { l.add(r) }

type ready struct{}

func (ready) Checks(context.Context) []httpapi.Check { return nil }

// issuer is a realm's issuer URL.
func (s *stack) issuer(realmName string) string { return s.srv.URL + "/realms/" + realmName }

func oidcPath(realmName, endpoint string) string {
	return "/realms/" + realmName + "/protocol/openid-connect/" + endpoint
}

// The form endpoints of a realm.
func tokenPath(realmName string) string      { return oidcPath(realmName, "token") }
func introspectPath(realmName string) string { return oidcPath(realmName, "token/introspect") }
func revokePath(realmName string) string     { return oidcPath(realmName, "revoke") }
func logoutPath(realmName string) string     { return oidcPath(realmName, "logout") }

func sessionsPath(realmName string) string { return "/realms/" + realmName + "/sessions" }

// call is one HTTP request.
type call struct {
	method, path string
	header       http.Header
	body         string
}

// reply is an HTTP answer, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (s *stack) do(tb testing.TB, c call) reply {
	tb.Helper()
	req, err := http.NewRequestWithContext(s.ctx, c.method, s.srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

// decode reads a JSON answer of status want into v.
func (r reply) decode(tb testing.TB, want int, v any) {
	tb.Helper()
	if r.status != want {
		tb.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("answer %s: %v", r.body, err)
	}
}

// oauthError is the error shape of RFC 6749 §5.2.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// refused checks an error answer: its status, OAuth error code, a description containing
// desc, the JSON and no-store headers, and on 401 a challenge of the scheme expected.
func (r reply) refused(tb testing.TB, status int, code, desc string) oauthError {
	tb.Helper()
	var e oauthError
	r.decode(tb, status, &e)
	if e.Error != code || !strings.Contains(e.Description, desc) {
		tb.Errorf("refused with %s %q, want %s containing %q", e.Error, e.Description, code, desc)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control %q, want no-store", cc)
	}
	if status == http.StatusUnauthorized {
		scheme := "Basic "
		if code == "unauthorized" { // the front-end and admin APIs take a bearer credential
			scheme = "Bearer "
		}
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, scheme) {
			tb.Errorf("WWW-Authenticate %q, want a %schallenge (RFC 6749 §5.2, RFC 6750 §3)", ch, scheme)
		}
	}
	return e
}

// auth is a way of presenting client credentials to a form endpoint.
type auth func(h http.Header, form url.Values)

// basic is client_secret_basic, both parts form-encoded first (RFC 6749 §2.3.1).
func basic(id, secret string) auth {
	return func(h http.Header, _ url.Values) {
		r := http.Request{Header: h}
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
}

// post is client_secret_post.
func post(id, secret string) auth {
	return func(_ http.Header, f url.Values) { f.Set("client_id", id); f.Set("client_secret", secret) }
}

// public is a public client naming itself.
func public(id string) auth {
	return func(_ http.Header, f url.Values) { f.Set("client_id", id) }
}

func noAuth(http.Header, url.Values) {}

var confidentialAuth = basic(confidential, confidentialSecret)

// form is a form POST to path with the client credentials a presents.
func form(path string, a auth, params ...string) call {
	f := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		f.Add(params[i], params[i+1])
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	a(h, f)
	return call{method: http.MethodPost, path: path, header: h, body: f.Encode()}
}

func refreshCall(realmName string, a auth, refreshToken string) call {
	return form(tokenPath(realmName), a, "grant_type", "refresh_token", "refresh_token", refreshToken)
}

// tokens is a token endpoint or session API answer.
type tokens struct {
	SessionID        string `json:"session_id"`
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token"`
	TokenType        string `json:"token_type"`
	SessionState     string `json:"session_state"`
	Scope            string `json:"scope"`
}

func (s *stack) refresh(tb testing.TB, a auth, refreshToken string) tokens {
	tb.Helper()
	var t tokens
	s.do(tb, refreshCall(realmName, a, refreshToken)).decode(tb, http.StatusOK, &t)
	return t
}

// login is what the front-end posts to open a session.
type login struct {
	ClientID      string `json:"client_id,omitempty"`
	UserID        string `json:"user_id,omitempty"`
	Username      string `json:"username,omitempty"`
	RememberMe    bool   `json:"remember_me,omitempty"`
	Scope         string `json:"scope,omitempty"`
	OfflineAccess bool   `json:"offline_access,omitempty"`
	Transient     bool   `json:"transient,omitempty"`
}

// jsonCall is a JSON POST to path with the bearer credential.
func jsonCall(path, bearer string, v any) call {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return rawJSON(path, bearer, string(b))
}

func rawJSON(path, bearer, body string) call {
	h := http.Header{"Content-Type": {"application/json"}}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return call{method: http.MethodPost, path: path, header: h, body: body}
}

// open logs user in to l.ClientID (confidential by default) in realm acme.
func (s *stack) open(tb testing.TB, l login) tokens {
	tb.Helper()
	return s.openIn(tb, realmName, l)
}

func (s *stack) openIn(tb testing.TB, realmName string, l login) tokens {
	tb.Helper()
	var t tokens
	s.do(tb, jsonCall(sessionsPath(realmName), frontendToken, withDefaults(l))).decode(tb, http.StatusCreated, &t)
	return t
}

// withDefaults fills a login: alice on confidential, scope openid.
func withDefaults(l login) login {
	if l.ClientID == "" {
		l.ClientID = confidential
	}
	if l.UserID == "" {
		l.UserID, l.Username = user, "alice"
	}
	if l.Scope == "" {
		l.Scope = "openid"
	}
	return l
}

// attach adds client to the session id.
func (s *stack) attach(tb testing.TB, id, client, scope string) tokens {
	tb.Helper()
	var t tokens
	body := map[string]string{"client_id": client, "scope": scope}
	s.do(tb, jsonCall(sessionsPath(realmName)+"/"+id+"/clients", frontendToken, body)).decode(tb, http.StatusCreated, &t)
	return t
}

// introspection is the part of an RFC 7662 answer the tests read.
type introspection struct {
	Active   bool   `json:"active"`
	ClientID string `json:"client_id"`
	Username string `json:"username"`
	Sub      string `json:"sub"`
	Sid      string `json:"sid"`
	Typ      string `json:"typ"`
	Exp      int64  `json:"exp"`
	Scope    string `json:"scope"`
}

func (s *stack) introspect(tb testing.TB, raw string) introspection {
	tb.Helper()
	var in introspection
	s.do(tb, form(introspectPath(realmName), confidentialAuth, "token", raw)).decode(tb, http.StatusOK, &in)
	return in
}

// snapshot is every stored session of every realm, with its client sessions and their
// versions: what "the store is unchanged" compares.
func (s *stack) snapshot(tb testing.TB) []*usersessions.UserSession {
	tb.Helper()
	var all []*usersessions.UserSession
	for _, r := range []string{realmName, otherRealm, disabledRealm} {
		got, err := s.store.List(s.ctx, usersessions.Filter{RealmID: r, Offline: usersessions.Both}, usersessions.Page{Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		all = append(all, got...)
	}
	return all
}

func (s *stack) unchanged(tb testing.TB, before []*usersessions.UserSession) {
	tb.Helper()
	after := s.snapshot(tb)
	if !reflect.DeepEqual(before, after) {
		tb.Errorf("a refused request changed the store:\nbefore %s\nafter  %s", dump(before), dump(after))
	}
}

func dump(ss []*usersessions.UserSession) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s.ID + " v" + strconv.FormatInt(s.Version, 10) + " " + s.LastRefresh.Format(time.RFC3339) + " [")
		for id, c := range s.Clients {
			b.WriteString(" " + id + " v" + strconv.FormatInt(c.Version, 10) + " " + c.LastRefresh.Format(time.RFC3339))
		}
		b.WriteString(" ] ")
	}
	return b.String()
}
