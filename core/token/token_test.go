package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/spi"
)

func TestRoundTrip(t *testing.T) {
	for _, alg := range []Algorithm{ES256, RS256} {
		for _, typ := range []Type{Bearer, Refresh, Offline} {
			t.Run(string(alg)+"/"+string(typ), func(t *testing.T) {
				f := newFixture(t, alg, 0)
				c := claims(typ, t0.Add(1500*time.Millisecond))
				issued := f.issue(t, "acme", c)
				got, err := f.svc.Verify(context.Background(), "acme", issued.Raw, typ)
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				want := c
				want.IssuedAt, want.Expiry = t0.Add(time.Second), t0.Add(5*time.Minute+time.Second) // whole seconds, rounded down
				if typ != Bearer {
					want.Username = ""
				}
				if !reflect.DeepEqual(got.Claims, want) {
					t.Errorf("claims\n got %+v\nwant %+v", got.Claims, want)
				}
				if !reflect.DeepEqual(got, issued) {
					t.Errorf("verified token %+v differs from issued %+v", got, issued)
				}
				if got.Issuer != issuerBase+"/realms/acme" || got.ID == "" || got.KeyID == "" {
					t.Errorf("iss %q, jti %q, kid %q", got.Issuer, got.ID, got.KeyID)
				}
				header, payload := decodeParts(t, issued.Raw)
				wantTyp, wantAlg := "at+jwt", string(alg) // RFC 9068; the published key
				if typ != Bearer {
					wantTyp, wantAlg = "JWT", "HS512" // the realm secret, as Keycloak's refresh tokens
				}
				if header["typ"] != wantTyp || header["alg"] != wantAlg || header["kid"] != issued.KeyID {
					t.Errorf("header %v", header)
				}
				if payload["typ"] != string(typ) || payload["azp"] != "app" || payload["sid"] != "session-1" || payload["aud"] != "account" {
					t.Errorf("payload %v", payload)
				}
				_, hasState := payload["session_state"]
				_, hasUsername := payload["preferred_username"]
				if hasState != (typ == Bearer) || hasUsername != (typ == Bearer) {
					t.Errorf("session_state/preferred_username present %v/%v for %s", hasState, hasUsername, typ)
				}
			})
		}
	}
}

func TestIssueEncodesSeveralAudiencesAsArray(t *testing.T) {
	f := newFixture(t, ES256, 0)
	c := claims(Bearer, t0)
	c.Audience = []string{"account", "api"}
	tok := f.issue(t, "acme", c)
	if _, payload := decodeParts(t, tok.Raw); !reflect.DeepEqual(payload["aud"], []any{"account", "api"}) {
		t.Errorf("aud = %#v", payload["aud"])
	}
	got, err := f.svc.Verify(context.Background(), "acme", tok.Raw, Bearer)
	if err != nil || !reflect.DeepEqual(got.Audience, c.Audience) {
		t.Errorf("verify: %v, aud %v", err, got)
	}
}

