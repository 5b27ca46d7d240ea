package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// TestRefreshChecksInOrder: issue 4, "a refresh checks, in order: signature, type, realm,
// client, the realm's and client's not-before, the user session, the client session, offline
// rules ... Every failure answers invalid_grant with a precise error_description and leaves
// nothing half-changed". Each case also breaks a later check, so the first failing one is
// the one that must be reported.
func TestRefreshChecksInOrder(t *testing.T) {
	cases := []struct {
		name  string
		opts  []func(*config)
		setup func(f *fixture, g *Grant) RefreshRequest
		code  string
		want  string
		// precondition: refused before the token is looked at, so no refresh event.
		precondition bool
	}{
		{name: "precondition: unknown client", code: InvalidClient, want: `Client "nobody" not found`, precondition: true,
			setup: func(f *fixture, g *Grant) RefreshRequest { return req("nobody", g.RefreshToken) }},
		{name: "precondition: disabled client", code: UnauthorizedClient, want: `Client "off" is disabled`, precondition: true,
			setup: func(f *fixture, g *Grant) RefreshRequest { return req("off", g.RefreshToken) }},
		{name: "precondition: no token", code: InvalidRequest, want: "Missing refresh token",
			setup: func(f *fixture, g *Grant) RefreshRequest { return req("app", "") }},
		{name: "1 signature: tampered signature, also another client's", code: InvalidGrant, want: "Invalid refresh token: token signature does not verify",
			setup: func(f *fixture, g *Grant) RefreshRequest { return req("other", tamper(g.RefreshToken)) }},
		{name: "1 signature: alg none", code: InvalidGrant, want: `signed with "none"`,
			setup: func(f *fixture, g *Grant) RefreshRequest { return req("app", algNone(f.t, g.RefreshToken)) }},
		{name: "1 signature: truncated token", code: InvalidGrant, want: "not a compact JWS",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				return req("app", g.RefreshToken[:strings.LastIndex(g.RefreshToken, ".")])
			}},
		{name: "1 realm: signed by another realm's key", code: InvalidGrant, want: `which realm "acme" does not have`,
			setup: func(f *fixture, g *Grant) RefreshRequest {
				tok, err := f.tokens.Issue(f.ctx, "zeta", token.Claims{Type: token.Refresh, Subject: user, ClientID: "app",
					SessionID: g.SessionID, IssuedAt: f.clock.Now(), Expiry: f.clock.Now().Add(time.Hour)})
				if err != nil {
					f.t.Fatal(err)
				}
				return req("app", tok.Raw)
			}},
		{name: "2 type: an access token, also another client's", code: InvalidGrant, want: `token type is "Bearer"`,
			setup: func(f *fixture, g *Grant) RefreshRequest { return req("other", g.AccessToken) }},
		{name: "2 type: expired refresh token (seed 002: bounded by SSO idle)", code: InvalidGrant, want: "Token is not active",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.clock.Advance(31 * time.Minute)
				return req("other", g.RefreshToken)
			}},
		{name: "3 client: token of another client, also revoked by not-before", code: InvalidGrant, want: "Token client and authorized client don't match",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.clock.Advance(time.Second)
				f.setRealm(func(r *realm.Realm) { r.NotBefore = f.clock.Now() })
				return req("other", g.RefreshToken)
			}},
		{name: "4 not-before: realm policy set to now (seed 000 revocation), also the client's", code: InvalidGrant, want: "realm's not-before policy",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.clock.Advance(time.Second)
				f.setRealm(func(r *realm.Realm) { r.NotBefore = f.clock.Now() })
				f.setClient("app", func(c *realm.Client) { c.NotBefore = f.clock.Now() })
				return req("app", g.RefreshToken)
			}},
		{name: "4 not-before: client policy, also the session gone", code: InvalidGrant, want: "client's not-before policy",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.clock.Advance(time.Second)
				f.setClient("app", func(c *realm.Client) { c.NotBefore = f.clock.Now() })
				f.deleteSession(g.SessionID)
				return req("app", g.RefreshToken)
			}},
		{name: "5 user session: gone", code: InvalidGrant, want: "Session not active: user session not found",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.deleteSession(g.SessionID)
				return req("app", g.RefreshToken)
			}},
		{name: "5 user session: logged out, also without its client session", code: InvalidGrant, want: "Session not active: logged out",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				us := f.session(g.SessionID, false)
				us.State = usersessions.LoggedOut
				if errs, err := f.store.Update(f.ctx, []*usersessions.UserSession{us}); firstErr(errs, err) != nil {
					f.t.Fatal(err, errs)
				}
				f.deleteClientSession(g.SessionID, false, "app")
				return req("app", g.RefreshToken)
			}},
		{name: "5 user session: SSO idle shortened to 10m (seed 004), also the client session gone", code: InvalidGrant,
			want: "Session not active: expired at 2026-03-01T08:10:00Z by idle",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.setRealm(func(r *realm.Realm) { r.SSOSessionIdle = 10 * time.Minute })
				f.clock.Advance(11 * time.Minute)
				f.deleteClientSession(g.SessionID, false, "app")
				return req("app", g.RefreshToken)
			}},
		{name: "6 client session: gone", code: InvalidGrant, want: `Session doesn't have required client "app"`,
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.deleteClientSession(g.SessionID, false, "app")
				return req("app", g.RefreshToken)
			}},
		{name: "6 client session: client idle override 5m (seed 000 advanced settings)", code: InvalidGrant,
			want: "Client session not active: expired at 2026-03-01T08:05:00Z by idle: no refresh for 5m0s after 2026-03-01T08:00:00Z (client attribute client.session.idle.timeout)",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.setClient("app", func(c *realm.Client) { c.SessionIdle = 5 * time.Minute })
				f.clock.Advance(6 * time.Minute)
				return req("app", g.RefreshToken)
			}},
		{name: "7 offline: client no longer allowed offline tokens (seed 000 offline access)", code: InvalidGrant, want: `Offline tokens not allowed for the client "app"`,
			setup: func(f *fixture, _ *Grant) RefreshRequest {
				g := f.offline()
				f.setClient("app", func(c *realm.Client) { c.OfflineAccess = false })
				r := req("app", g.RefreshToken)
				r.Scope = "openid offline_access admin"
				return r
			}},
		{name: "8 scope: more than granted (RFC 6749 section 6)", code: InvalidScope, want: "Invalid scopes: admin",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				r := req("app", g.RefreshToken)
				r.Scope = "openid admin"
				return r
			}},
		{name: "9 rotation: a stale lineage (issue 4)", opts: []func(*config){rotation(0, 0)}, code: InvalidGrant, want: "Stale token (stale lineage",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				g2 := f.mustRefresh("app", g.RefreshToken)
				f.clock.Advance(time.Second)
				f.mustRefresh("app", g2.RefreshToken)
				return req("app", g.RefreshToken)
			}},
		{name: "9 rotation: reuse beyond Refresh Token Max Reuse 0 (seed 002)", opts: []func(*config){rotation(0, 0)}, code: InvalidGrant,
			want: "Maximum allowed refresh token reuse exceeded (reuse: presented 2 times, 1 allowed)",
			setup: func(f *fixture, g *Grant) RefreshRequest {
				f.mustRefresh("app", g.RefreshToken)
				f.clock.Advance(5 * time.Second)
				return req("app", g.RefreshToken)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			g := f.open(OpenRequest{})
			r := tc.setup(f, g)
			before := f.sessions()
			_, err := f.svc.Refresh(f.ctx, r)
			e := refusal(t, err, tc.code, tc.want)
			f.unchanged(before)
			ev, ok := f.events.last(EventRefreshRefused)
			if tc.precondition {
				if ok {
					t.Errorf("a precondition refusal emitted %+v", ev)
				}
				return
			}
			if !ok || ev.Reason != e.Description || ev.Realm != realmName {
				t.Errorf("refused event %+v (found %v), want reason %q", ev, ok, e.Description)
			}
			checkRefusalClass(t, tc.name, ev)
		})
	}
}

