package session

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
)

// TestIntrospect: RFC 7662; issue 4, "introspection of an access token whose session has
// ended says active: false"; seed 000, transient sessions cannot be introspected.
func TestIntrospect(t *testing.T) {
	cases := []struct {
		name   string
		token  func(f *fixture, g *Grant) string
		active bool
	}{
		{"live access token", func(f *fixture, g *Grant) string { return g.AccessToken }, true},
		{"live refresh token", func(f *fixture, g *Grant) string { return g.RefreshToken }, true},
		{"tampered signature", func(f *fixture, g *Grant) string { return tamper(g.AccessToken) }, false},
		{"alg none", func(f *fixture, g *Grant) string { return algNone(f.t, g.AccessToken) }, false},
		{"garbage", func(f *fixture, g *Grant) string { return "not a token" }, false},
		{"expired access token, session alive", func(f *fixture, g *Grant) string {
			f.clock.Advance(6 * time.Minute)
			return g.AccessToken
		}, false},
		{"after logout (issue 4)", func(f *fixture, g *Grant) string {
			if err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, RefreshToken: g.RefreshToken}); err != nil {
				f.t.Fatal(err)
			}
			return g.AccessToken
		}, false},
		{"client session ended", func(f *fixture, g *Grant) string {
			f.deleteClientSession(g.SessionID, false, "app")
			return g.AccessToken
		}, false},
		{"session idle shortened and passed", func(f *fixture, g *Grant) string {
			f.setRealm(func(r *realm.Realm) { r.SSOSessionIdle = time.Minute })
			f.clock.Advance(2 * time.Minute)
			return g.AccessToken
		}, false},
		{"realm not-before", func(f *fixture, g *Grant) string {
			f.clock.Advance(time.Second)
			f.setRealm(func(r *realm.Realm) { r.NotBefore = f.clock.Now() })
			return g.AccessToken
		}, false},
		{"refresh token rotated out beyond reuse (issue 4)", func(f *fixture, g *Grant) string {
			f.setRealm(func(r *realm.Realm) { r.RevokeRefreshToken = true })
			g2 := f.mustRefresh("app", g.RefreshToken) // the lineage starts with the token presented
			f.mustRefresh("app", g2.RefreshToken)
			return g.RefreshToken
		}, false},
		{"transient session (seed 000)", func(f *fixture, g *Grant) string {
			return f.open(OpenRequest{Transient: true}).AccessToken
		}, false},
		{"another realm's token", func(f *fixture, g *Grant) string {
			tok, err := f.tokens.Issue(f.ctx, "zeta", token.Claims{Type: token.Bearer, Subject: user, ClientID: "app",
				SessionID: g.SessionID, IssuedAt: f.clock.Now(), Expiry: f.clock.Now().Add(time.Minute)})
			if err != nil {
				f.t.Fatal(err)
			}
			return tok.Raw
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			g := f.open(OpenRequest{Scope: "openid profile"})
			// Introspected once while live, so that the tokens are in the verified-token
			// cache: whatever ends them afterwards must end them there too.
			for _, live := range []string{g.AccessToken, g.RefreshToken} {
				if in, err := f.svc.Introspect(f.ctx, realmName, live); err != nil || !in.Active {
					t.Fatalf("before the case, a live token: %+v, %v", in, err)
				}
			}
			raw := tc.token(f, g)
			before := f.sessions()
			in, err := f.svc.Introspect(f.ctx, realmName, raw)
			if err != nil {
				t.Fatal(err)
			}
			f.unchanged(before)
			if in.Active != tc.active {
				t.Fatalf("active %v, want %v", in.Active, tc.active)
			}
			if !tc.active {
				if !reflect.DeepEqual(*in, Introspection{}) {
					t.Errorf("an inactive answer tells more than active=false: %+v", in)
				}
				return
			}
			if in.Sub != user || in.ClientID != "app" || in.Username != "alice" || in.Sid != g.SessionID ||
				in.Scope != "openid profile" || in.Iss != "https://sso.test/realms/acme" || in.Iat != t0.Unix() || in.Exp == 0 || in.Jti == "" {
				t.Errorf("introspection %+v", in)
			}
		})
	}

	t.Run("unknown realm", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.svc.Introspect(f.ctx, "nowhere", "x"); !errors.Is(err, ErrUnknownRealm) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestLogout: issue 4, "logout (ends the user session and its client sessions; offline
// sessions stay)"; seed 000, "The offline token is valid after a user logout".
func TestLogout(t *testing.T) {
	t.Run("by refresh token: online ends, offline stays", func(t *testing.T) {
		f := newFixture(t)
		g := f.offline()
		online := f.attach(g.SessionID, "other") // an online client session on the same session
		if err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, Client: "other", RefreshToken: online.RefreshToken}); err != nil {
			t.Fatal(err)
		}
		if f.session(g.SessionID, false) != nil {
			t.Fatal("online session still stored")
		}
		if in, _ := f.svc.Introspect(f.ctx, realmName, online.AccessToken); in.Active {
			t.Error("the online access token is active after logout")
		}
		if in, _ := f.svc.Introspect(f.ctx, realmName, g.AccessToken); !in.Active {
			t.Error("the offline grant's access token is inactive after an online logout")
		}
		if ev, _ := f.events.last(EventLogout); ev.SessionID != g.SessionID || ev.Offline {
			t.Errorf("logout event %+v", ev)
		}
		// Twice is harmless.
		if err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, RefreshToken: online.RefreshToken}); err != nil {
			t.Errorf("second logout: %v", err)
		}
		f.clock.Advance(time.Hour)
		f.mustRefresh("app", g.RefreshToken)
	})
	for _, tc := range []struct {
		name                    string
		byID                    bool
		keptOnline, keptOffline bool
	}{
		{"by session id: online ends, offline stays", true, false, true},
		{"by offline token: that offline session ends (as Keycloak)", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			g := f.offline()
			r := LogoutRequest{Realm: realmName, RefreshToken: g.RefreshToken}
			if tc.byID {
				r = LogoutRequest{Realm: realmName, SessionID: g.SessionID}
			}
			if err := f.svc.Logout(f.ctx, r); err != nil {
				t.Fatal(err)
			}
			if (f.session(g.SessionID, false) != nil) != tc.keptOnline || (f.session(g.SessionID, true) != nil) != tc.keptOffline {
				t.Fatalf("want online kept %v, offline kept %v", tc.keptOnline, tc.keptOffline)
			}
			if err := f.svc.Logout(f.ctx, r); tc.byID != errors.Is(err, spi.ErrNotFound) {
				t.Fatalf("second logout: %v; by id it is spi.ErrNotFound, by token not an error", err)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		f := newFixture(t)
		g := f.open(OpenRequest{})
		before := f.sessions()
		err := f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, Client: "other", RefreshToken: g.RefreshToken})
		refusal(t, err, InvalidGrant, "Token client and authorized client don't match")
		err = f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName, RefreshToken: tamper(g.RefreshToken)})
		refusal(t, err, InvalidGrant, "Invalid refresh token")
		err = f.svc.Logout(f.ctx, LogoutRequest{Realm: realmName})
		refusal(t, err, InvalidRequest, "A refresh token or a session id is required")
		f.unchanged(before)
	})
}

