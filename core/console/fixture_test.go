package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/html"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/console"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The console's fixture: the real admin service and session service over an in-process
// memory store, with recording stand-ins for what other packages provide (not-before
// policies, revocation push, the audit sink) and the real failed-authentication guard.

const (
	realmName    = "acme"
	adminCred    = "admin-credential-0123456789abcdef"
	viewerCred   = "viewer-credential-0123456789abcdef"
	frontendCred = "frontend-credential-0123456789abcde"
	app          = "app"    // with an admin URL and a back-channel logout URL
	mobile       = "mobile" // offline tokens
	appAdminURL  = "https://app.test/admin"
	appLogoutURL = "https://app.test/logout"
	// consoleHostname is the hostname option: the public URL in front of a proxy that
	// does not pass the Host header on.
	consoleHostname = "https://sso.example.test"
)

type fixture struct {
	t        testing.TB
	store    usersessions.Provider
	lister   *countingLister
	realms   *realm.Realms
	admin    *admin.Service
	push     *recordingPush
	policies *memPolicies
	audit    *auditLog
	guard    *authfail.Guard
	refusals *refusalLog
	srv      *httptest.Server
	// usernames are the login usernames of users; a user not named here signs in as
	// <user>@example.test.
	usernames map[string]string
	console   *console.Console
	now       time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	mem := memory.New(hclog.NewNullLogger())
	if err := mem.Configure(context.Background(), spi.Config{spi.HostNodeID: "test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close(context.Background()) })
	return newFixtureOn(t, mem)
}

// newFixtureOn is the fixture over another store (PostgreSQL in the benchmark).
func newFixtureOn(t testing.TB, store usersessions.Provider) *fixture {
	t.Helper()
	f := &fixture{t: t, store: store, now: time.Now().UTC().Truncate(time.Second), audit: &auditLog{}, refusals: &refusalLog{}}
	var err error
	f.realms, _, err = realm.NewRealms(&realm.Realm{Name: realmName, Enabled: true, SessionLimits: realm.SessionLimits{
		UserRealm: realm.Limit{Max: 3}, Client: realm.Limit{Max: 2, Terminate: true}, CountOffline: true,
	}, Clients: []*realm.Client{
		{ClientID: app, ID: "app-uuid", Secret: "s", Enabled: true, AdminURL: appAdminURL, BackchannelLogoutURL: appLogoutURL},
		{ClientID: mobile, PublicClient: true, Enabled: true, OfflineAccess: true},
	}}, &realm.Realm{Name: "other", Enabled: true}, &realm.Realm{Name: "closed", Enabled: false})
	if err != nil {
		t.Fatal(err)
	}
	f.lister = &countingLister{Lister: f.store}
	f.push = &recordingPush{realms: f.realms}
	f.policies = &memPolicies{}
	f.guard = authfail.New(f.refusals, authfail.Options{Limit: 5, Window: time.Minute})
	f.admin = admin.New(admin.Deps{Store: f.lister, Sessions: f.store, Realms: f.realms, Policies: f.policies,
		Push: f.push, Audit: f.audit, Now: f.clock})
	sessions := session.New(session.Deps{Store: f.store, Realms: f.realms, Now: f.clock, Log: hclog.NewNullLogger()})
	c := console.New(console.Deps{
		Admin: f.admin, Explain: sessions, Realms: f.realms, Guard: f.guard, Now: f.clock,
		Credentials: admin.Credentials{Admin: adminCred, Viewer: viewerCred, Frontend: frontendCred},
		Warnings:    []string{"spi-x-y-z is set but provider y is not selected"},
		Hostname:    consoleHostname,
		Records:     store,
	})
	f.console = c
	f.srv = httptest.NewServer(c)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) clock() time.Time { return f.now }

// addSessions stores n sessions of kind (offline or not) for user, with the given clients.
func (f *fixture) addSessions(n int, prefix, user string, offline bool, clients ...string) []string {
	f.t.Helper()
	var batch []*usersessions.UserSession
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		username := f.usernames[user]
		if username == "" {
			username = user + "@example.test"
		}
		us := &usersessions.UserSession{ID: id, RealmID: realmName, UserID: user, LoginUsername: username, IPAddress: "192.0.2.7",
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
			Offline:   offline, State: usersessions.LoggedIn, Started: f.now.Add(-time.Minute), LastRefresh: f.now.Add(-time.Minute),
			ExpiresAt: f.now.Add(time.Hour), Clients: map[string]*usersessions.ClientSession{}}
		for _, c := range clients {
			us.Clients[c] = &usersessions.ClientSession{UserSessionID: id, RealmID: realmName, ClientID: c, Offline: offline,
				Started: us.Started, LastRefresh: us.LastRefresh, ExpiresAt: us.ExpiresAt}
		}
		batch = append(batch, us)
		ids = append(ids, id)
		if len(batch) == 1000 || i == n-1 {
			errs, err := f.store.Create(context.Background(), batch)
			if err != nil {
				f.t.Fatal(err)
			}
			for _, e := range errs {
				if e != nil {
					f.t.Fatal(e)
				}
			}
			batch = nil
		}
	}
	return ids
}

// browser is a cookie-keeping client of the console, as a browser on its own origin: its
// POSTs say Origin and Sec-Fetch-Site as a browser does.
type browser struct {
	f      *fixture
	client *http.Client
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// response is an answer with its body read and parsed.
type response struct {
	*http.Response
	body string
	doc  *html.Node
}

func (b *browser) do(req *http.Request) *response {
	b.f.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	doc, err := html.Parse(strings.NewReader(string(raw)))
	if err != nil {
		b.f.t.Fatal(err)
	}
	return &response{Response: res, body: string(raw), doc: doc}
}

func (b *browser) get(path string) *response {
	b.f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.f.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form as the console's own page would (same origin).
func (b *browser) post(path string, form url.Values) *response {
	b.f.t.Helper()
	return b.postWith(path, form, map[string]string{"Origin": b.f.srv.URL, "Sec-Fetch-Site": "same-origin"})
}

func (b *browser) postWith(path string, form url.Values, headers map[string]string) *response {
	b.f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// signIn signs in with cred and returns the CSRF token of the session.
func (b *browser) signIn(cred string) string {
	b.f.t.Helper()
	res := b.post("/admin/console/signin", url.Values{"credential": {cred}})
	if res.StatusCode != http.StatusSeeOther {
		b.f.t.Fatalf("sign in: %d %s", res.StatusCode, res.body)
	}
	page := b.get("/admin/console/realms/")
	tok := page.inputValue("csrf")
	if tok == "" {
		b.f.t.Fatalf("no CSRF token on the realm picker: %s", page.body)
	}
	return tok
}

// find returns the nodes that match.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var sb strings.Builder
	for _, t := range find(n, func(x *html.Node) bool { return x.Type == html.TextNode }) {
		sb.WriteString(t.Data)
		sb.WriteByte(' ') // cells and elements are apart on the page
	}
	return strings.Join(strings.Fields(sb.String()), " ")
}

func (r *response) byID(id string) *html.Node {
	got := find(r.doc, func(n *html.Node) bool { return n.Type == html.ElementNode && attr(n, "id") == id })
	if len(got) == 0 {
		return nil
	}
	return got[0]
}

func (r *response) textOf(id string) string {
	if n := r.byID(id); n != nil {
		return text(n)
	}
	return ""
}

func (r *response) inputValue(name string) string {
	for _, n := range find(r.doc, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") == name
	}) {
		return attr(n, "value")
	}
	return ""
}

// sessionIDs are the ids of the session rows, in order.
func (r *response) sessionIDs() []string {
	var ids []string
	for _, n := range find(r.doc, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "tr" && attr(n, "class") == "session"
	}) {
		ids = append(ids, attr(n, "data-id"))
	}
	return ids
}

// forms are the actions of the page's POST forms.
func (r *response) forms() []string {
	var out []string
	for _, n := range find(r.doc, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "form" && strings.EqualFold(attr(n, "method"), "post")
	}) {
		out = append(out, attr(n, "action"))
	}
	return out
}