func req(client, raw string) RefreshRequest {
	return RefreshRequest{Realm: realmName, Client: client, RefreshToken: raw}
}

func (f *fixture) deleteSession(id string) {
	f.t.Helper()
	if _, err := f.store.Delete(f.ctx, []usersessions.Key{{RealmID: realmName, ID: id}}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) deleteClientSession(id string, offline bool, client string) {
	f.t.Helper()
	k := usersessions.ClientKey{Session: usersessions.Key{RealmID: realmName, ID: id, Offline: offline}, ClientID: client}
	if err := f.store.DeleteClientSessions(f.ctx, []usersessions.ClientKey{k}); err != nil {
		f.t.Fatal(err)
	}
}

// algNone re-signs nothing: it rewrites the header to alg "none" and drops the signature.
func algNone(t *testing.T, raw string) string {
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	h["alg"] = "none"
	b, _ = json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(b) + "." + parts[1] + "."
}

func TestRefreshUnknownRealm(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Refresh(f.ctx, RefreshRequest{Realm: "nowhere", Client: "app", RefreshToken: "x"})
	if !errors.Is(err, ErrUnknownRealm) || !errors.Is(err, spi.ErrNotFound) {
		t.Fatalf("err = %v, want ErrUnknownRealm (spi.ErrNotFound)", err)
	}
}

// TestRefreshMovesIdleClocks: a refresh "then bumps the idle timestamps" (issue 4), of the user
// session and of the client session, and the new refresh token runs from now.
func TestRefreshMovesIdleClocks(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(map[bool]string{false: "touch", true: "rotation"}[rotate], func(t *testing.T) {
			f := newFixture(t, withRealm(func(r *realm.Realm) { r.RevokeRefreshToken = rotate }))
			g := f.open(OpenRequest{})
			f.clock.Advance(20 * time.Minute)
			g2 := f.mustRefresh("app", g.RefreshToken)
			now := f.clock.Now()
			us := f.session(g.SessionID, false)
			if !us.LastRefresh.Equal(now) || !us.Clients["app"].LastRefresh.Equal(now) {
				t.Errorf("last refresh user %s client %s, want %s", us.LastRefresh, us.Clients["app"].LastRefresh, now)
			}
			if want := now.Add(30 * time.Minute); !g2.RefreshExpiresAt.Equal(want) || !us.ExpiresAt.Equal(want) {
				t.Errorf("refresh token exp %s, stored expiry %s, want %s", g2.RefreshExpiresAt, us.ExpiresAt, want)
			}
			// 40 minutes after login, 20 after the refresh: alive only because it moved.
			f.clock.Advance(20 * time.Minute)
			f.mustRefresh("app", g2.RefreshToken)
			if ev, ok := f.events.last(EventRefresh); !ok || ev.SessionID != g.SessionID || ev.UserID != user {
				t.Errorf("refresh event %+v", ev)
			}
		})
	}
}

