package session

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
)

// chain refreshes every step, n times, going on with each new token; it returns how many
// succeeded before the first refusal and that refusal.
func (f *fixture) chain(client string, g *Grant, every time.Duration, n int) (int, error) {
	raw := g.RefreshToken
	for i := range n {
		f.clock.Advance(every)
		next, err := f.refresh(client, raw)
		if err != nil {
			return i, err
		}
		raw = next.RefreshToken
	}
	return n, nil
}

type chainCase struct {
	name    string
	opts    []func(*config)
	open    OpenRequest
	every   time.Duration
	n       int
	wantOK  int
	wantErr string // description of the refusal after wantOK refreshes
	// wantExpiresIn is the refresh token's lifetime at login, in seconds; 0: not checked.
	wantExpiresIn int64
}

func runChains(t *testing.T, cases []chainCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			g := f.open(tc.open)
			if tc.wantExpiresIn != 0 && g.RefreshExpiresIn() != tc.wantExpiresIn {
				t.Errorf("refresh token lifetime %ds, want %ds", g.RefreshExpiresIn(), tc.wantExpiresIn)
			}
			ok, err := f.chain(orDefault(tc.open.ClientID, "app"), g, tc.every, tc.n)
			if ok != tc.wantOK {
				t.Fatalf("%d refreshes succeeded (then %v), want %d", ok, err, tc.wantOK)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" {
				refusal(t, err, InvalidGrant, tc.wantErr)
			}
		})
	}
}

// TestRememberMe: seeds 000/004, the Remember-Me idle and max apply to remember-me logins
// only, and only when longer.
func TestRememberMe(t *testing.T) {
	rm := withRealm(func(r *realm.Realm) {
		r.SSOSessionIdleRememberMe, r.SSOSessionMaxRememberMe = 2*time.Hour, 24*time.Hour
	})
	opts := []func(*config){rm}
	runChains(t, []chainCase{
		{name: "remember-me idle 2h (seed 000)", opts: opts, open: OpenRequest{RememberMe: true},
			every: time.Hour, n: 3, wantOK: 3, wantExpiresIn: 7200},
		{name: "no remember-me: SSO idle 30m", opts: opts,
			every: time.Hour, n: 1, wantOK: 0, wantErr: "Token is not active", wantExpiresIn: 1800},
		{name: "remember-me max 24h outlives SSO max 10h (seed 000)", opts: opts, open: OpenRequest{RememberMe: true},
			every: 90 * time.Minute, n: 10, wantOK: 10},
		{name: "no remember-me: SSO max 10h", opts: opts,
			every: 25 * time.Minute, n: 30, wantOK: 23, wantErr: "Token is not active"},
		{name: "remember-me idle not longer: SSO idle applies (seed 004)", open: OpenRequest{RememberMe: true},
			opts:  []func(*config){withRealm(func(r *realm.Realm) { r.SSOSessionIdleRememberMe = 10 * time.Minute })},
			every: 20 * time.Minute, n: 2, wantOK: 2, wantExpiresIn: 1800},
	})
}

