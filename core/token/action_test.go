package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/spi"
)

// actionClaims are the claims of a verify-email action token issued at now for 5 minutes.
func actionClaims(now time.Time) ActionClaims {
	return ActionClaims{
		Action: "verify-email", Subject: "user-1", ClientID: "app", Email: "alice@example.test",
		RedirectURI: "https://app.example.test/done", IssuedAt: now, Expiry: now.Add(5 * time.Minute),
	}
}

func (f *fixture) action(t testing.TB, realm string, c ActionClaims) *ActionToken {
	t.Helper()
	tok, err := f.svc.IssueAction(context.Background(), realm, c)
	if err != nil {
		t.Fatalf("issue action token in %q: %v", realm, err)
	}
	return tok
}

// actionPayload returns the claims of an action token as encoded, changed by change.
func actionPayload(t testing.TB, raw string, change func(map[string]any)) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An action token is signed with the realm secret under header type action+jwt, carries
// Keycloak's claim names, and verifies back to what was issued.
func TestIssueAction_roundTripWithKeycloakClaimNames(t *testing.T) {
	f := newFixture(t, ES256, 0)
	c := ActionClaims{
		Action: "execute-actions", Subject: "user-1", ClientID: "app", AdminInitiated: true, Email: "a@example.test",
		RedirectURI: "https://app.example.test/", Required: []string{"UPDATE_PASSWORD", "VERIFY_EMAIL"},
		AuthSessionID: "auth-1", IdentityProviderAlias: "github", IdentityProviderUsername: "alice",
		IssuedAt: t0.Add(1500 * time.Millisecond), Expiry: t0.Add(12 * time.Hour),
	}
	tok := f.action(t, "acme", c)
	header, payload := decodeParts(t, tok.Raw)
	if header["typ"] != "action+jwt" || header["alg"] != "HS512" || header["kid"] != f.activeOf(t, "acme", secret).id {
		t.Errorf("header = %v, want typ action+jwt, HS512 and the realm secret's kid", header)
	}
	for name, want := range map[string]any{
		"typ": "Action", "action": "execute-actions", "sub": "user-1", "azp": "app", "adm": true, "eml": "a@example.test",
		"reduri": "https://app.example.test/", "asid": "auth-1", "idpa": "github", "idpu": "alice",
		"iss": issuerBase + "/realms/acme", "aud": issuerBase + "/realms/acme", "iat": float64(t0.Unix() + 1),
	} {
		if payload[name] != want {
			t.Errorf("claim %s = %v, want %v", name, payload[name], want)
		}
	}
	got, err := f.svc.VerifyAction(context.Background(), "acme", tok.Raw)
	if err != nil {
		t.Fatal(err)
	}
	c.IssuedAt = c.IssuedAt.Truncate(time.Second)
	if got.ID == "" || got.ID != tok.ID || got.Issuer != issuerBase+"/realms/acme" || got.Action != c.Action ||
		got.Email != c.Email || strings.Join(got.Required, ",") != "UPDATE_PASSWORD,VERIFY_EMAIL" || !got.AdminInitiated ||
		!got.IssuedAt.Equal(c.IssuedAt) || !got.Expiry.Equal(c.Expiry) || got.IdentityProviderUsername != "alice" {
		t.Errorf("VerifyAction = %+v, want the issued claims", got)
	}
	jwks, err := f.keys.JWKS(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range jwks.Keys {
		if k.KeyID == tok.KeyID {
			t.Errorf("the key that signs action tokens is published in the JWKS")
		}
	}
}

func TestIssueAction_refusesIncompleteClaims(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*ActionClaims)
	}{
		{"no action", func(c *ActionClaims) { c.Action = "" }},
		{"no subject", func(c *ActionClaims) { c.Subject = "" }},
		{"no issued-at", func(c *ActionClaims) { c.IssuedAt = time.Time{} }},
		{"expiry not after issued-at", func(c *ActionClaims) { c.Expiry = c.IssuedAt }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ES256, 0)
			c := actionClaims(t0)
			tc.change(&c)
			if tok, err := f.svc.IssueAction(context.Background(), "acme", c); !errors.Is(err, spi.ErrInvalid) || tok != nil {
				t.Errorf("IssueAction = %v, %v; want spi.ErrInvalid", tok, err)
			}
		})
	}
}

