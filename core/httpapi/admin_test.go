package httpapi_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The admin API's fixture: its service over the stack's store and session cache, with
// recording stand-ins for the two services other packages provide (not-before policies,
// revocation push) and for the audit sink.

const (
	viewerToken = "viewer-credential"
	// adminPageSize is the store page the admin service walks sets with in these tests:
	// small, so that a few sessions already take several pages.
	adminPageSize = 3
	// confidentialUUID is the internal id the admin tests give confidential (withUUIDs).
	confidentialUUID = "0b6c5d0e-7a43-4bb1-9f38-c0ffee000001"
)

type adminFixture struct {
	service  *admin.Service
	policies *fakePolicies
	push     *fakePush
	audit    *auditLog
	ends     *recordedEnds
}

// recordedEnds keeps what the admin service tells Shared Signals receivers of the sessions
// it ends: who ended each and why.
type recordedEnds struct {
	mu  sync.Mutex
	got []session.Ended
}

func (e *recordedEnds) SessionsEnded(_ context.Context, ends []session.Ended) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ends...)
	return nil
}

// of returns what receivers were told of session sid.
func (e *recordedEnds) of(sid string) []session.Ended {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []session.Ended
	for _, x := range e.got {
		if x.SessionID == sid {
			out = append(out, x)
		}
	}
	return out
}

func newAdminFixture(s *stack) *adminFixture {
	f := &adminFixture{policies: &fakePolicies{}, push: &fakePush{realms: s.realms}, audit: &auditLog{}, ends: &recordedEnds{}}
	f.service = admin.New(admin.Deps{
		Store: s.store, Sessions: s.cache, Realms: s.realms,
		Policies: f.policies, Push: f.push, Audit: f.audit, Keys: s.keys, Ends: f.ends,
		Now: s.clock.Now, PageSize: adminPageSize,
	})
	return f
}

// withUUIDs gives confidential an internal id different from its clientId, as Keycloak's
// client UUIDs are, so that the tests see which one each route takes.
func withUUIDs(r *realm.Realm) {
	c, _ := r.Client(confidential)
	c.ID = confidentialUUID
}

// fakePolicies keeps not-before policies in memory.
type fakePolicies struct {
	mu      sync.Mutex
	realms  map[string]time.Time
	clients map[[2]string]time.Time
}

func (p *fakePolicies) Realm(name string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.realms[name]
}

func (p *fakePolicies) Client(realmName, clientID string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clients[[2]string{realmName, clientID}]
}

func (p *fakePolicies) SetRealm(_ context.Context, name string, t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.realms == nil {
		p.realms = map[string]time.Time{}
	}
	p.realms[name] = t
	return nil
}

func (p *fakePolicies) SetClient(_ context.Context, realmName, clientID string, t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.clients == nil {
		p.clients = map[[2]string]time.Time{}
	}
	p.clients[[2]string{realmName, clientID}] = t
	return nil
}

// fakePush records what it is asked to send and answers as if every client with an admin
// URL took it, except the URLs listed in down.
type fakePush struct {
	realms *realm.Realms

	mu         sync.Mutex
	down       []string
	notBefore  []string // "realm/client" pushed ("realm/" for all clients)
	logoutAll  []time.Time
	logouts    [][]string // session ids, per Logout call
	deferred   []bool     // per Logout call: queued only (push.Deferred), not attempted
	deliveries []*usersessions.Delivery
}