// TestClientSessionTimeouts: seeds 000/004, Client Session Idle/Max (0 = the SSO value),
// overridden per client, never past the user session.
func TestClientSessionTimeouts(t *testing.T) {
	realmIdle := withRealm(func(r *realm.Realm) { r.ClientSessionIdle = 10 * time.Minute })
	runChains(t, []chainCase{
		{name: "no override: SSO Session Idle", every: 25 * time.Minute, n: 2, wantOK: 2, wantExpiresIn: 1800},
		{name: "realm Client Session Idle 10m", opts: []func(*config){realmIdle},
			every: 11 * time.Minute, n: 1, wantOK: 0, wantErr: "Token is not active", wantExpiresIn: 600},
		{name: "client attribute idle 5m beats the realm's 10m (seed 000 advanced settings)", opts: []func(*config){realmIdle},
			open: OpenRequest{ClientID: "short"}, every: 4 * time.Minute, n: 3, wantOK: 3, wantExpiresIn: 300},
		{name: "client attribute max 1h ends the client session", open: OpenRequest{ClientID: "short"},
			every: 4 * time.Minute, n: 20, wantOK: 14, wantErr: "Token is not active"},
		{name: "realm Client Session Max 20m", opts: []func(*config){withRealm(func(r *realm.Realm) { r.ClientSessionMax = 20 * time.Minute })},
			every: 8 * time.Minute, n: 5, wantOK: 2, wantErr: "Token is not active"},
	})

	t.Run("client session max cut at the user session's, which goes on for other clients", func(t *testing.T) {
		f := newFixture(t)
		g := f.open(OpenRequest{ClientID: "short"})
		other := f.attach(g.SessionID, "app")
		raw := g.RefreshToken
		for range 14 {
			f.clock.Advance(4 * time.Minute)
			next := f.mustRefresh("short", raw)
			raw = next.RefreshToken
			if end := t0.Add(time.Hour); next.RefreshExpiresAt.After(end) {
				t.Fatalf("refresh token exp %s past the client session max %s", next.RefreshExpiresAt, end)
			}
			other = f.mustRefresh("app", other.RefreshToken)
		}
		f.clock.Advance(4 * time.Minute)
		if _, err := f.refresh("short", raw); err == nil {
			t.Fatal("refresh after the client session max succeeded")
		}
		f.mustRefresh("app", other.RefreshToken)
	})
}

// TestOffline: seed 000, offline tokens follow Offline Session Idle and, only when limited,
// Offline Session Max; client offline overrides apply as the seed says.
func TestOffline(t *testing.T) {
	offline := OpenRequest{Scope: "openid offline_access", OfflineAccess: true}
	limited := func(r *realm.Realm) { r.OfflineSessionMaxLimited = true }
	runChains(t, []chainCase{
		{name: "offline idle 30d: used within it", open: offline, every: 29 * day, n: 3, wantOK: 3, wantExpiresIn: int64(30 * day / time.Second)},
		{name: "offline idle 30d: unused for 31d", open: offline, every: 31 * day, n: 1, wantOK: 0, wantErr: "Token is not active"},
		{name: "offline max not limited: lives past 60d", open: offline, every: 25 * day, n: 4, wantOK: 4},
		{name: "offline max limited: 60d whatever the use (seed 000)", open: offline, opts: []func(*config){withRealm(limited)},
			every: 25 * day, n: 4, wantOK: 2, wantErr: "Token is not active"},
		{name: "client offline idle 1d (seed 000 advanced settings)", open: offline,
			opts:  []func(*config){withRealm(func(r *realm.Realm) { r.Clients[0].OfflineSessionIdle = day })},
			every: 23 * time.Hour, n: 3, wantOK: 3, wantExpiresIn: int64(day / time.Second)},
		{name: "client offline max ignored unless limited (seed 000)", open: offline,
			opts:  []func(*config){withRealm(func(r *realm.Realm) { r.Clients[0].OfflineSessionMax = 2 * day })},
			every: 20 * day, n: 3, wantOK: 3, wantExpiresIn: int64(30 * day / time.Second)},
		{name: "client offline max 2d when limited", open: offline,
			opts: []func(*config){withRealm(func(r *realm.Realm) {
				limited(r)
				r.Clients[0].OfflineSessionMax = 2 * day
			})},
			every: day, n: 3, wantOK: 1, wantErr: "Token is not active", wantExpiresIn: int64(2 * day / time.Second)},
	})

	t.Run("offline idle shortened: the session's own rule refuses", func(t *testing.T) {
		f := newFixture(t)
		g := f.offline()
		f.setRealm(func(r *realm.Realm) { r.OfflineSessionIdle = 10 * day })
		f.clock.Advance(11 * day)
		_, err := f.refresh("app", g.RefreshToken)
		refusal(t, err, InvalidGrant, "Offline session not active: expired at 2026-03-11T08:00:00Z by idle")
	})

	t.Run("offline access needs the user's role and the client's scope", func(t *testing.T) {
		f := newFixture(t)
		for _, tc := range []struct {
			client  string
			role    bool
			offline bool
		}{{"app", true, true}, {"app", false, false}, {"plain", true, false}} {
			g := f.open(OpenRequest{ClientID: tc.client, Scope: "openid offline_access", OfflineAccess: tc.role})
			if g.Offline != tc.offline || hasScope(g.Scope, "offline_access") != tc.offline || (g.RefreshTokenType == "Offline") != tc.offline {
				t.Errorf("%s with role %v: offline %v, scope %q, %s token", tc.client, tc.role, g.Offline, g.Scope, g.RefreshTokenType)
			}
			if got := f.session(g.SessionID, true) != nil; got != tc.offline {
				t.Errorf("%s with role %v: offline session stored %v", tc.client, tc.role, got)
			}
		}
	})
}