func (r *response) link(id string) string {
	if n := r.byID(id); n != nil {
		return attr(n, "href")
	}
	return ""
}

// countingLister counts the admin service's listing calls and the largest page asked.
type countingLister struct {
	admin.Lister
	mu       sync.Mutex
	lists    int
	maxLimit int
}

func (c *countingLister) List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error) {
	c.mu.Lock()
	c.lists++
	c.maxLimit = max(c.maxLimit, p.Limit)
	c.mu.Unlock()
	return c.Lister.List(ctx, f, p)
}

func (c *countingLister) reset() (lists, maxLimit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lists, maxLimit = c.lists, c.maxLimit
	c.lists, c.maxLimit = 0, 0
	return lists, maxLimit
}

// recordingPush answers as if every client URL took its notice, except those in down.
type recordingPush struct {
	realms *realm.Realms
	mu     sync.Mutex
	down   []string
	logout [][]string // session ids per Logout call
	pushed []string
}

func (p *recordingPush) report(realmName string) admin.Report {
	var rep admin.Report
	r, _ := p.realms.Realm(realmName)
	for _, c := range r.Clients {
		if c.AdminURL == "" {
			continue
		}
		if slices.Contains(p.down, c.AdminURL) {
			rep.Failed = append(rep.Failed, c.AdminURL)
		} else {
			rep.Succeeded = append(rep.Succeeded, c.AdminURL)
		}
	}
	return rep
}