// RFC 8725 §3.11: VerifyAction takes action tokens and nothing else, and refuses a forged,
// expired or foreign one with the reason.
func TestVerifyAction_refuses(t *testing.T) {
	const leeway = 30 * time.Second
	action := func(t *testing.T, f *fixture) string { return f.action(t, "acme", actionClaims(t0)).Raw }
	// resigned returns an action token of acme with its claims changed, signed with the
	// realm secret under header type typ.
	resigned := func(typ string, change func(map[string]any)) func(t *testing.T, f *fixture) string {
		return func(t *testing.T, f *fixture) string {
			k := f.activeOf(t, "acme", secret)
			return signTyped(t, jose.HS512, k.secret, k.id, typ, actionPayload(t, action(t, f), change))
		}
	}
	keep := func(map[string]any) {}
	tests := []struct {
		name  string
		token func(t *testing.T, f *fixture) string
		after time.Duration
		want  error
		desc  string
	}{
		{name: "valid, a second before exp", token: action, after: 5*time.Minute - time.Second},
		{name: "at exp: no leeway", token: action, after: 5 * time.Minute, want: ErrExpired, desc: "action token expired at 2026-03-01T12:05:00Z"},
		{name: "access token", token: func(t *testing.T, f *fixture) string { return f.issue(t, "acme", claims(Bearer, t0)).Raw },
			want: ErrWrongType, desc: `header type "at+jwt" with ES256, not an action token`},
		{name: "refresh token", token: func(t *testing.T, f *fixture) string { return f.issue(t, "acme", claims(Refresh, t0)).Raw },
			want: ErrWrongType, desc: `header type "JWT" with HS512`},
		{name: "offline token", token: func(t *testing.T, f *fixture) string { return f.issue(t, "acme", claims(Offline, t0)).Raw },
			want: ErrWrongType, desc: "not an action token"},
		{name: "logout token", token: func(t *testing.T, f *fixture) string {
			raw, err := f.svc.LogoutToken(context.Background(), "acme", LogoutClaims{Subject: "u", SessionID: "s", Audience: "app", IssuedAt: t0, Expiry: t0.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}, want: ErrWrongType, desc: `"logout+jwt"`},
		{name: "action claims under the refresh header type", token: resigned(typJWT, keep), want: ErrWrongType, desc: `header type "JWT" with HS512`},
		{name: "action+jwt signed with the published key", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			return signTyped(t, jose.ES256, k.private, k.id, typAction, actionPayload(t, action(t, f), keep))
		}, want: ErrWrongType, desc: "with ES256, not an action token"},
		{name: "refresh typ claim under action+jwt", token: resigned(typAction, func(m map[string]any) { m["typ"] = "Refresh" }),
			want: ErrWrongType, desc: `token type is "Refresh", expected Action`},
		{name: "another realm's action token", token: func(t *testing.T, f *fixture) string { return f.action(t, "other", actionClaims(t0)).Raw },
			want: ErrUnknownKey, desc: `which realm "acme" does not have`},
		{name: "another realm's issuer under a valid signature", token: resigned(typAction, func(m map[string]any) { m["iss"] = issuerBase + "/realms/other" }),
			want: ErrWrongRealm, desc: `not by realm "acme"`},
		{name: "another audience under a valid signature", token: resigned(typAction, func(m map[string]any) { m["aud"] = "app" }),
			want: ErrWrongRealm, desc: `not for realm "acme"`},
		{name: "no jti", token: resigned(typAction, func(m map[string]any) { delete(m, "jti") }), want: ErrMalformed, desc: "lacks exp, jti"},
		{name: "no action", token: resigned(typAction, func(m map[string]any) { delete(m, "action") }), want: ErrMalformed},
		{name: "required actions of the wrong type", token: resigned(typAction, func(m map[string]any) { m["rqac"] = "UPDATE_PASSWORD" }), want: ErrMalformed},
		{name: "forged signature", token: func(t *testing.T, f *fixture) string {
			raw := action(t, f)
			i := strings.LastIndexByte(raw, '.') + 10
			return raw[:i] + flip(raw[i]) + raw[i+1:]
		}, want: ErrSignature},
		{name: "signed with another secret under the realm's kid", token: func(t *testing.T, f *fixture) string {
			k := f.activeOf(t, "acme", secret)
			return signTyped(t, jose.HS512, make([]byte, secretBytes), k.id, typAction, actionPayload(t, action(t, f), keep))
		}, want: ErrSignature},
		{name: "garbage", token: func(*testing.T, *fixture) string { return "not-a-token" }, want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, ES256, leeway)
			raw := tt.token(t, f)
			f.clock.Advance(tt.after)
			got, err := f.svc.VerifyAction(context.Background(), "acme", raw)
			if tt.want == nil {
				if err != nil || got == nil {
					t.Fatalf("VerifyAction = %v, %v; want a token", got, err)
				}
				return
			}
			var te *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &te) || got != nil {
				t.Fatalf("VerifyAction = %v, %v (%T); want *Error of kind %v", got, err, err, tt.want)
			}
			if !strings.Contains(te.Description, tt.desc) {
				t.Errorf("description %q does not contain %q", te.Description, tt.desc)
			}
		})
	}
}

