package actiontoken

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Issue 16 item 6 and seeds 000/001/004: a user-initiated token lives the realm's override
// for its action, else User-Initiated Action Lifespan; an admin-initiated one the request's
// lifespan, else Default Admin-Initiated Action Lifespan (Keycloak's admin endpoints do not
// read the overrides).
func TestMint_lifespanByInitiatorAndAction(t *testing.T) {
	tests := []struct {
		name       string
		byAdmin    bool
		action     string
		lifespan   time.Duration
		want       time.Duration
		wantSource string
	}{
		{"user: override of verify-email", false, realm.ActionVerifyEmail, 0, 20 * time.Minute, FromOverride},
		{"user: override of a custom action", false, "acme.invite", 0, 48 * time.Hour, FromOverride},
		{"user: no override, User-Initiated Action Lifespan", false, realm.ActionResetCredentials, 0, 7 * time.Minute, FromUserDefault},
		{"user: custom action without override", false, "acme.other", 0, 7 * time.Minute, FromUserDefault},
		{"admin: Default Admin-Initiated Action Lifespan", true, realm.ActionExecuteActions, 0, 10 * time.Hour, FromAdminDefault},
		{"admin: the override is for user-initiated tokens", true, realm.ActionVerifyEmail, 0, 10 * time.Hour, FromAdminDefault},
		{"admin: the request's lifespan", true, realm.ActionExecuteActions, 3 * 24 * time.Hour, 3 * 24 * time.Hour, FromRequest},
		{"admin: the request's lifespan, shorter than the default", true, realm.ActionVerifyEmail, 90 * time.Second, 90 * time.Second, FromRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			n := newNode(t, memoryStore(), clock, testRealms(t))
			mintFn := n.svc.MintForUser
			if tc.byAdmin {
				mintFn = n.svc.MintForAdmin
			}
			m := mint(t, mintFn, Request{Realm: "acme", UserID: "user-1", Action: tc.action, Lifespan: tc.lifespan})
			if m.Lifespan != tc.want || m.LifespanSource != tc.wantSource || !m.Expiry.Equal(t0.Add(tc.want)) || m.AdminInitiated != tc.byAdmin {
				t.Errorf("minted %s from %s expiring %s (admin %v); want %s from %s", m.Lifespan, m.LifespanSource, m.Expiry, m.AdminInitiated, tc.want, tc.wantSource)
			}
			// The token itself expires then: a second before, it redeems; at expiry it does not.
			clock.Advance(tc.want - time.Second)
			got, err := n.svc.Consume(context.Background(), "acme", m.Token)
			if err != nil || !got.Expiry.Equal(m.Expiry) || got.AdminInitiated != tc.byAdmin {
				t.Fatalf("Consume a second before expiry = %+v, %v", got, err)
			}
			again := mint(t, mintFn, Request{Realm: "acme", UserID: "user-1", Action: tc.action, Lifespan: tc.lifespan})
			clock.Advance(tc.want)
			_, err = n.svc.Consume(context.Background(), "acme", again.Token)
			wantCode(t, err, Expired, "action token expired at")
		})
	}
}