// TestIdleWindow: seed 004, "the two-minute window ... is only applied if persistent user
// sessions are not active". Attaching a client needs a valid session, so it shows the window.
func TestIdleWindow(t *testing.T) {
	cases := []struct {
		persistent bool
		after      time.Duration
		valid      bool
	}{
		{true, 29 * time.Minute, true},
		{true, 31 * time.Minute, false},
		{false, 31 * time.Minute, true},
		{false, 32 * time.Minute, false},
	}
	for _, tc := range cases {
		f := newFixture(t, func(c *config) { c.persistent = tc.persistent })
		g := f.open(OpenRequest{})
		f.clock.Advance(tc.after)
		_, err := f.svc.Attach(f.ctx, AttachRequest{Realm: realmName, SessionID: g.SessionID, ClientID: "other"})
		if (err == nil) != tc.valid {
			t.Errorf("persistent %v, %s idle: attach err %v, want valid %v", tc.persistent, tc.after, err, tc.valid)
		}
		x, xerr := f.svc.Explain(f.ctx, realmName, g.SessionID)
		if xerr != nil {
			t.Fatal(xerr)
		}
		if want := map[bool]int64{true: 0, false: 120}[tc.persistent]; x.Online.Session.IdleWindowSeconds != want {
			t.Errorf("persistent %v: explained idle window %ds, want %d", tc.persistent, x.Online.Session.IdleWindowSeconds, want)
		}
	}
}

// TestAccessTokenLifespan: issue 4, "lifespan = Access Token Lifespan (or the implicit-flow
// one), never past the session's own end"; seed 000, the per-client attribute.
func TestAccessTokenLifespan(t *testing.T) {
	cases := []struct {
		name    string
		opts    []func(*config)
		open    OpenRequest
		refresh []time.Duration // refreshes after login, at these offsets
		want    int64
	}{
		{name: "realm Access Token Lifespan 5m", want: 300},
		{name: "client attribute access.token.lifespan 1m", want: 60,
			opts: []func(*config){withRealm(func(r *realm.Realm) { r.Clients[0].AccessTokenLifespan = time.Minute })}},
		{name: "implicit flow 15m, no refresh token (seed 000)", open: OpenRequest{Implicit: true}, want: 900},
		{name: "never past the session's max", want: 120,
			opts:    []func(*config){withRealm(func(r *realm.Realm) { r.SSOSessionMax = time.Hour })},
			refresh: []time.Duration{25 * time.Minute, 50 * time.Minute, 58 * time.Minute}},
		{name: "refreshed: the realm lifespan again", want: 300, refresh: []time.Duration{10 * time.Minute}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			g := f.open(tc.open)
			if tc.open.Implicit && g.RefreshToken != "" {
				t.Fatal("implicit flow got a refresh token")
			}
			for _, at := range tc.refresh {
				f.clock.Advance(t0.Add(at).Sub(f.clock.Now()))
				g = f.mustRefresh("app", g.RefreshToken)
			}
			if g.ExpiresIn() != tc.want {
				t.Fatalf("access token lifetime %ds, want %ds", g.ExpiresIn(), tc.want)
			}
			in, err := f.svc.Introspect(f.ctx, realmName, g.AccessToken)
			if err != nil || !in.Active || in.Exp != g.ExpiresAt.Unix() {
				t.Fatalf("introspection %+v, %v", in, err)
			}
		})
	}
}