func TestIssueRefusesIncompleteClaims(t *testing.T) {
	f := newFixture(t, ES256, 0)
	for name, change := range map[string]func(*Claims){
		"unknown type":              func(c *Claims) { c.Type = "ID" },
		"no subject":                func(c *Claims) { c.Subject = "" },
		"no client":                 func(c *Claims) { c.ClientID = "" },
		"refresh without session":   func(c *Claims) { c.SessionID = "" },
		"no issued-at":              func(c *Claims) { c.IssuedAt = time.Time{} },
		"expiry before issued-at":   func(c *Claims) { c.Expiry = c.IssuedAt.Add(-time.Second) },
		"expiry equal to issued-at": func(c *Claims) { c.Expiry = c.IssuedAt },
	} {
		t.Run(name, func(t *testing.T) {
			c := claims(Refresh, t0)
			change(&c)
			if _, err := f.svc.Issue(context.Background(), "acme", c); !errors.Is(err, spi.ErrInvalid) {
				t.Errorf("err = %v, want spi.ErrInvalid", err)
			}
		})
	}
	// A transient session's access token has no session: that is allowed.
	c := claims(Bearer, t0)
	c.SessionID = ""
	if _, err := f.svc.Issue(context.Background(), "acme", c); err != nil {
		t.Errorf("access token without session: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	const leeway = 30 * time.Second
	type tc struct {
		name   string
		token  func(t *testing.T, f *fixture) string
		expect []Type        // nil: Bearer
		after  time.Duration // clock moves this far after issuing
		want   error         // nil: the token verifies
		desc   string        // part of the description
	}
	access := func(t *testing.T, f *fixture) string { return f.issue(t, "acme", claims(Bearer, t0)).Raw }
	refresh := func(t *testing.T, f *fixture) string { return f.issue(t, "acme", claims(Refresh, t0)).Raw }
	// signed returns a token signed with acme's own active key, carrying w changed by change.
	signed := func(change func(*wire)) func(t *testing.T, f *fixture) string {
		return func(t *testing.T, f *fixture) string {
			w := wireOf(t, access(t, f))
			change(&w)
			k := f.active(t, "acme")
			return signRaw(t, jose.ES256, k.private, k.id, payloadOf(t, w))
		}
	}
	tests := []tc{
		{name: "valid access token", token: access},
		{name: "access token just before exp", token: access, after: 5*time.Minute - time.Second},
		{name: "access token within leeway", token: access, after: 5*time.Minute + leeway - time.Second},
		{name: "access token past leeway", token: access, after: 5*time.Minute + leeway, want: ErrExpired, desc: "Bearer token expired at 2026-03-01T12:05:00Z"},
		{name: "refresh token just before exp", token: refresh, expect: []Type{Refresh}, after: 5*time.Minute - time.Second},
		{name: "refresh token at exp: no leeway", token: refresh, expect: []Type{Refresh}, after: 5 * time.Minute, want: ErrExpired, desc: "Refresh token expired"},
		{name: "refresh accepted among several types", token: refresh, expect: []Type{Refresh, Offline}},
		{name: "refresh token as access token", token: refresh, want: ErrWrongType, desc: `token type is "Refresh", expected Bearer`},
		{name: "access token as refresh token", token: access, expect: []Type{Refresh, Offline}, want: ErrWrongType, desc: "expected Refresh or Offline"},
		{name: "access token in the format before at+jwt", token: func(t *testing.T, f *fixture) string {
			return f.legacy(t, "acme", claims(Bearer, t0))
		}, want: ErrWrongType, desc: "format from before"},
		{name: "logout token as access token", token: func(t *testing.T, f *fixture) string {
			raw, err := f.svc.LogoutToken(context.Background(), "acme", LogoutClaims{Subject: "user-1", SessionID: "session-1", Audience: "app", IssuedAt: t0, Expiry: t0.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}, expect: []Type{Bearer, Refresh, Offline}, want: ErrWrongType, desc: `header type "logout+jwt"`},
		{name: "action token as access token", token: func(t *testing.T, f *fixture) string {
			return f.action(t, "acme", actionClaims(t0)).Raw
		}, want: ErrWrongType, desc: `header type "action+jwt" with HS512`},
		{name: "action token as refresh or offline token", token: func(t *testing.T, f *fixture) string {
			return f.action(t, "acme", actionClaims(t0)).Raw
		}, expect: []Type{Refresh, Offline}, want: ErrWrongType, desc: `header type "action+jwt" with HS512`},
		{name: "HS512 with the public key as secret", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			der, _ := x509.MarshalPKIXPublicKey(k.public)
			w := wireOf(t, refresh(t, f))
			return signTyped(t, jose.HS512, der, k.id, typJWT, payloadOf(t, w))
		}, expect: []Type{Refresh}, want: ErrAlgorithm, desc: `token says "HS512" but key`},
		{name: "realm secret under the access token header type", token: func(t *testing.T, f *fixture) string {
			k := f.activeOf(t, "acme", secret)
			return signTyped(t, jose.HS512, k.secret, k.id, typAccess, payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrWrongType, desc: `header type "at+jwt" with HS512`},
		{name: "realm secret signing a Bearer claim", token: func(t *testing.T, f *fixture) string {
			k := f.activeOf(t, "acme", secret)
			return signTyped(t, jose.HS512, k.secret, k.id, typJWT, payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrWrongType, desc: `token type is "Bearer"`},
		{name: "forged signature", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			i := strings.LastIndexByte(raw, '.') + 10
			return raw[:i] + flip(raw[i]) + raw[i+1:]
		}, want: ErrSignature, desc: "does not verify with key"},
		{name: "payload changed under a valid signature", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			parts := strings.Split(raw, ".")
			w := wireOf(t, raw)
			w.Sub = "admin"
			parts[1] = base64.RawURLEncoding.EncodeToString(payloadOf(t, w))
			return strings.Join(parts, ".")
		}, want: ErrSignature},
		{name: "alg none", token: func(t *testing.T, f *fixture) string {
			return unsigned(t, map[string]string{"alg": "none", "kid": f.active(t, "acme").id, "typ": "JWT"}, wireOf(t, access(t, f)))
		}, want: ErrAlgorithm, desc: `signed with "none"`},
		{name: "alg none with the real signature kept", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			forged := unsigned(t, map[string]string{"alg": "none", "kid": f.active(t, "acme").id}, wireOf(t, raw))
			return forged + raw[strings.LastIndexByte(raw, '.')+1:]
		}, want: ErrAlgorithm},
		{name: "HS256 with the public key (PEM) as secret", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			return signRaw(t, jose.HS256, publicPEM(t, k.public), k.id, payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrAlgorithm, desc: `signed with "HS256"`},
		{name: "HS256 with the public key (DER) as secret", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			der, _ := x509.MarshalPKIXPublicKey(k.public)
			return signRaw(t, jose.HS256, der, k.id, payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrAlgorithm},
		{name: "RS256 under the kid of an ES256 key", token: func(t *testing.T, f *fixture) string {
			rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			return signRaw(t, jose.RS256, rsaKey, f.active(t, "acme").id, payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrAlgorithm, desc: `token says "RS256" but key`},
		{name: "another realm's token", token: func(t *testing.T, f *fixture) string {
			return f.issue(t, "other", claims(Bearer, t0)).Raw
		}, want: ErrUnknownKey, desc: `which realm "acme" does not have`},
		{name: "another realm's key under this realm's kid", token: func(t *testing.T, f *fixture) string {
			w := wireOf(t, access(t, f))
			return signRaw(t, jose.ES256, f.active(t, "other").private, f.active(t, "acme").id, payloadOf(t, w))
		}, want: ErrSignature},
		{name: "unknown kid", token: func(t *testing.T, f *fixture) string {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return signRaw(t, jose.ES256, k, "no-such-key", payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrUnknownKey, desc: `"no-such-key"`},
		{name: "no kid", token: func(t *testing.T, f *fixture) string {
			return signRaw(t, jose.ES256, f.active(t, "acme").private, "", payloadOf(t, wireOf(t, access(t, f))))
		}, want: ErrMalformed, desc: "no kid"},
		{name: "crit header", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.private, KeyID: k.id}},
				(&jose.SignerOptions{}).WithHeader("exp", 1).WithCritical("exp"))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := signer.Sign(payloadOf(t, wireOf(t, access(t, f))))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := jws.CompactSerialize()
			return raw
		}, want: ErrMalformed, desc: "crit"},
		{name: "signature dropped", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			return raw[:strings.LastIndexByte(raw, '.')]
		}, want: ErrMalformed},
		{name: "truncated to half", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			return raw[:len(raw)/2]
		}, want: ErrMalformed},
		{name: "signature cut short", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			return raw[:len(raw)-12]
		}, want: ErrSignature},
		{name: "garbage", token: func(*testing.T, *fixture) string { return "not a token at all" }, want: ErrMalformed, desc: "outside base64url"},
		{name: "not three parts", token: func(*testing.T, *fixture) string { return "abc.def" }, want: ErrMalformed, desc: "not a compact JWS"},
		{name: "line break inside a valid token", token: func(t *testing.T, f *fixture) string {
			raw := access(t, f)
			return raw[:10] + "\r\n" + raw[10:]
		}, want: ErrMalformed, desc: "outside base64url"},
		{name: "empty", token: func(*testing.T, *fixture) string { return "" }, want: ErrMalformed},
		{name: "three empty parts", token: func(*testing.T, *fixture) string { return ".." }, want: ErrMalformed},
		{name: "JSON serialization", token: func(*testing.T, *fixture) string {
			return `{"payload":"e30","protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AAAA"}`
		}, want: ErrMalformed},
		{name: "wrong issuer under a valid signature", token: signed(func(w *wire) { w.Iss = issuerBase + "/realms/other" }),
			want: ErrWrongRealm, desc: `issued by "https://sso.example.test/realms/other", not by realm "acme"`},
		{name: "claims not JSON", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			return signRaw(t, jose.ES256, k.private, k.id, []byte("hello"))
		}, want: ErrMalformed, desc: "claims"},
		{name: "exp of the wrong type", token: func(t *testing.T, f *fixture) string {
			k := f.active(t, "acme")
			return signRaw(t, jose.ES256, k.private, k.id, []byte(`{"exp":"soon","iss":"`+issuerBase+`/realms/acme","typ":"Bearer"}`))
		}, want: ErrMalformed},
		{name: "no exp", token: signed(func(w *wire) { w.Exp = 0 }), want: ErrMalformed, desc: "no exp"},
		{name: "oversized", token: func(*testing.T, *fixture) string { return strings.Repeat("a", MaxSize+1) },
			want: ErrMalformed, desc: "16385 bytes, more than the 16384"},
		{name: "oversized with a valid signature", token: signed(func(w *wire) { w.Scope = strings.Repeat("s ", MaxSize/2) }),
			want: ErrMalformed, desc: "more than the 16384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, ES256, leeway)
			raw := tt.token(t, f)
			f.clock.Advance(tt.after)
			expect := tt.expect
			if expect == nil {
				expect = []Type{Bearer}
			}
			got, err := f.svc.Verify(context.Background(), "acme", raw, expect...)
			if tt.want == nil {
				if err != nil || got == nil {
					t.Fatalf("Verify = %v, %v; want a token", got, err)
				}
				return
			}
			var te *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &te) || got != nil {
				t.Fatalf("Verify = %v, %v (%T); want *Error of kind %v", got, err, err, tt.want)
			}
			t.Logf("error_description: %s", te.Description)
			if te.Description == "" || !strings.Contains(te.Description, tt.desc) {
				t.Errorf("description %q does not contain %q", te.Description, tt.desc)
			}
		})
	}
}

