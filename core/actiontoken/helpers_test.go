package actiontoken

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// t0 is a whole second, as JWT times are.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

const issuerBase = "https://sso.example.test"

// testRealms are acme, with an override for verify-email and a custom action, and other.
func testRealms(t testing.TB) *realm.Realms {
	t.Helper()
	acme := &realm.Realm{
		Name: "acme", Enabled: true,
		Timeouts: realm.Timeouts{UserActionLifespan: 7 * time.Minute, AdminActionLifespan: 10 * time.Hour},
		ActionLifespans: map[string]time.Duration{
			realm.ActionVerifyEmail: 20 * time.Minute,
			"acme.invite":           48 * time.Hour,
		},
		Clients: []*realm.Client{
			{ClientID: "app", Enabled: true, PublicClient: true, RedirectURIs: []string{"https://app.example.test/*", "https://exact.example.test/done"}},
			{ClientID: "off", Enabled: false, PublicClient: true},
		},
	}
	other := &realm.Realm{Name: "other", Enabled: true}
	rs, _, err := realm.NewRealms(acme, other)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// node is one sessiond's action-token service over a store, with its own key manager, as
// the runtime builds it.
type node struct {
	svc    *Service
	tokens *token.Service
}

func newNode(t testing.TB, store usersessions.Provider, clock *testclock.Clock, realms *realm.Realms) *node {
	t.Helper()
	keys, err := token.NewKeyManager(store, token.KeyOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tokens := token.New(keys, token.Options{IssuerBase: issuerBase, Now: clock.Now})
	return &node{tokens: tokens, svc: New(Deps{Tokens: tokens, Store: store, Realms: realms, Now: clock.Now, Log: hclog.NewNullLogger()})}
}

func memoryStore() usersessions.Provider { return memory.New(hclog.NewNullLogger()) }

// openPostgres opens the postgres provider on the schema at u, closed when t ends (before
// the schema is dropped).
func openPostgres(t *testing.T, u string) usersessions.Provider {
	t.Helper()
	p := postgres.New(hclog.NewNullLogger())
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	cfg[postgres.OptURL] = u
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatalf("postgres Configure: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("postgres Close: %v", err)
		}
	})
	return p
}

// mint issues a token or fails the test.
func mint(t testing.TB, mintFn func(context.Context, Request) (*Minted, error), req Request) *Minted {
	t.Helper()
	m, err := mintFn(context.Background(), req)
	if err != nil {
		t.Fatalf("mint %+v: %v", req, err)
	}
	return m
}

// wantCode fails the test unless err is an *Error with that code whose description holds desc.
func wantCode(t testing.TB, err error, code, desc string) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok || e.Code != code {
		t.Fatalf("error = %v (%T), want code %s", err, err, code)
	}
	if !strings.Contains(e.Description, desc) {
		t.Errorf("description %q does not contain %q", e.Description, desc)
	}
}
