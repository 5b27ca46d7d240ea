package httpapi_test

import (
	"net/http"
	"testing"
	"time"
)

// An access token introspected on one node, and so remembered there as verified, is
// inactive on that node once another node of the same deployment (one PostgreSQL, one
// hostname) has ended its session: the verified-token cache remembers signatures, and the
// session is checked on every introspection through the session cache, which follows the
// store's change feed.
func TestIntrospectionEndsWhenAnotherNodeEndsTheSession(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	cases := []struct {
		name string
		end  func(t *testing.T, b *stack, g tokens)
	}{
		{"back-channel logout", func(t *testing.T, b *stack, g tokens) {
			if r := b.do(t, form(logoutPath(realmName), confidentialAuth, "refresh_token", g.RefreshToken)); r.status != http.StatusNoContent {
				t.Fatalf("logout on node b: %d %s", r.status, r.body)
			}
		}},
		{"admin signs the session out", func(t *testing.T, b *stack, g tokens) {
			if r := b.do(t, adminCall(http.MethodDelete, realmName, "/sessions/"+g.SessionID, adminToken, "")); r.status != http.StatusNoContent {
				t.Fatalf("admin delete on node b: %d %s", r.status, r.body)
			}
		}},
		{"refresh token revoked (RFC 7009)", func(t *testing.T, b *stack, g tokens) {
			if r := b.do(t, form(revokePath(realmName), confidentialAuth, "token", g.RefreshToken)); r.status != http.StatusOK {
				t.Fatalf("revoke on node b: %d %s", r.status, r.body)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := pgSchema(t)
			a := newStack(t, withStore(pgProvider(t, dbURL, "node-a")))
			b := newStack(t, withStore(pgProvider(t, dbURL, "node-b")), withIssuer(a.srv.URL))
			g := a.open(t, login{})
			for range 2 { // the second answer comes from the verified-token cache
				if in := a.introspect(t, g.AccessToken); !in.Active {
					t.Fatalf("live token on node a: %+v", in)
				}
			}
			if in := b.introspect(t, g.AccessToken); !in.Active {
				t.Fatalf("live token on node b: %+v", in)
			}
			tc.end(t, b, g)
			if in := b.introspect(t, g.AccessToken); in.Active {
				t.Errorf("node b, which ended the session, still answers active: %+v", in)
			}
			// The change reaches node a through the feed: wait for it, then the answer
			// must be inactive (and stay so).
			deadline := time.Now().Add(30 * time.Second)
			for a.introspect(t, g.AccessToken).Active {
				if time.Now().After(deadline) {
					t.Fatal("node a still answers active 30 s after node b ended the session")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if in := a.introspect(t, g.AccessToken); in.Active {
				t.Errorf("node a answers active again: %+v", in)
			}
		})
	}
}