// Tokens issued before at+jwt and realm secrets (signed with the published key, header typ
// JWT) are accepted only where the caller allows the legacy format of their type, and not at
// all when the operator refuses them; each one seen is counted.
func TestLegacyTokensAcceptedOnlyWhereAllowed(t *testing.T) {
	refreshTypes := []Type{Refresh, Offline}
	tests := []struct {
		name   string
		typ    Type
		accept Accept
		refuse bool // Options.RefuseLegacy
		ok     bool
	}{
		{name: "legacy refresh token at the refresh grant", typ: Refresh, accept: Accept{Types: refreshTypes, Legacy: refreshTypes}, ok: true},
		{name: "legacy offline token at the refresh grant", typ: Offline, accept: Accept{Types: refreshTypes, Legacy: refreshTypes}, ok: true},
		{name: "legacy refresh token refused by the operator", typ: Refresh, accept: Accept{Types: refreshTypes, Legacy: refreshTypes}, refuse: true},
		{name: "legacy refresh token where only access tokens are legacy", typ: Refresh, accept: Accept{Types: []Type{Bearer, Refresh}, Legacy: []Type{Bearer}}},
		{name: "legacy refresh token where no legacy is allowed", typ: Refresh, accept: Accept{Types: refreshTypes}},
		{name: "legacy access token at introspection", typ: Bearer, accept: Accept{Types: []Type{Bearer}, Legacy: []Type{Bearer}}, ok: true},
		{name: "legacy access token as refresh token", typ: Bearer, accept: Accept{Types: refreshTypes, Legacy: refreshTypes}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, ES256, 0)
			f.svc = New(f.keys, Options{IssuerBase: issuerBase, Now: f.clock.Now, RefuseLegacy: tt.refuse})
			raw := f.legacy(t, "acme", claims(tt.typ, t0))
			got, err := f.svc.VerifyAccept(context.Background(), "acme", raw, tt.accept)
			if tt.ok {
				if err != nil || !got.Legacy || got.Type != tt.typ {
					t.Fatalf("VerifyAccept = %+v, %v; want a legacy %s token", got, err, tt.typ)
				}
			} else if !errors.Is(err, ErrWrongType) {
				t.Fatalf("VerifyAccept = %+v, %v; want %v", got, err, ErrWrongType)
			}
			if seen := f.svc.LegacyTokens(); (seen == 1) != (tt.ok || tt.refuse) {
				t.Errorf("LegacyTokens = %d", seen)
			}
		})
	}
}