// TestRotationMaxReuse: issue 4, "Revoke Refresh Token on: each refresh token works 1 +
// Refresh Token Max Reuse times; the response carries the new one"; a reuse past the limit
// is classified concurrent (within a second of the last use) or reuse.
func TestRotationMaxReuse(t *testing.T) {
	cases := []struct {
		name      string
		maxReuse  int
		grace     time.Duration
		gap       time.Duration // between two presentations of the same token
		uses      int
		wantOK    int
		wantReuse []string // Grant.Reuse of the successful uses
		wantClass string   // the first refusal's classification
	}{
		{"max reuse 0: second use refused as reuse (seed 002)", 0, 0, 5 * time.Second, 3, 1, []string{""}, ReuseRepeated},
		{"max reuse 0: second use within a second is concurrent", 0, 0, 200 * time.Millisecond, 2, 1, []string{""}, ReuseConcurrent},
		{"max reuse 2: three uses", 2, 0, time.Minute, 5, 3, []string{"", ReuseAllowed, ReuseAllowed}, ReuseRepeated},
		{"grace 30s: every use within it allowed", 0, 30 * time.Second, 5 * time.Second, 4, 4,
			[]string{"", ReuseWithinGrace, ReuseWithinGrace, ReuseWithinGrace}, ""},
		{"grace 10s: a use after it refused", 0, 10 * time.Second, 6 * time.Second, 3, 2, []string{"", ReuseWithinGrace}, ReuseRepeated},
		// A use within grace is still a use: it counts towards max reuse.
		{"grace 10s then max reuse 1", 1, 10 * time.Second, 6 * time.Second, 4, 2, []string{"", ReuseWithinGrace}, ReuseRepeated},
		{"grace 10s then max reuse 2", 2, 10 * time.Second, 6 * time.Second, 4, 3, []string{"", ReuseWithinGrace, ReuseAllowed}, ReuseRepeated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, rotation(tc.maxReuse, tc.grace))
			g := f.open(OpenRequest{})
			var ok []*Grant
			var class string
			for i := range tc.uses {
				if i > 0 {
					f.clock.Advance(tc.gap)
				}
				before := f.sessions()
				got, err := f.refresh("app", g.RefreshToken)
				if err != nil {
					e := refusal(t, err, InvalidGrant, "Maximum allowed refresh token reuse exceeded")
					f.unchanged(before)
					if class == "" {
						class = e.Reuse
					}
					continue
				}
				if got.RefreshToken == "" || got.RefreshToken == g.RefreshToken {
					t.Fatalf("use %d: no new refresh token", i+1)
				}
				ok = append(ok, got)
			}
			if len(ok) != tc.wantOK || class != tc.wantClass {
				t.Fatalf("%d uses succeeded, refusal %q; want %d, %q", len(ok), class, tc.wantOK, tc.wantClass)
			}
			for i, g := range ok {
				if g.Reuse != tc.wantReuse[i] {
					t.Errorf("use %d: reuse %q, want %q", i+1, g.Reuse, tc.wantReuse[i])
				}
			}
			if tc.wantClass != "" {
				if ev, _ := f.events.last(EventRefreshRefused); ev.Reuse != tc.wantClass {
					t.Errorf("refused event classified %q, want %q", ev.Reuse, tc.wantClass)
				}
			}
			// Every token handed out joined the current generation: the first one rotates.
			f.clock.Advance(tc.gap)
			if _, err := f.refresh("app", ok[0].RefreshToken); err != nil {
				t.Errorf("the token from use 1 does not refresh: %v", err)
			}
		})
	}
}

