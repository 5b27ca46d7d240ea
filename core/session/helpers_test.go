package session

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const (
	realmName = "acme"
	user      = "u-1"
	day       = 24 * time.Hour
)

// t0 is when every test starts; whole seconds, as JWT times are.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// clock is the controllable time source shared by the service, the token service and the
// key manager.
type clock = testclock.Clock

// recorder keeps the events the service emits.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// last returns the last event of a type.
func (r *recorder) last(typ string) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Type == typ {
			return r.events[i], true
		}
	}
	return Event{}, false
}

// config is what a test may change before the fixture is built.
type config struct {
	realm      *realm.Realm
	persistent bool
	transient  bool
	// limits wires a session-limit enforcer over the store (limits_test.go).
	limits bool
}

// baseRealm has Keycloak's default timeouts and four public clients: app and other may get
// offline tokens, short has client session overrides, plain may not get offline tokens.
func baseRealm() *realm.Realm {
	return &realm.Realm{Name: realmName, Enabled: true, Clients: []*realm.Client{
		{ClientID: "app", Enabled: true, PublicClient: true, OfflineAccess: true},
		{ClientID: "other", Enabled: true, PublicClient: true, OfflineAccess: true},
		{ClientID: "short", Enabled: true, PublicClient: true, SessionIdle: 5 * time.Minute, SessionMax: time.Hour},
		{ClientID: "plain", Enabled: true, PublicClient: true},
		{ClientID: "off", Enabled: false, PublicClient: true},
	}}
}

// fixture is a Service over the real memory provider and the real token service.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock
	store  *memory.Provider
	realms *realm.Realms
	tokens *token.Service
	events *recorder
	svc    *Service
	// ended lists the sessions the limits ended, as "id" or "id offline".
	ended *recorded
}

func newFixture(t *testing.T, opts ...func(*config)) *fixture {
	t.Helper()
	cfg := &config{realm: baseRealm(), persistent: true, transient: true}
	for _, o := range opts {
		o(cfg)
	}
	f := &fixture{t: t, ctx: context.Background(), clock: testclock.New(t0), store: memory.New(hclog.NewNullLogger()), events: &recorder{}}
	zeta := &realm.Realm{Name: "zeta", Enabled: true, Clients: []*realm.Client{{ClientID: "app", Enabled: true, PublicClient: true}}}
	var err error
	if f.realms, _, err = realm.NewRealms(cfg.realm, zeta); err != nil {
		t.Fatal(err)
	}
	keys, err := token.NewKeyManager(f.store, token.KeyOptions{Now: f.clock.Now, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.tokens = token.New(keys, token.Options{IssuerBase: "https://sso.test", Now: f.clock.Now})
	d := Deps{
		Store: f.store, Realms: f.realms, Tokens: f.tokens, Now: f.clock.Now,
		PersistentSessions: cfg.persistent, TransientSessions: cfg.transient,
		Log: hclog.NewNullLogger(), Events: f.events, Records: f.store,
	}
	if cfg.limits {
		f.ended = &recorded{}
		d.Limits = sessionlimit.New(sessionlimit.Deps{Store: f.store, End: f.endForLimit, Now: f.clock.Now})
	}
	f.svc = New(d)
	return f
}

// withRealm changes the realm before the fixture is built.
func withRealm(change func(*realm.Realm)) func(*config) {
	return func(c *config) { change(c.realm) }
}

// rotation turns Revoke Refresh Token on with a max reuse and a grace window.
func rotation(maxReuse int, grace time.Duration) func(*config) {
	return withRealm(func(r *realm.Realm) {
		r.RevokeRefreshToken, r.RefreshTokenMaxReuse, r.RefreshTokenGraceWindow = true, maxReuse, grace
	})
}

// setRealm changes the live realm, as the admin API would.
func (f *fixture) setRealm(change func(*realm.Realm)) {
	f.t.Helper()
	r, ok := f.realms.Realm(realmName)
	if !ok {
		f.t.Fatal("no realm")
	}
	r = r.Clone()
	change(r)
	if _, err := f.realms.Put(r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) setClient(clientID string, change func(*realm.Client)) {
	f.setRealm(func(r *realm.Realm) {
		c, _ := r.Client(clientID)
		change(c)
	})
}

// open logs user in to app unless req says otherwise.
func (f *fixture) open(req OpenRequest) *Grant {
	f.t.Helper()
	req.Realm = orDefault(req.Realm, realmName)
	req.ClientID = orDefault(req.ClientID, "app")
	req.UserID = orDefault(req.UserID, user)
	req.Username = orDefault(req.Username, "alice")
	req.Scope = orDefault(req.Scope, "openid")
	g, err := f.svc.Open(f.ctx, req)
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	return g
}

// offline logs user in to app with an offline token.
func (f *fixture) offline() *Grant {
	f.t.Helper()
	g := f.open(OpenRequest{Scope: "openid offline_access", OfflineAccess: true})
	if g.RefreshTokenType != token.Offline {
		f.t.Fatalf("offline login got a %q token", g.RefreshTokenType)
	}
	return g
}

func (f *fixture) refresh(client, raw string) (*Grant, error) {
	return f.svc.Refresh(f.ctx, RefreshRequest{Realm: realmName, Client: client, RefreshToken: raw})
}

func (f *fixture) mustRefresh(client, raw string) *Grant {
	f.t.Helper()
	g, err := f.refresh(client, raw)
	if err != nil {
		f.t.Fatalf("refresh: %v", err)
	}
	return g
}

// sessions returns every stored session of the realm with its client sessions: what "the
// store is unchanged" compares.
func (f *fixture) sessions() []*usersessions.UserSession {
	f.t.Helper()
	got, err := f.store.List(f.ctx, usersessions.Filter{RealmID: realmName, Offline: usersessions.Both}, usersessions.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

func (f *fixture) session(id string, offline bool) *usersessions.UserSession {
	f.t.Helper()
	got, err := f.store.Get(f.ctx, []usersessions.Key{{RealmID: realmName, ID: id, Offline: offline}})
	if err != nil {
		f.t.Fatal(err)
	}
	return got[0]
}

func (f *fixture) unchanged(before []*usersessions.UserSession) {
	f.t.Helper()
	if after := f.sessions(); !reflect.DeepEqual(before, after) {
		f.t.Errorf("store changed by a refused call:\nbefore %s\nafter  %s", dump(before), dump(after))
	}
}

func dump(ss []*usersessions.UserSession) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s.ID + "/" + string(s.State) + " ")
		for id, c := range s.Clients {
			b.WriteString(id + ":" + c.LastRefresh.String() + ":" + c.CurrentRefreshToken + " ")
		}
	}
	return b.String()
}

// refusal asserts err is an *Error with code whose description contains want.
func refusal(t *testing.T, err error, code, want string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want an *Error %s %q", err, err, code, want)
	}
	if e.Code != code || !strings.Contains(e.Description, want) {
		t.Fatalf("refused with %s %q, want %s containing %q", e.Code, e.Description, code, want)
	}
	return e
}

// tamper changes one byte inside the token's signature.
func tamper(raw string) string {
	i := strings.LastIndex(raw, ".") + 10
	b := []byte(raw)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