func TestVerifyNeedsAnExpectedType(t *testing.T) {
	f := newFixture(t, ES256, 0)
	raw := f.issue(t, "acme", claims(Bearer, t0)).Raw
	if _, err := f.svc.Verify(context.Background(), "acme", raw); !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("err = %v, want spi.ErrInvalid", err)
	}
}

// A store outage is not a bad token: callers must answer 503, not invalid_grant.
func TestVerifyStoreFailureIsNotARefusal(t *testing.T) {
	f := newFixture(t, ES256, 0)
	raw := f.issue(t, "acme", claims(Bearer, t0)).Raw
	f.store.setFail(spi.ErrUnavailable)
	_, err := f.svc.Verify(context.Background(), "fresh-realm", raw, Bearer)
	var te *Error
	if !errors.Is(err, spi.ErrUnavailable) || errors.As(err, &te) {
		t.Errorf("err = %v, want spi.ErrUnavailable and no *Error", err)
	}
	// A realm whose keys are cached keeps verifying through the outage, even past Reload.
	f.clock.Advance(2 * defaultReload)
	if _, err := f.svc.Verify(context.Background(), "acme", raw, Bearer); err != nil {
		t.Errorf("verify with cached keys during an outage: %v", err)
	}
	if f.store.gets < 3 {
		t.Errorf("store read %d times; the stale keys should have been re-read", f.store.gets)
	}
	// The failed read counts: the next token does not go to the store again.
	gets := f.store.gets
	if _, err := f.svc.Verify(context.Background(), "acme", raw, Bearer); err != nil || f.store.gets != gets {
		t.Errorf("second verify during the outage: %v, %d more store reads", err, f.store.gets-gets)
	}
	// An unknown kid during the outage is still an unknown kid, not an outage.
	f.clock.Advance(minReload)
	other := newFixture(t, ES256, 0).active(t, "acme")
	forged := signRaw(t, jose.ES256, other.private, other.id, payloadOf(t, wireOf(t, raw)))
	if _, err := f.svc.Verify(context.Background(), "acme", forged, Bearer); !errors.Is(err, ErrUnknownKey) || f.store.gets != gets+1 {
		t.Errorf("unknown kid during an outage: err = %v after %d reads, want ErrUnknownKey after one", err, f.store.gets-gets)
	}
}

func TestIssuerEscapesRealm(t *testing.T) {
	svc := New(nil, Options{IssuerBase: "https://sso.example.test/auth/"})
	if got := svc.Issuer("my realm"); got != "https://sso.example.test/auth/realms/my%20realm" {
		t.Errorf("Issuer = %q", got)
	}
}

// active returns the realm's signing key, creating it if needed.
func (f *fixture) active(t testing.TB, realm string) *key {
	t.Helper()
	return f.activeOf(t, realm, asymmetric)
}

// activeOf returns the realm's signing key of family fam, creating it if needed.
func (f *fixture) activeOf(t testing.TB, realm string, fam family) *key {
	t.Helper()
	set, err := f.keys.signing(context.Background(), realm, fam)
	if err != nil {
		t.Fatal(err)
	}
	return set.active[fam]
}

// unsigned builds a compact JWS with the given header, claims and an empty signature.
func unsigned(t *testing.T, header map[string]string, w wire) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payloadOf(t, w)) + "."
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// flip returns a different base64url character.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func decodeParts(t *testing.T, raw string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	for i, into := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}