// TestGraceWindowTwoTabs: issue 4, "Two browser tabs refreshing at once must not log the
// user out": both tabs present the same token, both succeed, and each goes on with the token
// it got, twice over.
func TestGraceWindowTwoTabs(t *testing.T) {
	f := newFixture(t, rotation(0, 30*time.Second))
	g := f.open(OpenRequest{})
	tabA, tabB := g.RefreshToken, g.RefreshToken
	for round := range 3 {
		f.clock.Advance(4 * time.Minute)
		a, err := f.refresh("app", tabA)
		if err != nil {
			t.Fatalf("round %d, tab A: %v", round, err)
		}
		f.clock.Advance(300 * time.Millisecond)
		b, err := f.refresh("app", tabB)
		if err != nil {
			t.Fatalf("round %d, tab B: %v", round, err)
		}
		if a.Reuse != "" || (round == 0 && b.Reuse != ReuseWithinGrace) {
			t.Errorf("round %d: reuse A %q B %q", round, a.Reuse, b.Reuse)
		}
		tabA, tabB = a.RefreshToken, b.RefreshToken
	}
	// Out of the grace window, the tab left behind is refused, not silently accepted.
	f.clock.Advance(time.Minute)
	a := f.mustRefresh("app", tabA)
	f.clock.Advance(time.Minute)
	_, err := f.refresh("app", tabB)
	refusal(t, err, InvalidGrant, "Maximum allowed refresh token reuse exceeded (reuse")
	f.clock.Advance(time.Minute)
	f.mustRefresh("app", a.RefreshToken)
}