// Redeeming returns every claim the token was minted with; a second redemption is refused
// with the reason and when it was used.
func TestConsume_onceThenRefusedAsUsed(t *testing.T) {
	clock := testclock.New(t0)
	n := newNode(t, memoryStore(), clock, testRealms(t))
	req := Request{
		Realm: "acme", UserID: "user-1", Action: realm.ActionExecuteActions, ClientID: "app",
		RedirectURI: "https://app.example.test/after", Email: "alice@example.test",
		RequiredActions: []string{"UPDATE_PASSWORD", "CONFIGURE_TOTP"}, AuthSessionID: "auth-1",
		IdentityProviderAlias: "github", IdentityProviderUsername: "alice-gh",
	}
	m := mint(t, n.svc.MintForAdmin, req)
	clock.Advance(time.Minute)
	got, err := n.svc.Consume(context.Background(), "acme", m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "user-1" || got.Action != realm.ActionExecuteActions || got.ClientID != "app" || got.RedirectURI != req.RedirectURI ||
		got.Email != req.Email || strings.Join(got.Required, " ") != "UPDATE_PASSWORD CONFIGURE_TOTP" || got.AuthSessionID != "auth-1" ||
		got.IdentityProviderAlias != "github" || got.IdentityProviderUsername != "alice-gh" || got.ID != m.ID || !got.AdminInitiated {
		t.Errorf("Consume = %+v, want the minted claims", got)
	}
	clock.Advance(time.Minute)
	_, err = n.svc.Consume(context.Background(), "acme", m.Token)
	wantCode(t, err, Used, "already used; it is valid once (used at 2026-03-01T08:01:00Z)")
}

// Two nodes on one PostgreSQL: a token minted on A is redeemed on B, then refused on A and
// on B; and when many requests on both nodes redeem one token at once, exactly one wins.
func TestConsume_singleUseAcrossTwoNodesOnOnePostgreSQL(t *testing.T) {
	u := testpg.Schema(t, "actiontoken")
	clock := testclock.New(t0)
	realms := testRealms(t)
	a := newNode(t, openPostgres(t, u), clock, realms)
	b := newNode(t, openPostgres(t, u), clock, realms)
	ctx := context.Background()

	m := mint(t, a.svc.MintForUser, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionVerifyEmail, Email: "a@example.test"})
	if got, err := b.svc.Consume(ctx, "acme", m.Token); err != nil || got.Email != "a@example.test" {
		t.Fatalf("Consume on B of A's token = %+v, %v", got, err)
	}
	for name, n := range map[string]*node{"A": a, "B": b} {
		_, err := n.svc.Consume(ctx, "acme", m.Token)
		if e, ok := err.(*Error); !ok || e.Code != Used {
			t.Errorf("second use on %s = %v, want %s", name, err, Used)
		}
	}

	race := mint(t, b.svc.MintForAdmin, Request{Realm: "acme", UserID: "user-2", Action: realm.ActionResetCredentials})
	wins, used := redeemAtOnce(t, 16, []*node{a, b}, race.Token)
	if wins != 1 || used != 15 {
		t.Errorf("16 concurrent redemptions on two nodes: %d won, %d refused as used; want 1 and 15", wins, used)
	}
}

// Many requests on one node redeem one token at once: exactly one wins, on every store.
func TestConsume_concurrentRedemptionsOneWins(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) usersessions.Provider{
		"memory":   func(*testing.T) usersessions.Provider { return memoryStore() },
		"postgres": func(t *testing.T) usersessions.Provider { return openPostgres(t, testpg.Schema(t, "actiontoken")) },
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, open(t), testclock.New(t0), testRealms(t))
			m := mint(t, n.svc.MintForUser, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionResetCredentials})
			if wins, used := redeemAtOnce(t, 32, []*node{n}, m.Token); wins != 1 || used != 31 {
				t.Errorf("32 concurrent redemptions: %d won, %d refused as used; want 1 and 31", wins, used)
			}
		})
	}
}