// TestNotBefore: seed 000 revocation, "sessions or tokens issued before that time and date
// are invalid"; both sides in whole seconds, as Keycloak.
func TestNotBefore(t *testing.T) {
	f := newFixture(t)
	old := f.open(OpenRequest{})
	f.clock.Advance(1500 * time.Millisecond)
	f.setRealm(func(r *realm.Realm) { r.NotBefore = f.clock.Now() })
	same := f.open(OpenRequest{}) // issued in the second of the policy
	f.clock.Advance(time.Second)
	later := f.open(OpenRequest{})

	_, err := f.refresh("app", old.RefreshToken)
	refusal(t, err, InvalidGrant, "realm's not-before policy")
	f.mustRefresh("app", same.RefreshToken)
	f.mustRefresh("app", later.RefreshToken)
	if in, _ := f.svc.Introspect(f.ctx, realmName, old.AccessToken); in.Active {
		t.Error("an access token issued before the policy is active")
	}

	f.clock.Advance(time.Second)
	f.setClient("app", func(c *realm.Client) { c.NotBefore = f.clock.Now() })
	_, err = f.refresh("app", later.RefreshToken)
	refusal(t, err, InvalidGrant, "client's not-before policy")
}

// TestStoredExpiry: every stored ExpiresAt comes from core/expiry, so cleanup can trust it,
// and a remember-me timeout keeps no ordinary session (seed 003).
func TestStoredExpiry(t *testing.T) {
	f := newFixture(t, withRealm(func(r *realm.Realm) { r.SSOSessionIdleRememberMe = 2 * time.Hour }))
	plain := f.open(OpenRequest{})
	remembered := f.open(OpenRequest{RememberMe: true, ClientID: "short"})
	offline := f.offline()
	f.clock.Advance(4 * time.Minute)
	f.mustRefresh("app", offline.RefreshToken)
	f.mustRefresh("short", remembered.RefreshToken)

	r, _ := f.realms.Realm(realmName)
	rules := expiry.Rules{Realm: r, PersistentSessions: true}
	for _, us := range f.sessions() {
		s := expiry.SessionOf(us)
		if want := rules.UserSession(s).StoredExpiresAt; !us.ExpiresAt.Equal(want) {
			t.Errorf("session %s (offline %v): stored expiry %s, core/expiry says %s", us.ID, us.Offline, us.ExpiresAt, want)
		}
		for id, cs := range us.Clients {
			c, _ := r.Client(id)
			if want := rules.ClientSession(c, s, expiry.ClientSessionOf(cs)).StoredExpiresAt; !cs.ExpiresAt.Equal(want) {
				t.Errorf("client session %s/%s: stored expiry %s, core/expiry says %s", us.ID, id, cs.ExpiresAt, want)
			}
		}
	}

	f.clock.Advance(31 * time.Minute) // 35 minutes after login
	if _, _, err := f.store.DeleteExpired(f.ctx, f.clock.Now(), 100); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id      string
		offline bool
		kept    bool
	}{{plain.SessionID, false, false}, {remembered.SessionID, false, true}, {offline.SessionID, true, true}} {
		if got := f.session(c.id, c.offline) != nil; got != c.kept {
			t.Errorf("session %s (offline %v) kept %v by cleanup, want %v", c.id, c.offline, got, c.kept)
		}
	}
	// The remembered session's client session ("short", idle 5m) went on its own.
	if us := f.session(remembered.SessionID, false); us == nil || len(us.Clients) != 0 {
		t.Errorf("remembered session after cleanup: %+v", us)
	}
}