// Action tokens are verified only by VerifyAction: asking Verify for them is a programming
// error, and KeyManager.Sign refuses a payload that claims to be one.
func TestActionKind_onlyThroughItsOwnMethods(t *testing.T) {
	f := newFixture(t, ES256, 0)
	raw := f.action(t, "acme", actionClaims(t0)).Raw
	if _, err := f.svc.Verify(context.Background(), "acme", raw, Action); !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("Verify(Action) = %v, want spi.ErrInvalid", err)
	}
	if _, err := f.keys.Sign(context.Background(), "acme", []byte(`{"typ":"Action","sub":"u"}`)); !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("Sign with typ Action = %v, want spi.ErrInvalid", err)
	}
}

// FuzzVerifyAction: whatever the input, VerifyAction returns a refusal (*Error) or an
// action token of the realm that has not expired, and Verify, for every other kind, never
// accepts what VerifyAction accepts. Seeded with a genuine action token and the other kinds.
func FuzzVerifyAction(f *testing.F) {
	store := newFakeStore()
	loadKeysFixture(f, store, fuzzRealm)
	_, svc := newService(f, store, newClock(), ES256, 0)
	ctx := context.Background()
	action, err := svc.IssueAction(ctx, fuzzRealm, actionClaims(t0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(action.Raw)
	for _, typ := range []Type{Bearer, Refresh} {
		tok, err := svc.Issue(ctx, fuzzRealm, claims(typ, t0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok.Raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := svc.VerifyAction(ctx, fuzzRealm, raw)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || te.Description == "" || tok != nil {
				t.Fatalf("VerifyAction = %v, %v (%T); want nil and an *Error with a description", tok, err, err)
			}
			return
		}
		if tok.Raw != raw || tok.Issuer != svc.Issuer(fuzzRealm) || tok.Action == "" || tok.ID == "" || !t0.Before(tok.Expiry) {
			t.Fatalf("accepted %+v", tok)
		}
		if other, err := svc.Verify(ctx, fuzzRealm, raw, Bearer, Refresh, Offline); err == nil {
			t.Fatalf("Verify accepted an action token as %s", other.Type)
		}
	})
}
