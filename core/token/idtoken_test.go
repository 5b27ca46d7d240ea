package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIDToken_claimsAndKind: an ID token carries OpenID Connect's claims (at_hash the left
// half of the access token's SHA-256), cannot have them replaced by Extra, verifies only as
// an ID token, and, past its exp, only for a logout hint (IgnoreExpiry).
func TestIDToken_claimsAndKind(t *testing.T) {
	for _, alg := range []Algorithm{ES256, RS256} {
		t.Run(string(alg), func(t *testing.T) {
			f := newFixture(t, alg, 0)
			ctx := context.Background()
			now := f.clock.Now()
			raw, err := f.svc.IDToken(ctx, "acme", IDClaims{Subject: "user-1", ClientID: "app", SessionID: "s-1", Nonce: "n",
				ACR: "1", AMR: []string{"pwd"}, AuthTime: now.Add(-time.Minute), AccessToken: "the.access.token",
				IssuedAt: now, Expiry: now.Add(time.Minute), Extra: map[string]any{"email": "a@b", "sub": "forged", "nonce": "forged"}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
			var c map[string]any
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"sub": "user-1", "aud": "app", "azp": "app", "sid": "s-1", "nonce": "n", "acr": "1", "typ": "ID",
				"email": "a@b", "at_hash": HalfHash("the.access.token"), "auth_time": float64(now.Add(-time.Minute).Unix())}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if _, err := f.svc.Verify(ctx, "acme", raw, ID); err != nil {
				t.Errorf("Verify as ID: %v", err)
			}
			all := []Type{Bearer, Refresh, Offline}
			if _, err := f.svc.VerifyAccept(ctx, "acme", raw, Accept{Types: all, Legacy: all}); !errors.Is(err, ErrWrongType) {
				t.Errorf("Verify as access, refresh or offline (legacy accepted) = %v, want ErrWrongType", err)
			}
			f.clock.Advance(time.Minute)
			if _, err := f.svc.Verify(ctx, "acme", raw, ID); !errors.Is(err, ErrExpired) {
				t.Errorf("expired: %v", err)
			}
			if _, err := f.svc.VerifyAccept(ctx, "acme", raw, Accept{Types: []Type{ID}, IgnoreExpiry: true}); err != nil {
				t.Errorf("expired, IgnoreExpiry: %v", err)
			}
		})
	}
}

// TestSSOCookie_kind: the SSO cookie is HS512 with header sso+jwt, and verifies only as SSO.
func TestSSOCookie_kind(t *testing.T) {
	f := newFixture(t, ES256, 0)
	ctx := context.Background()
	now := f.clock.Now()
	raw, err := f.svc.SSOCookie(ctx, "acme", "user-1", "s-1", now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Verify(ctx, "acme", raw, SSO)
	if err != nil || got.SessionID != "s-1" || got.Subject != "user-1" || !got.IssuedAt.Equal(now.Truncate(time.Second)) {
		t.Fatalf("Verify as SSO = %+v, %v", got, err)
	}
	all := []Type{Bearer, Refresh, Offline, ID}
	if _, err := f.svc.VerifyAccept(ctx, "acme", raw, Accept{Types: all, Legacy: all[:3]}); !errors.Is(err, ErrWrongType) {
		t.Errorf("Verify as another kind = %v, want ErrWrongType", err)
	}
}
