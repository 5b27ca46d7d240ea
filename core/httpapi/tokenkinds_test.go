package httpapi_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// These tests are issue 15's first "done when": the kinds of token sessiond issues cannot be
// taken for one another, by a standard verifier working from the JWKS or by sessiond itself.

// accessTokenVerifier is what a resource server following RFC 9068 does: go-oidc's signature,
// issuer, audience and expiry checks, and the JWS header type at+jwt, which go-oidc does not
// look at.
func accessTokenVerifier(v *oidc.IDTokenVerifier) func(tb testing.TB, s *stack, raw string) error {
	return func(tb testing.TB, s *stack, raw string) error {
		if _, err := v.Verify(oidc.ClientContext(s.ctx, s.client), raw); err != nil {
			return err
		}
		if typ, _ := header(tb, raw)["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
			return &typError{typ}
		}
		return nil
	}
}

type typError struct{ typ string }

func (e *typError) Error() string { return "JWS header typ " + e.typ + " is not at+jwt (RFC 9068 §4)" }

// TestGoOIDC_rejectsRefreshOfflineAndLogoutTokensAsAccessTokens: go-oidc, pointed at
// sessiond's discovery and JWKS over HTTP, accepts access tokens and refuses refresh and
// offline tokens (their key is a realm secret, in no JWKS), before and after they are revoked.
// A logout token is signed with the published key, as OpenID Connect Back-Channel Logout
// requires; the RFC 9068 check of its header type refuses it.
func TestGoOIDC_rejectsRefreshOfflineAndLogoutTokensAsAccessTokens(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := oidc.ClientContext(s.ctx, s.client)
	provider, err := oidc.NewProvider(ctx, s.issuer(realmName))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	goOIDC := provider.Verifier(&oidc.Config{ClientID: confidential, Now: s.clock.Now})
	goOIDCAnyAlg := provider.Verifier(&oidc.Config{ClientID: confidential, Now: s.clock.Now,
		SupportedSigningAlgs: []string{"ES256", "RS256", "HS256", "HS512"}})
	rfc9068 := accessTokenVerifier(goOIDC)

	online := s.open(t, login{})
	offline := s.open(t, login{OfflineAccess: true, Scope: "openid offline_access"})
	logout, err := s.tokens.LogoutToken(s.ctx, realmName, token.LogoutClaims{
		Subject: user, SessionID: online.SessionID, Audience: confidential, IssuedAt: s.clock.Now(), Expiry: s.clock.Now().Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	action := s.mintIn(t, realmName) // actions_test.go
	if err := rfc9068(t, s, online.AccessToken); err != nil {
		t.Fatalf("verify the access token: %v", err)
	}
	if _, err := goOIDC.Verify(ctx, logout); err == nil {
		t.Log("go-oidc alone accepts a logout token: it does not look at the header type; the at+jwt check is what refuses it")
	}
	check := func(t *testing.T) {
		for _, tc := range []struct{ name, raw string }{
			{"refresh token", online.RefreshToken},
			{"offline token", offline.RefreshToken},
			{"action token", action},
		} {
			for _, v := range []*oidc.IDTokenVerifier{goOIDC, goOIDCAnyAlg} {
				if _, err := v.Verify(ctx, tc.raw); err == nil {
					t.Errorf("go-oidc accepted the %s as an access token", tc.name)
				}
			}
		}
		for _, tc := range []struct{ name, raw string }{
			{"refresh token", online.RefreshToken},
			{"offline token", offline.RefreshToken},
			{"logout token", logout},
			{"action token", action},
		} {
			if err := rfc9068(t, s, tc.raw); err == nil {
				t.Errorf("an RFC 9068 verifier accepted the %s as an access token", tc.name)
			}
		}
	}
	t.Run("issued", check)
	for _, raw := range []string{online.RefreshToken, offline.RefreshToken} {
		if r := s.do(t, form(revokePath(realmName), confidentialAuth, "token", raw)); r.status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
	}
	if in := s.introspect(t, offline.RefreshToken); in.Active {
		t.Fatalf("the revoked offline token is still active: %+v", in)
	}
	t.Run("revoked", check)
}

// TestTokenEndpoints_refuseTheWrongKindOfToken: sessiond's own endpoints take each kind of
// token only where it belongs: an access token is no refresh token, a logout token or an
// adapter action signed with the realm key is no token at all.
func TestTokenEndpoints_refuseTheWrongKindOfToken(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	g := s.open(t, login{})
	logout, err := s.tokens.LogoutToken(s.ctx, realmName, token.LogoutClaims{
		Subject: user, SessionID: g.SessionID, Audience: confidential, IssuedAt: s.clock.Now(), Expiry: s.clock.Now().Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// An adapter action as core/push signs it, given every claim of a refresh token but typ.
	claims := payload(t, g.RefreshToken)
	delete(claims, "typ")
	claims["action"] = "LOGOUT"
	b, _ := json.Marshal(claims)
	action, err := s.keys.Sign(s.ctx, realmName, b)
	if err != nil {
		t.Fatal(err)
	}
	before := s.snapshot(t)
	for _, tc := range []struct{ name, raw, desc string }{
		{"access token", g.AccessToken, `token type is "Bearer", expected Refresh or Offline`},
		{"logout token", logout, `header type "logout+jwt"`},
		{"adapter action", action, `token type is ""`},
	} {
		t.Run(tc.name+" as refresh token", func(t *testing.T) {
			s.do(t, refreshCall(realmName, confidentialAuth, tc.raw)).refused(t, http.StatusBadRequest, "invalid_grant", tc.desc)
		})
		t.Run(tc.name+" at the logout endpoint", func(t *testing.T) {
			s.do(t, form(logoutPath(realmName), confidentialAuth, "refresh_token", tc.raw)).refused(t, http.StatusBadRequest, "invalid_grant", tc.desc)
		})
	}
	for _, tc := range []struct{ name, raw string }{{"logout token", logout}, {"adapter action", action}} {
		t.Run(tc.name+" at introspection", func(t *testing.T) {
			for _, hint := range []string{"", "access_token", "refresh_token"} {
				var in introspection
				s.do(t, form(introspectPath(realmName), confidentialAuth, "token", tc.raw, "token_type_hint", hint)).decode(t, http.StatusOK, &in)
				if in.Active {
					t.Errorf("hint %q: active %+v", hint, in)
				}
			}
		})
		t.Run(tc.name+" at revocation", func(t *testing.T) {
			if r := s.do(t, form(revokePath(realmName), confidentialAuth, "token", tc.raw)); r.status != http.StatusOK {
				t.Errorf("revoke: %d %s", r.status, r.body)
			}
		})
	}
	s.unchanged(t, before)
	t.Run("refresh token at introspection says it is one", func(t *testing.T) {
		if in := s.introspect(t, g.RefreshToken); !in.Active || in.Typ != "Refresh" {
			t.Errorf("introspection of the refresh token: %+v, want active with typ Refresh", in)
		}
	})
	t.Run("access token at revocation", func(t *testing.T) {
		s.do(t, form(revokePath(realmName), confidentialAuth, "token", g.AccessToken)).refused(t, http.StatusBadRequest, "unsupported_token_type", "Access tokens cannot be revoked")
	})
}

// TestUpgrade_tokensIssuedBeforeAtJWTAndRealmSecrets: a realm whose key a sessiond before
// this change stored, and tokens that sessiond issued (every kind signed with that key, header
// typ JWT). By default the refresh token still refreshes, once, into tokens of the current
// format, and the access token is active at introspection until it expires; a legacy refresh
// token is no access token. With legacy-tokens=refuse none is taken.
func TestUpgrade_tokensIssuedBeforeAtJWTAndRealmSecrets(t *testing.T) {
	t.Parallel()
	for _, refuse := range []bool{false, true} {
		name := "legacy-tokens=accept"
		opts := []option{}
		if refuse {
			name = "legacy-tokens=refuse"
			opts = append(opts, withLegacyRefused())
		}
		t.Run(name, func(t *testing.T) {
			s := newStack(t, opts...)
			old := s.storeKeyOfBefore(t, realmName)
			g := s.open(t, login{})
			access, refresh := old.legacy(t, g.AccessToken), old.legacy(t, g.RefreshToken)

			var in introspection
			s.do(t, form(introspectPath(realmName), confidentialAuth, "token", access)).decode(t, http.StatusOK, &in)
			if in.Active == refuse || (!refuse && in.Typ != "Bearer") {
				t.Errorf("introspection of the legacy access token: %+v", in)
			}
			// Without the hint, a legacy refresh token is not active: nothing tells it from
			// an access token but a claim.
			if in := s.introspect(t, refresh); in.Active {
				t.Errorf("introspection of the legacy refresh token without hint: %+v", in)
			}
			s.do(t, form(introspectPath(realmName), confidentialAuth, "token", refresh, "token_type_hint", "refresh_token")).decode(t, http.StatusOK, &in)
			if in.Active == refuse {
				t.Errorf("introspection of the legacy refresh token with hint refresh_token: %+v", in)
			}

			r := s.do(t, refreshCall(realmName, confidentialAuth, refresh))
			if refuse {
				r.refused(t, http.StatusBadRequest, "invalid_grant", "legacy-tokens=refuse")
				return
			}
			var next tokens
			r.decode(t, http.StatusOK, &next)
			if h := header(t, next.RefreshToken); h["alg"] != "HS512" {
				t.Errorf("refreshed into a refresh token with header %v, want HS512", h)
			}
			if h := header(t, next.AccessToken); h["typ"] != "at+jwt" || h["kid"] != old.kid {
				t.Errorf("refreshed into an access token with header %v, want at+jwt signed with the stored key %s", h, old.kid)
			}
			s.refresh(t, confidentialAuth, next.RefreshToken)
		})
	}
}

// keyOfBefore is a realm key as a sessiond from before realm secrets stored it.
type keyOfBefore struct {
	kid  string
	priv *ecdsa.PrivateKey
}

// storeKeyOfBefore writes a realm-keys record of one ES256 key, as that sessiond did.
func (s *stack) storeKeyOfBefore(tb testing.TB, realmName string) keyOfBefore {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	k := keyOfBefore{kid: base64.RawURLEncoding.EncodeToString(tp), priv: priv}
	value, _ := json.Marshal(map[string]any{"keys": []map[string]any{{
		"kid": k.kid, "alg": "ES256", "created": s.clock.Now().Add(-24 * time.Hour), "pkcs8": der}}})
	if _, err := s.store.PutRecord(s.ctx, &usersessions.Record{Kind: token.RecordKind, Key: realmName, Value: value}); err != nil {
		tb.Fatal(err)
	}
	return k
}

// legacy re-signs the claims of raw as that sessiond signed every token: with the realm key,
// header typ JWT.
func (k keyOfBefore) legacy(tb testing.TB, raw string) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(b)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestTokenEndpoints_refuseIDTokensAndSSOCookies: an ID token (header JWT, published key,
// typ ID) and an SSO cookie (header sso+jwt, realm secret) are neither access nor refresh
// tokens anywhere in sessiond, and no access or refresh token passes for an ID token hint.
func TestTokenEndpoints_refuseIDTokensAndSSOCookies(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	g := s.open(t, login{})
	now := s.clock.Now()
	id, err := s.tokens.IDToken(s.ctx, realmName, token.IDClaims{Subject: user, ClientID: confidential, SessionID: g.SessionID,
		AccessToken: g.AccessToken, IssuedAt: now, Expiry: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := s.tokens.SSOCookie(s.ctx, realmName, user, g.SessionID, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if h := header(t, id); h["typ"] != "JWT" || h["alg"] == "HS512" {
		t.Errorf("ID token header %v", h)
	}
	if h := header(t, cookie); h["typ"] != "sso+jwt" || h["alg"] != "HS512" {
		t.Errorf("SSO cookie header %v", h)
	}
	before := s.snapshot(t)
	for _, tc := range []struct{ name, raw, desc string }{
		{"ID token", id, `token type is "ID", expected Refresh or Offline`},
		{"SSO cookie", cookie, `token type is "SSO", expected Refresh or Offline`},
	} {
		t.Run(tc.name+" as refresh token", func(t *testing.T) {
			s.do(t, refreshCall(realmName, confidentialAuth, tc.raw)).refused(t, http.StatusBadRequest, "invalid_grant", tc.desc)
			s.do(t, form(logoutPath(realmName), confidentialAuth, "refresh_token", tc.raw)).refused(t, http.StatusBadRequest, "invalid_grant", tc.desc)
		})
		t.Run(tc.name+" at introspection and userinfo", func(t *testing.T) {
			if in := s.introspect(t, tc.raw); in.Active {
				t.Errorf("introspection: %+v", in)
			}
			r := s.do(t, call{method: http.MethodGet, path: oidcPath(realmName, "userinfo"), header: http.Header{"Authorization": {"Bearer " + tc.raw}}})
			if r.status != http.StatusUnauthorized {
				t.Errorf("userinfo: %d %s", r.status, r.body)
			}
		})
	}
	for _, tc := range []struct{ name, raw string }{{"access token", g.AccessToken}, {"refresh token", g.RefreshToken}, {"SSO cookie", cookie}} {
		t.Run(tc.name+" as id_token_hint", func(t *testing.T) {
			r := s.do(t, call{method: http.MethodGet, path: logoutPath(realmName) + "?id_token_hint=" + tc.raw})
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "not an ID token") {
				t.Errorf("logout with the %s as hint: %d %s", tc.name, r.status, r.body)
			}
		})
	}
	s.unchanged(t, before)
	ctx := oidc.ClientContext(s.ctx, s.client)
	provider, err := oidc.NewProvider(ctx, s.issuer(realmName))
	if err != nil {
		t.Fatal(err)
	}
	goOIDC := provider.Verifier(&oidc.Config{ClientID: confidential, Now: s.clock.Now})
	if _, err := goOIDC.Verify(ctx, id); err != nil {
		t.Errorf("go-oidc refused the ID token: %v", err)
	}
	if err := accessTokenVerifier(goOIDC)(t, s, id); err == nil {
		t.Error("an RFC 9068 verifier accepted the ID token as an access token")
	}
	if _, err := goOIDC.Verify(ctx, cookie); err == nil {
		t.Error("go-oidc accepted the SSO cookie")
	}
}
