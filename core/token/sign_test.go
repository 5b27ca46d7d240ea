package token

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/spi"
)

// verifyWithJWKS checks raw against the realm's published keys, as a client would, and
// returns the verified payload.
func verifyWithJWKS(t *testing.T, keys *KeyManager, realm, raw string) []byte {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("not a compact JWS: %v", err)
	}
	set := jwksOf(t, keys, realm)
	found := set.Key(jws.Signatures[0].Header.KeyID)
	if len(found) != 1 {
		t.Fatalf("kid %q is not in the realm's JWKS %+v", jws.Signatures[0].Header.KeyID, set)
	}
	payload, err := jws.Verify(found[0])
	if err != nil {
		t.Fatalf("signature does not verify with the realm's JWKS: %v", err)
	}
	return payload
}

func TestSignVerifiesWithRealmJWKS(t *testing.T) {
	for _, alg := range []Algorithm{ES256, RS256} {
		t.Run(string(alg), func(t *testing.T) {
			f := newFixture(t, alg, 0)
			payload := []byte(`{"id":"d1","expiration":1772366430,"resource":"app","action":"PUSH_NOT_BEFORE","notBefore":1772366400}`)
			raw, err := f.keys.Sign(context.Background(), "acme", payload)
			if err != nil {
				t.Fatal(err)
			}
			if got := verifyWithJWKS(t, f.keys, "acme", raw); string(got) != string(payload) {
				t.Errorf("signed payload %s, want %s exactly", got, payload)
			}
			header, _ := decodeParts(t, raw)
			if header["alg"] != string(alg) || header["typ"] != "JWT" {
				t.Errorf("header %v", header)
			}
			// Signed with the key of this realm only.
			if set := jwksOf(t, f.keys, "other"); set.Key(header["kid"].(string)) != nil {
				t.Error("another realm publishes the key that signed for acme")
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	tests := []struct {
		name    string
		payload string
	}{
		{"not JSON", `PUSH_NOT_BEFORE`},
		{"a JSON array", `["a"]`},
		{"JSON null", `null`},
		{"a string", `"x"`},
		{"an access token type", `{"typ":"Bearer","sub":"u"}`},
		{"a refresh token type", `{"typ":"Refresh"}`},
		{"an offline token type", `{"typ":"Offline"}`},
		{"an ID token type", `{"typ":"ID"}`},
		{"an SSO cookie type", `{"typ":"SSO"}`},
		{"a token type under another spelling of typ", `{"TYP":"Bearer"}`},
	}
	f := newFixture(t, ES256, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := f.keys.Sign(context.Background(), "acme", []byte(tt.payload))
			if !errors.Is(err, spi.ErrInvalid) || raw != "" {
				t.Errorf("Sign(%s) = %q, %v; want spi.ErrInvalid", tt.payload, raw, err)
			}
		})
	}
}

// Whatever Sign is given, Verify does not take the result for a sessiond token, even when
// the payload mimics one in every other claim.
func TestSignedMessagesAreNotTokens(t *testing.T) {
	f := newFixture(t, ES256, 0)
	mimic := map[string]any{
		"exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix(), "jti": "j", "iss": issuerBase + "/realms/acme",
		"sub": "user-1", "azp": "app", "sid": "session-1", "typ": "Message",
	}
	all := []Type{Bearer, Refresh, Offline}
	for _, payload := range []map[string]any{mimic, {"action": "PUSH_NOT_BEFORE", "resource": "app"}} {
		b, _ := json.Marshal(payload)
		raw, err := f.keys.Sign(context.Background(), "acme", b)
		if err != nil {
			t.Fatal(err)
		}
		// Even where the format from before at+jwt is accepted, which shares Sign's header.
		_, err = f.svc.VerifyAccept(context.Background(), "acme", raw, Accept{Types: all, Legacy: all})
		if !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrWrongRealm) {
			t.Errorf("Verify of a message signed by Sign = %v, want a refusal of its kind or issuer: %s", err, b)
		}
	}
}

func TestLogoutToken(t *testing.T) {
	f := newFixture(t, RS256, 0)
	c := LogoutClaims{Subject: "user-1", SessionID: "session-1", Audience: "app", IssuedAt: t0.Add(1500 * time.Millisecond), Expiry: t0.Add(2 * time.Minute)}
	raw, err := f.svc.LogoutToken(context.Background(), "acme", c)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(verifyWithJWKS(t, f.keys, "acme", raw), &got); err != nil {
		t.Fatal(err)
	}
	jti, _ := got["jti"].(string)
	delete(got, "jti")
	want := map[string]any{
		"iss": issuerBase + "/realms/acme", "aud": "app", "sub": "user-1", "sid": "session-1", "typ": "Logout",
		"iat": float64(t0.Unix() + 1), "exp": float64(t0.Add(2 * time.Minute).Unix()),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claims\n got %v\nwant %v", got, want)
	}
	if jti == "" {
		t.Error("no jti")
	}
	again, err := f.svc.LogoutToken(context.Background(), "acme", c)
	if err != nil {
		t.Fatal(err)
	}
	var second map[string]any
	_ = json.Unmarshal(verifyWithJWKS(t, f.keys, "acme", again), &second)
	if second["jti"] == jti {
		t.Error("two logout tokens share a jti")
	}
	_, err = f.svc.Verify(context.Background(), "acme", raw, Bearer, Refresh, Offline)
	if !errors.Is(err, ErrWrongType) {
		t.Errorf("Verify of a logout token = %v, want ErrWrongType", err)
	}
}

func TestLogoutTokenRefusesIncompleteClaims(t *testing.T) {
	full := LogoutClaims{Subject: "u", SessionID: "s", Audience: "app", IssuedAt: t0, Expiry: t0.Add(time.Minute)}
	tests := []struct {
		name   string
		change func(c *LogoutClaims)
	}{
		{"no subject", func(c *LogoutClaims) { c.Subject = "" }},
		{"no session id", func(c *LogoutClaims) { c.SessionID = "" }},
		{"no audience", func(c *LogoutClaims) { c.Audience = "" }},
		{"no issued-at", func(c *LogoutClaims) { c.IssuedAt = time.Time{} }},
		{"expiry not after issued-at", func(c *LogoutClaims) { c.Expiry = c.IssuedAt }},
	}
	f := newFixture(t, ES256, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := full
			tt.change(&c)
			if raw, err := f.svc.LogoutToken(context.Background(), "acme", c); !errors.Is(err, spi.ErrInvalid) || raw != "" {
				t.Errorf("LogoutToken = %q, %v; want spi.ErrInvalid", raw, err)
			}
		})
	}
	if _, err := f.svc.LogoutToken(context.Background(), "acme", full); err != nil {
		t.Errorf("complete claims refused: %v", err)
	}
}