// TestRevoke: RFC 7009.
func TestRevoke(t *testing.T) {
	t.Run("refresh token ends its client session only", func(t *testing.T) {
		f := newFixture(t)
		g := f.open(OpenRequest{})
		other := f.attach(g.SessionID, "other")
		if err := f.svc.Revoke(f.ctx, realmName, "app", g.RefreshToken); err != nil {
			t.Fatal(err)
		}
		us := f.session(g.SessionID, false)
		if _, ok := us.Clients["app"]; ok {
			t.Fatal("client session still there")
		}
		_, err := f.refresh("app", g.RefreshToken)
		refusal(t, err, InvalidGrant, "Session doesn't have required client")
		f.mustRefresh("other", other.RefreshToken)
		if ev, _ := f.events.last(EventRevoke); ev.ClientID != "app" || ev.SessionID != g.SessionID {
			t.Errorf("revoke event %+v", ev)
		}
	})
	t.Run("offline token ends the offline session it leaves empty", func(t *testing.T) {
		f := newFixture(t)
		g := f.offline()
		if err := f.svc.Revoke(f.ctx, realmName, "app", g.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if f.session(g.SessionID, true) != nil {
			t.Fatal("offline session still stored")
		}
		if us := f.session(g.SessionID, false); us == nil || us.Clients["app"] == nil {
			t.Fatal("the online session was touched")
		}
	})
	t.Run("not an error, changes nothing", func(t *testing.T) {
		f := newFixture(t)
		g := f.open(OpenRequest{})
		before := f.sessions()
		for _, raw := range []string{"", "garbage", tamper(g.RefreshToken), algNone(t, g.RefreshToken)} {
			if err := f.svc.Revoke(f.ctx, realmName, "app", raw); err != nil {
				t.Errorf("revoke %.20q: %v", raw, err)
			}
		}
		f.clock.Advance(time.Hour)
		if err := f.svc.Revoke(f.ctx, realmName, "app", g.RefreshToken); err != nil { // expired
			t.Errorf("revoke expired: %v", err)
		}
		f.unchanged(before)
	})
	t.Run("refused, changes nothing", func(t *testing.T) {
		f := newFixture(t)
		g := f.open(OpenRequest{})
		before := f.sessions()
		refusal(t, f.svc.Revoke(f.ctx, realmName, "other", g.RefreshToken), UnauthorizedClient, "issued to another client")
		refusal(t, f.svc.Revoke(f.ctx, realmName, "app", g.AccessToken), UnsupportedTokenType, "Access tokens cannot be revoked")
		f.unchanged(before)
	})
}

// TestTransient: seed 000, transient sessions: nothing stored, no refresh, no introspection.
func TestTransient(t *testing.T) {
	f := newFixture(t)
	g := f.open(OpenRequest{Transient: true, Scope: "openid offline_access", OfflineAccess: true})
	if !g.Transient || g.RefreshToken != "" || g.Offline || g.AccessToken == "" || g.ExpiresIn() != 300 {
		t.Fatalf("transient grant %+v", g)
	}
	if n := len(f.sessions()); n != 0 {
		t.Fatalf("%d sessions stored", n)
	}
	if in, _ := f.svc.Introspect(f.ctx, realmName, g.AccessToken); in.Active {
		t.Fatal("a transient access token introspects active")
	}
	if ev, _ := f.events.last(EventLogin); !ev.Transient {
		t.Errorf("login event %+v", ev)
	}

	off := newFixture(t, func(c *config) { c.transient = false })
	_, err := off.svc.Open(off.ctx, OpenRequest{Realm: realmName, ClientID: "app", UserID: user, Transient: true})
	refusal(t, err, InvalidRequest, "Transient sessions are disabled")
}

// TestOpenAndAttach: issue 4, single sign-on, one user session with one client session per
// client; and what Open refuses.
func TestOpenAndAttach(t *testing.T) {
	f := newFixture(t)
	g := f.open(OpenRequest{IPAddress: "192.0.2.1", UserAgent: "test", RememberMe: true, Notes: map[string]string{"k": "v"}})
	us := f.session(g.SessionID, false)
	if us == nil || us.UserID != user || us.LoginUsername != "alice" || us.IPAddress != "192.0.2.1" || !us.RememberMe ||
		us.State != "LOGGED_IN" || us.AuthMethod != "openid-connect" || us.Notes["k"] != "v" || len(us.Clients) != 1 {
		t.Fatalf("stored session %+v", us)
	}
	if f.session(g.SessionID, true) != nil {
		t.Fatal("an offline session without offline_access")
	}
	f.clock.Advance(10 * time.Minute)
	other := f.attach(g.SessionID, "other")
	if other.SessionID != g.SessionID || other.RefreshToken == "" {
		t.Fatalf("attach grant %+v", other)
	}
	us = f.session(g.SessionID, false)
	if len(us.Clients) != 2 || !us.LastRefresh.Equal(f.clock.Now()) {
		t.Fatalf("after attach: %d client sessions, last refresh %s", len(us.Clients), us.LastRefresh)
	}
	f.mustRefresh("other", other.RefreshToken)
	f.mustRefresh("app", g.RefreshToken)

	t.Run("attach with offline_access when the user held the role", func(t *testing.T) {
		f := newFixture(t)
		g := f.open(OpenRequest{OfflineAccess: true})
		a, err := f.svc.Attach(f.ctx, AttachRequest{Realm: realmName, SessionID: g.SessionID, ClientID: "other", Scope: "openid offline_access"})
		if err != nil || a.RefreshTokenType != token.Offline {
			t.Fatalf("attach: %+v, %v", a, err)
		}
		if off := f.session(g.SessionID, true); off == nil || off.Clients["other"] == nil || f.session(g.SessionID, false).Clients["other"] == nil {
			t.Fatal("want an offline and an online client session for other")
		}
		f.mustRefresh("other", a.RefreshToken)
	})

	t.Run("refused", func(t *testing.T) {
		f := newFixture(t)
		for _, tc := range []struct {
			req  OpenRequest
			code string
			want string
		}{
			{OpenRequest{Realm: realmName, ClientID: "app"}, InvalidRequest, "A user id is required"},
			{OpenRequest{Realm: realmName, ClientID: "nobody", UserID: user}, InvalidClient, "not found"},
			{OpenRequest{Realm: realmName, ClientID: "off", UserID: user}, UnauthorizedClient, "disabled"},
		} {
			_, err := f.svc.Open(f.ctx, tc.req)
			refusal(t, err, tc.code, tc.want)
		}
		_, err := f.svc.Attach(f.ctx, AttachRequest{Realm: realmName, SessionID: "nope", ClientID: "app"})
		refusal(t, err, InvalidGrant, "Session not active")
		if _, err := f.svc.Open(f.ctx, OpenRequest{Realm: "nowhere", ClientID: "app", UserID: user}); !errors.Is(err, ErrUnknownRealm) {
			t.Errorf("unknown realm: %v", err)
		}
		if n := len(f.sessions()); n != 0 {
			t.Errorf("%d sessions stored by refused calls", n)
		}
	})
}

// TestExplain: issue 4, which timeout governs the session and its client sessions.
func TestExplain(t *testing.T) {
	f := newFixture(t, withRealm(func(r *realm.Realm) { r.SSOSessionIdleRememberMe = 2 * time.Hour }))
	g := f.open(OpenRequest{RememberMe: true, Scope: "openid offline_access", OfflineAccess: true})
	f.attach(g.SessionID, "short")
	x, err := f.svc.Explain(f.ctx, realmName, g.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if x.Online == nil || x.Offline == nil {
		t.Fatalf("explanation %+v", x)
	}
	if src := x.Online.Session.Idle.Source; !strings.Contains(src, "ssoSessionIdleTimeoutRememberMe") {
		t.Errorf("online idle from %q", src)
	}
	if src := x.Offline.Session.Idle.Source; !strings.Contains(src, "offlineSessionIdleTimeout") {
		t.Errorf("offline idle from %q", src)
	}
	if len(x.Online.Clients) != 2 || !strings.Contains(x.Online.Clients[1].Expiry.Idle.Source, "client.session.idle.timeout") {
		t.Errorf("online clients %+v", x.Online.Clients)
	}
	if _, err := f.svc.Explain(f.ctx, realmName, "nope"); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
}