// redeemAtOnce redeems raw n times at once, spread over nodes, and counts the outcomes; any
// other outcome fails the test.
func redeemAtOnce(t *testing.T, n int, nodes []*node, raw string) (wins, used int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := nodes[i%len(nodes)].svc.Consume(context.Background(), "acme", raw)
			mu.Lock()
			defer mu.Unlock()
			var e *Error
			switch {
			case err == nil:
				wins++
			case errors.As(err, &e) && e.Code == Used:
				used++
			default:
				t.Errorf("redemption: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins, used
}

// A forged token, another kind of token, or another realm's is refused with the reason,
// and none of them is recorded as used.
func TestConsume_refusesForgedOtherKindOtherRealm(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore()
	n := newNode(t, store, clock, testRealms(t))
	ctx := context.Background()
	good := mint(t, n.svc.MintForUser, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionVerifyEmail}).Token
	access, err := n.tokens.Issue(ctx, "acme", token.Claims{Type: token.Bearer, Subject: "user-1", ClientID: "app", IssuedAt: t0, Expiry: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	refresh, err := n.tokens.Issue(ctx, "acme", token.Claims{Type: token.Refresh, Subject: "user-1", ClientID: "app", SessionID: "s-1", IssuedAt: t0, Expiry: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	otherRealm := mint(t, n.svc.MintForUser, Request{Realm: "other", UserID: "user-1", Action: realm.ActionVerifyEmail}).Token
	i := strings.LastIndexByte(good, '.') + 5
	flipped := "A"
	if good[i] == 'A' {
		flipped = "B"
	}
	forged := good[:i] + flipped + good[i+1:]
	for _, tc := range []struct {
		name, raw, desc string
	}{
		{"forged signature", forged, "signature does not verify"},
		{"access token", access.Raw, `header type "at+jwt"`},
		{"refresh token", refresh.Raw, `header type "JWT" with HS512, not an action token`},
		{"another realm's action token", otherRealm, `which realm "acme" does not have`},
		{"garbage", "definitely-not-a-token", "not a compact JWS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.svc.Consume(ctx, "acme", tc.raw)
			wantCode(t, err, Invalid, tc.desc)
		})
	}
	_, err = n.svc.Consume(ctx, "acme", "")
	wantCode(t, err, InvalidRequest, "token is required")
	if recs, err := store.ListRecords(ctx, RecordKind); err != nil || len(recs) != 0 {
		t.Errorf("refused tokens left %d used records (%v)", len(recs), err)
	}
	if _, err := n.svc.Consume(ctx, "nowhere", good); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("Consume in an unknown realm = %v, want spi.ErrNotFound", err)
	}
	if _, err := n.svc.Consume(ctx, "acme", good); err != nil {
		t.Errorf("the genuine token, after the refusals: %v", err)
	}
}

// A store that fails while a token is redeemed leaves it unused: the redemption can be
// tried again.
func TestConsume_storeFailureLeavesTheTokenUnused(t *testing.T) {
	store := &failingStore{Provider: memoryStore()}
	n := newNode(t, store, testclock.New(t0), testRealms(t))
	m := mint(t, n.svc.MintForUser, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionVerifyEmail})
	store.fail = true
	_, err := n.svc.Consume(context.Background(), "acme", m.Token)
	var e *Error
	if !errors.Is(err, spi.ErrUnavailable) || errors.As(err, &e) {
		t.Fatalf("Consume with the store down = %v, want spi.ErrUnavailable and no refusal", err)
	}
	store.fail = false
	if _, err := n.svc.Consume(context.Background(), "acme", m.Token); err != nil {
		t.Errorf("Consume once the store is back = %v", err)
	}
}

// failingStore fails PutRecord while fail is set.
type failingStore struct {
	usersessions.Provider
	fail bool
}

func (s *failingStore) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	if s.fail {
		return nil, spi.ErrUnavailable
	}
	return s.Provider.PutRecord(ctx, r)
}

// Records of used tokens stay until the token has expired and SkewMargin has passed, then
// Sweep removes them; the token is still refused, as expired.
func TestSweep_removesUsedRecordsOnceTheTokenExpired(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore()
	n := newNode(t, store, clock, testRealms(t))
	ctx := context.Background()
	short := mint(t, n.svc.MintForUser, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionResetCredentials}) // 7 min
	long := mint(t, n.svc.MintForAdmin, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionExecuteActions})   // 10 h
	for _, m := range []*Minted{short, long} {
		if _, err := n.svc.Consume(ctx, "acme", m.Token); err != nil {
			t.Fatal(err)
		}
	}
	sweepAt := func(at time.Time, want int) {
		t.Helper()
		clock.Set(at)
		if got, err := n.svc.Sweep(ctx); err != nil || got != want {
			t.Errorf("Sweep at %s removed %d (%v), want %d", at.Format(time.TimeOnly), got, err, want)
		}
	}
	sweepAt(short.Expiry.Add(SkewMargin-time.Second), 0)
	_, err := n.svc.Consume(ctx, "acme", short.Token)
	wantCode(t, err, Expired, "expired")
	sweepAt(short.Expiry.Add(SkewMargin+time.Second), 1)
	_, err = n.svc.Consume(ctx, "acme", short.Token)
	wantCode(t, err, Expired, "expired")
	_, err = n.svc.Consume(ctx, "acme", long.Token)
	wantCode(t, err, Used, "already used")
	sweepAt(long.Expiry.Add(SkewMargin+time.Second), 1)
	if recs, err := store.ListRecords(ctx, RecordKind); err != nil || len(recs) != 0 {
		t.Errorf("%d records left (%v), want none", len(recs), err)
	}
}