func (p *recordingPush) PushNotBefore(_ context.Context, realmName, clientID string) (admin.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushed = append(p.pushed, realmName+"/"+clientID)
	return p.report(realmName), nil
}

func (p *recordingPush) LogoutAll(_ context.Context, realmName string, _ time.Time) (admin.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.report(realmName), nil
}

func (p *recordingPush) Logout(_ context.Context, _ string, sessions []*usersessions.UserSession) (admin.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, s := range sessions {
		ids = append(ids, s.ID)
	}
	p.logout = append(p.logout, ids)
	return admin.Report{Succeeded: []string{appLogoutURL}}, nil
}

func (p *recordingPush) QueueLogout(_ context.Context, _ string, sessions []*usersessions.UserSession) (int, error) {
	return len(sessions), nil
}

func (p *recordingPush) Deliveries(context.Context, usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	return []*usersessions.Delivery{{ID: "d-1", RealmID: realmName, ClientID: app, Kind: "logout", Target: appLogoutURL,
		State: usersessions.Failed, Attempts: 10, LastError: "connection refused"}}, nil
}

type memPolicies struct {
	mu     sync.Mutex
	realm  map[string]time.Time
	client map[string]time.Time // by realm/clientId
}

func (p *memPolicies) Realm(name string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.realm[name]
}
func (p *memPolicies) Client(realmName, clientID string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client[realmName+"/"+clientID]
}
func (p *memPolicies) SetRealm(_ context.Context, name string, t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.realm == nil {
		p.realm = map[string]time.Time{}
	}
	p.realm[name] = t
	return nil
}
func (p *memPolicies) SetClient(_ context.Context, realmName, clientID string, t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		p.client = map[string]time.Time{}
	}
	p.client[realmName+"/"+clientID] = t
	return nil
}

type auditLog struct {
	mu     sync.Mutex
	events []admin.AuditEvent
}

func (a *auditLog) Record(e admin.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *auditLog) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		out = append(out, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	return out
}

// refusalLog is the guard's sink.
type refusalLog struct {
	mu      sync.Mutex
	records []authfail.Record
}

func (l *refusalLog) AuthRefused(r authfail.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
}

func (l *refusalLog) reasons() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		out = append(out, r.Actor+" "+r.Reason+" "+r.Action)
	}
	return out
}

type nodeT = html.Node

func isElem(n *html.Node, tag string) bool { return n.Type == html.ElementNode && n.Data == tag }
