package session

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
)

// TestLogoutAppliesRefreshChecks: issue 15, "the logout endpoint accepts a refresh token that
// rotation retired or a not-before policy revoked". Logout by refresh token takes only a
// token refresh would take, refusing the others with refresh's own invalid_grant; a refused
// logout ends nothing, except the client session when the realm ends it on reuse, as
// refresh does.
func TestLogoutAppliesRefreshChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []func(*config)
		// token prepares the fixture and returns the token to log out with.
		token func(f *fixture, g *Grant) string
		want  string // "" when the logout is accepted
		// clientGone: after a refused logout the client session is gone (revoked before,
		// or ended on reuse).
		clientGone bool
	}{
		{name: "the current token", opts: []func(*config){rotation(0, 0)},
			token: func(f *fixture, g *Grant) string { return f.mustRefresh("app", g.RefreshToken).RefreshToken }},
		{name: "realm not-before after the token", want: "realm's not-before policy",
			token: func(f *fixture, g *Grant) string {
				f.clock.Advance(time.Second)
				f.setRealm(func(r *realm.Realm) { r.NotBefore = f.clock.Now() })
				return g.RefreshToken
			}},
		{name: "client not-before after the token", want: "client's not-before policy",
			token: func(f *fixture, g *Grant) string {
				f.clock.Advance(time.Second)
				f.setClient("app", func(c *realm.Client) { c.NotBefore = f.clock.Now() })
				return g.RefreshToken
			}},
		{name: "rotated out, beyond max reuse 0", opts: []func(*config){rotation(0, 0)},
			want: "Maximum allowed refresh token reuse exceeded",
			token: func(f *fixture, g *Grant) string {
				f.mustRefresh("app", g.RefreshToken)
				f.clock.Advance(5 * time.Second)
				return g.RefreshToken
			}},
		{name: "rotated out twice: stale lineage", opts: []func(*config){rotation(3, time.Hour)}, want: "Stale token",
			token: func(f *fixture, g *Grant) string {
				g2 := f.mustRefresh("app", g.RefreshToken)
				f.mustRefresh("app", f.mustRefresh("app", g2.RefreshToken).RefreshToken)
				return g.RefreshToken
			}},
		{name: "rotated out, the realm ends client sessions on reuse", want: "Maximum allowed refresh token reuse exceeded", clientGone: true,
			opts: []func(*config){rotation(0, 0), withRealm(func(r *realm.Realm) { r.EndClientSessionOnRefreshTokenReuse = true })},
			token: func(f *fixture, g *Grant) string {
				f.mustRefresh("app", g.RefreshToken)
				f.clock.Advance(5 * time.Second)
				return g.RefreshToken
			}},
		{name: "rotated out, within the grace window", opts: []func(*config){rotation(0, time.Minute)},
			token: func(f *fixture, g *Grant) string {
				f.mustRefresh("app", g.RefreshToken)
				f.clock.Advance(5 * time.Second)
				return g.RefreshToken
			}},
		{name: "revoked: its client session ended", want: `Session doesn't have required client "app"`, clientGone: true,
			token: func(f *fixture, g *Grant) string {
				if err := f.svc.Revoke(f.ctx, realmName, "app", g.RefreshToken); err != nil {
					f.t.Fatal(err)
				}
				return g.RefreshToken
			}},
		{name: "the session expired meanwhile: ending it is harmless",
			token: func(f *fixture, g *Grant) string {
				f.setRealm(func(r *realm.Realm) { r.SSOSessionIdle = time.Minute }) // the token keeps its exp
				f.clock.Advance(2 * time.Minute)
				return g.RefreshToken
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			g := f.open(OpenRequest{})
			f.attach(g.SessionID, "other")
			raw := tc.token(f, g)
			err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, Client: "app", RefreshToken: raw})
			us := f.session(g.SessionID, false)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("logout refused: %v", err)
				}
				if us != nil {
					t.Fatal("the session is still stored after logout")
				}
				if ev, ok := f.events.last(EventLogoutRefused); ok {
					t.Errorf("an accepted logout emitted %+v", ev)
				}
				return
			}
			refusal(t, err, InvalidGrant, tc.want)
			// The refusal is in the event log, as a refused refresh is.
			if ev, ok := f.events.last(EventLogoutRefused); !ok || ev.SessionID != g.SessionID || ev.ClientID != "app" ||
				ev.Refusal == "" || ev.Reason == "" {
				t.Errorf("logout_refused event = %+v (emitted %v), want one for session %s, client app, with its refusal", ev, ok, g.SessionID)
			}
			if _, ok := f.events.last(EventLogout); ok {
				t.Error("a refused logout emitted a logout event")
			}
			if us == nil {
				t.Fatal("a refused logout ended the session")
			}
			if _, has := us.Clients["app"]; has == tc.clientGone {
				t.Errorf("client session kept %v, want gone %v", has, tc.clientGone)
			}
			if _, has := us.Clients["other"]; !has {
				t.Error("a refused logout ended the other client's session")
			}
		})
	}
}

// TestLogoutWithAForgedTokenIsRecorded: a token that does not verify is refused and
// recorded as a refused logout, without a session to name.
func TestLogoutWithAForgedTokenIsRecorded(t *testing.T) {
	f := newFixture(t)
	err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, Client: "app", RefreshToken: "not.a.token"})
	refusal(t, err, InvalidGrant, "")
	ev, ok := f.events.last(EventLogoutRefused)
	if !ok || ev.ClientID != "app" || ev.SessionID != "" || ev.Refusal != RefusedInvalidToken {
		t.Errorf("logout_refused event = %+v (emitted %v), want one for client app, invalid_token, no session", ev, ok)
	}
}