// Bad requests are refused with the field and the rule, and mint nothing.
func TestMint_refusesBadRequests(t *testing.T) {
	ok := Request{Realm: "acme", UserID: "user-1", Action: realm.ActionVerifyEmail}
	tests := []struct {
		name    string
		byAdmin bool
		change  func(*Request)
		desc    string
	}{
		{"no user", false, func(r *Request) { r.UserID = "" }, "user_id is required"},
		{"no action", false, func(r *Request) { r.Action = "" }, "not a valid action name"},
		{"unsafe action", false, func(r *Request) { r.Action = "../etc" }, "not a valid action name"},
		{"user-initiated with a lifespan", false, func(r *Request) { r.Lifespan = time.Hour }, "administrators only"},
		{"admin lifespan beyond 30 days", true, func(r *Request) { r.Lifespan = MaxLifespan + time.Second }, "from 1 to 2592000"},
		{"admin lifespan negative", true, func(r *Request) { r.Lifespan = -time.Second }, "from 1 to"},
		{"admin lifespan not whole seconds", true, func(r *Request) { r.Lifespan = 1500 * time.Millisecond }, "whole number of seconds"},
		{"unknown client", false, func(r *Request) { r.ClientID = "nope" }, `"nope" is not a client of realm "acme"`},
		{"disabled client", false, func(r *Request) { r.ClientID = "off" }, "disabled"},
		{"redirect without client", false, func(r *Request) { r.RedirectURI = "https://app.example.test/x" }, "needs the client_id"},
		{"unregistered redirect", false, func(r *Request) { r.ClientID, r.RedirectURI = "app", "https://evil.example.test/" }, "not among the redirect URIs"},
		{"redirect with a fragment", false, func(r *Request) { r.ClientID, r.RedirectURI = "app", "https://app.example.test/#x" }, "not among"},
		{"not an email", false, func(r *Request) { r.Email = "alice" }, "not an email address"},
		{"user id too long", false, func(r *Request) { r.UserID = strings.Repeat("u", 256) }, "user_id is 256 bytes"},
		{"too many required actions", true, func(r *Request) { r.RequiredActions = make([]string, 33) }, "33 entries"},
		{"bad required action", true, func(r *Request) { r.RequiredActions = []string{"UPDATE PASSWORD"} }, "required_actions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := memoryStore()
			n := newNode(t, store, testclock.New(t0), testRealms(t))
			req := ok
			tc.change(&req)
			mintFn := n.svc.MintForUser
			if tc.byAdmin {
				mintFn = n.svc.MintForAdmin
			}
			m, err := mintFn(context.Background(), req)
			if m != nil {
				t.Fatalf("minted %+v", m)
			}
			wantCode(t, err, InvalidRequest, tc.desc)
		})
	}
	n := newNode(t, memoryStore(), testclock.New(t0), testRealms(t))
	if _, err := n.svc.MintForUser(context.Background(), Request{Realm: "nowhere", UserID: "u", Action: realm.ActionVerifyEmail}); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("mint in an unknown realm = %v, want spi.ErrNotFound", err)
	}
	m := mint(t, n.svc.MintForUser, Request{Realm: "acme", UserID: "u", Action: realm.ActionVerifyEmail, ClientID: "app", RedirectURI: "https://exact.example.test/done"})
	if m.Token == "" {
		t.Error("an exactly registered redirect URI was refused")
	}
}

// policies is a not-before source the test sets.
type policies struct{ realm, client time.Time }

func (p *policies) Realm(string) time.Time          { return p.realm }
func (p *policies) Client(string, string) time.Time { return p.client }

// A genuine token the realm has since revoked is refused with the reason, and not used up:
// issued before the realm's or its client's not-before policy, or for a client since
// disabled. One issued in the policy's second stays good, as refresh tokens do.
func TestConsume_refusesTokensRevokedSince(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(p *policies, rs *realm.Realms, at time.Time)
		code   string
		desc   string
	}{
		{"realm not-before after issue", func(p *policies, _ *realm.Realms, at time.Time) { p.realm = at.Add(time.Second) },
			Revoked, "issued before the realm's not-before policy (2026-03-01T08:00:01Z)"},
		{"client not-before after issue", func(p *policies, _ *realm.Realms, at time.Time) { p.client = at.Add(time.Second) },
			Revoked, `issued before client "app"'s not-before policy`},
		{"client disabled", func(_ *policies, rs *realm.Realms, _ time.Time) {
			r, _ := rs.Realm("acme")
			r = r.Clone()
			app, _ := r.Client("app")
			app.Enabled = false
			if _, err := rs.Put(r); err != nil {
				panic(err)
			}
		}, Revoked, `client "app", which is gone or disabled`},
		{"not-before in the second of issue", func(p *policies, _ *realm.Realms, at time.Time) { p.realm = at.Add(999 * time.Millisecond) }, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			rs := testRealms(t)
			p := &policies{}
			store := memoryStore()
			n := newNode(t, store, clock, rs)
			n.svc = New(Deps{Tokens: n.tokens, Store: store, Realms: rs, NotBefore: p, Now: clock.Now})
			m := mint(t, n.svc.MintForUser, Request{Realm: "acme", UserID: "user-1", Action: realm.ActionVerifyEmail, ClientID: "app"})
			tc.revoke(p, rs, t0)
			clock.Advance(time.Minute)
			_, err := n.svc.Consume(context.Background(), "acme", m.Token)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Consume = %v, want the token redeemed", err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.desc)
			if recs, _ := store.ListRecords(context.Background(), RecordKind); len(recs) != 0 {
				t.Errorf("a revoked token was recorded as used")
			}
		})
	}
}