// TestStaleLineage: issue 4, an older token than the one rotated out last is "stale
// lineage", in the refusal and in the event log.
func TestStaleLineage(t *testing.T) {
	f := newFixture(t, rotation(3, time.Hour))
	g1 := f.open(OpenRequest{})
	g2 := f.mustRefresh("app", g1.RefreshToken)
	g3 := f.mustRefresh("app", g2.RefreshToken)
	f.mustRefresh("app", g3.RefreshToken)
	// Neither max reuse nor the grace window revive a token two rotations back.
	_, err := f.refresh("app", g1.RefreshToken)
	e := refusal(t, err, InvalidGrant, "Stale token")
	if e.Reuse != ReuseStaleLineage {
		t.Errorf("classified %q", e.Reuse)
	}
	if ev, _ := f.events.last(EventRefreshRefused); ev.Reuse != ReuseStaleLineage || ev.SessionID != g1.SessionID {
		t.Errorf("event %+v", ev)
	}
}

// TestReuseEndsClientSession: issue 4, "the realm can choose to end the whole client
// session on reuse, the sign of a stolen token".
func TestReuseEndsClientSession(t *testing.T) {
	cases := []struct {
		name   string
		end    bool
		replay func(f *fixture, first, second *Grant) string
		class  string
	}{
		{"max reuse exceeded, configured", true, func(f *fixture, first, _ *Grant) string { return first.RefreshToken }, ReuseRepeated},
		{"stale lineage, configured", true, func(f *fixture, first, second *Grant) string {
			f.mustRefresh("app", second.RefreshToken)
			return first.RefreshToken
		}, ReuseStaleLineage},
		{"max reuse exceeded, not configured", false, func(f *fixture, first, _ *Grant) string { return first.RefreshToken }, ReuseRepeated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, rotation(0, 0), withRealm(func(r *realm.Realm) { r.EndClientSessionOnRefreshTokenReuse = tc.end }))
			first := f.open(OpenRequest{})
			f.attach(first.SessionID, "other")
			second := f.mustRefresh("app", first.RefreshToken)
			f.clock.Advance(time.Minute)
			_, err := f.refresh("app", tc.replay(f, first, second))
			e := refusal(t, err, InvalidGrant, "")
			if e.Reuse != tc.class || e.Ended != tc.end {
				t.Fatalf("refusal %+v, want class %q ended %v", e, tc.class, tc.end)
			}
			us := f.session(first.SessionID, false)
			if _, has := us.Clients["app"]; has == tc.end {
				t.Fatalf("client session present %v after reuse, end configured %v", has, tc.end)
			}
			if _, has := us.Clients["other"]; !has {
				t.Fatal("the other client's session was ended too")
			}
			if ev, _ := f.events.last(EventRefreshRefused); ev.EndedClientSession != tc.end {
				t.Errorf("event %+v", ev)
			}
			if tc.end { // the thief's and the owner's newest token alike
				_, err := f.refresh("app", second.RefreshToken)
				refusal(t, err, InvalidGrant, "Session doesn't have required client")
			}
		})
	}
}

func (f *fixture) attach(sessionID, client string) *Grant {
	f.t.Helper()
	g, err := f.svc.Attach(f.ctx, AttachRequest{Realm: realmName, SessionID: sessionID, ClientID: client, Scope: "openid"})
	if err != nil {
		f.t.Fatalf("attach %s: %v", client, err)
	}
	return g
}