func (p *fakePush) report(realmName, clientID string) admin.Report {
	var rep admin.Report
	r, _ := p.realms.Realm(realmName)
	for _, c := range r.Clients {
		if c.AdminURL == "" || (clientID != "" && c.ClientID != clientID) {
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

func (p *fakePush) PushNotBefore(_ context.Context, realmName, clientID string) (admin.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notBefore = append(p.notBefore, realmName+"/"+clientID)
	return p.report(realmName, clientID), nil
}

func (p *fakePush) LogoutAll(_ context.Context, realmName string, notBefore time.Time) (admin.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logoutAll = append(p.logoutAll, notBefore)
	return p.report(realmName, ""), nil
}

func (p *fakePush) Logout(_ context.Context, _ string, sessions []*usersessions.UserSession) (admin.Report, error) {
	p.noteLogout(sessions, false)
	return admin.Report{}, nil
}

func (p *fakePush) QueueLogout(_ context.Context, _ string, sessions []*usersessions.UserSession) (int, error) {
	p.noteLogout(sessions, true)
	return len(sessions), nil
}

// noteLogout records the ids of sessions sent a back-channel logout, and whether it was
// only queued.
func (p *fakePush) noteLogout(sessions []*usersessions.UserSession, queued bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, us := range sessions {
		ids = append(ids, us.ID)
	}
	p.logouts = append(p.logouts, ids)
	p.deferred = append(p.deferred, queued)
}

func (p *fakePush) Deliveries(_ context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*usersessions.Delivery
	for _, d := range p.deliveries {
		if d.RealmID == f.RealmID && (f.State == "" || d.State == f.State) && d.ID > f.Page.After && len(out) < f.Page.Limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (p *fakePush) loggedOut() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []string
	for _, ids := range p.logouts {
		all = append(all, ids...)
	}
	return all
}

// recorded keeps what a stand-in is handed, in order; safe for concurrent use.
type recorded[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *recorded[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
}

func (r *recorded[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.items)
}

func (r *recorded[T]) last(tb testing.TB) T {
	tb.Helper()
	all := r.all()
	if len(all) == 0 {
		tb.Fatal("nothing recorded")
	}
	return all[len(all)-1]
}

// auditLog records audit events.
type auditLog struct{ recorded[admin.AuditEvent] }

func (a *auditLog) Record(e admin.AuditEvent) { a.add(e) }

func pgStore(tb testing.TB, extra ...string) usersessions.Provider {
	tb.Helper()
	return pgProvider(tb, pgSchema(tb), testNode, extra...)
}

// pgSchema makes a random schema, dropped when the test ends, and returns the URL of the
// test database with that schema as its search path.
func pgSchema(tb testing.TB) string {
	tb.Helper()
	db, err := sqlx.Open("postgres", testpg.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("PostgreSQL at %s (run .ci/services): %v", testpg.URL(), err)
	}
	tb.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(testpg.URL())
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// pgProvider is a PostgreSQL provider on the database URL dbURL, as node.
func pgProvider(tb testing.TB, dbURL, node string, extra ...string) usersessions.Provider {
	tb.Helper()
	p := postgres.New(hclog.NewNullLogger())
	cfg := spi.Config{postgres.OptURL: dbURL, spi.HostNodeID: node}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i]] = extra[i+1]
	}
	if err := p.Configure(context.Background(), cfg); err != nil {
		tb.Fatalf("configure postgres: %v", err)
	}
	// Registered after the schema's drop, so it runs first: the provider has let go of
	// its connections (and its change feed) before the schema goes.
	tb.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// adminCall is a request to the admin API of realm with a bearer credential ("" for none).
func adminCall(method, realmName, path, bearer, body string) call {
	c := call{method: method, path: "/admin/realms/" + realmName + path, header: map[string][]string{}, body: body}
	if bearer != "" {
		c.header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		c.header.Set("Content-Type", "application/json")
	}
	return c
}

// sessionIDs are the ids of session representations, sorted.
func sessionIDs(reps []admin.SessionRep) []string {
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	return ids
}

// storedIDs are the ids of the stored sessions of acme that f's other fields select.
func (s *stack) storedIDs(tb testing.TB, f usersessions.Filter) []string {
	tb.Helper()
	f.RealmID = realmName
	got, err := s.store.List(s.ctx, f, usersessions.Page{Limit: 10000})
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, len(got))
	for i, us := range got {
		ids[i] = us.ID
	}
	return ids
}

func sortedCopy[T cmp.Ordered](s []T) []T {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