// TestConcurrentRefresh: N requests refresh with one token at once under rotation (two nodes,
// many tabs): the version-checked write lets exactly the allowed number through.
func TestConcurrentRefresh(t *testing.T) {
	const n = 24
	cases := []struct {
		name     string
		maxReuse int
		grace    time.Duration
		want     int
	}{
		{"max reuse 0", 0, 0, 1},
		{"max reuse 2", 2, 0, 3},
		{"grace window", 0, time.Minute, n},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, rotation(tc.maxReuse, tc.grace))
			g := f.open(OpenRequest{})
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = f.refresh("app", g.RefreshToken)
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
					continue
				}
				if e := refusal(t, err, InvalidGrant, "Maximum allowed refresh token reuse exceeded"); e.Reuse != ReuseConcurrent {
					t.Errorf("classified %q, want concurrent", e.Reuse)
				}
			}
			if ok != tc.want {
				t.Fatalf("%d of %d refreshes succeeded, want %d", ok, n, tc.want)
			}
			cs := f.session(g.SessionID, false).Clients["app"]
			if cs.CurrentRefreshTokenUseCount != tc.want {
				t.Errorf("use count %d, want %d", cs.CurrentRefreshTokenUseCount, tc.want)
			}
		})
	}
}

// unavailable is the real memory provider with reads that fail as a down store does.
type unavailable struct {
	usersessions.Provider
}

func (unavailable) Get(context.Context, []usersessions.Key) ([]*usersessions.UserSession, error) {
	return nil, spi.ErrUnavailable
}

// TestStoreUnavailable: spi.ErrUnavailable passes through untouched (the HTTP layer's 503),
// and is not a refusal.
func TestStoreUnavailable(t *testing.T) {
	f := newFixture(t)
	g := f.open(OpenRequest{})
	f.svc.store = unavailable{f.store}
	_, err := f.refresh("app", g.RefreshToken)
	var e *Error
	if !errors.Is(err, spi.ErrUnavailable) || errors.As(err, &e) {
		t.Fatalf("err = %v, want spi.ErrUnavailable and no *Error", err)
	}
	if _, err := f.svc.Introspect(f.ctx, realmName, g.AccessToken); !errors.Is(err, spi.ErrUnavailable) {
		t.Fatalf("introspect err = %v", err)
	}
}

// unanswered is the real memory provider whose writes end as a commit without an answer.
type unanswered struct {
	usersessions.Provider
}

func (unanswered) Touch(context.Context, []usersessions.Touch) ([]error, error) {
	return nil, fmt.Errorf("touch user sessions: %w", usersessions.ErrOutcomeUnknown)
}

func (unanswered) PutClientSessions(context.Context, []*usersessions.ClientSession) ([]error, error) {
	return nil, fmt.Errorf("put client sessions: %w", usersessions.ErrOutcomeUnknown)
}

// TestRefreshOfUnknownOutcome: a refresh whose write got no answer is reported as such, in
// an event of its own kind, and still reaches the caller as "unavailable" (503, retry).
func TestRefreshOfUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []func(*config)
	}{
		{"without rotation (touch)", nil},
		{"with rotation (client session written)", []func(*config){rotation(0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			g := f.open(OpenRequest{})
			f.svc.store = unanswered{f.store}
			_, err := f.refresh("app", g.RefreshToken)
			var e *Error
			if !errors.Is(err, usersessions.ErrOutcomeUnknown) || !errors.Is(err, spi.ErrUnavailable) || errors.As(err, &e) {
				t.Fatalf("err = %v, want usersessions.ErrOutcomeUnknown, spi.ErrUnavailable and no *Error", err)
			}
			ev, ok := f.events.last(EventRefreshRefused)
			if !ok || ev.Refusal != RefusedOutcomeUnknown || ev.SessionID != g.SessionID || !strings.Contains(ev.Reason, "outcome unknown") {
				t.Fatalf("event = %+v (found %v), want %s with refusal %s for session %s", ev, ok, EventRefreshRefused, RefusedOutcomeUnknown, g.SessionID)
			}
		})
	}
}
