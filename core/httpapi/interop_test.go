package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// These tests are issue 4's first "done when": standard client libraries work against
// sessiond with no special code.

// discoveryDoc is the part of the discovery document the tests read.
type discoveryDoc struct {
	Issuer                string   `json:"issuer"`
	TokenEndpoint         string   `json:"token_endpoint"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	IntrospectionAuth     []string `json:"introspection_endpoint_auth_methods_supported"`
}

func (s *stack) discovery(tb testing.TB, realmName string) discoveryDoc {
	tb.Helper()
	var d discoveryDoc
	s.do(tb, call{method: http.MethodGet, path: "/realms/" + realmName + "/.well-known/openid-configuration"}).
		decode(tb, http.StatusOK, &d)
	return d
}

// seen records the token requests a library sends, so a test can check it authenticated
// the way it was told to.
type seen struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []seenRequest
}

type seenRequest struct {
	header http.Header
	form   url.Values
}

func (r *seen) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	f, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, seenRequest{header: req.Header.Clone(), form: f})
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

func (r *seen) requests() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// TestOAuth2_refreshesExpiredAccessTokenWithNoSpecialCode: golang.org/x/oauth2, configured
// from the discovery document, given the tokens the front-end got at login and an access
// token that has expired, refreshes against sessiond on its own, with each client
// authentication method.
func TestOAuth2_refreshesExpiredAccessTokenWithNoSpecialCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		client, secret string
		style          oauth2.AuthStyle
		// sent checks how the library presented the client.
		sent func(seenRequest) bool
	}{
		{name: "client_secret_basic", client: confidential, secret: confidentialSecret, style: oauth2.AuthStyleInHeader,
			sent: func(r seenRequest) bool {
				id, secret, ok := (&http.Request{Header: r.header}).BasicAuth()
				return ok && id == url.QueryEscape(confidential) && secret == url.QueryEscape(confidentialSecret) && !r.form.Has("client_secret")
			}},
		{name: "client_secret_post", client: confidential, secret: confidentialSecret, style: oauth2.AuthStyleInParams,
			sent: func(r seenRequest) bool {
				return r.header.Get("Authorization") == "" && r.form.Get("client_id") == confidential && r.form.Get("client_secret") == confidentialSecret
			}},
		{name: "public client", client: spa, style: oauth2.AuthStyleInParams,
			sent: func(r seenRequest) bool {
				return r.header.Get("Authorization") == "" && r.form.Get("client_id") == spa && !r.form.Has("client_secret")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			d := s.discovery(t, realmName)
			rec := &seen{base: s.client.Transport}
			ctx := context.WithValue(s.ctx, oauth2.HTTPClient, &http.Client{Transport: rec})
			cfg := oauth2.Config{ClientID: tc.client, ClientSecret: tc.secret,
				Endpoint: oauth2.Endpoint{TokenURL: d.TokenEndpoint, AuthStyle: tc.style}}

			g := s.open(t, login{ClientID: tc.client})
			// The access token expires on sessiond's clock, and the library sees it expired.
			s.clock.Advance(6 * time.Minute)
			if in := s.introspect(t, g.AccessToken); in.Active {
				t.Fatalf("the login's access token is still active after its lifespan: %+v", in)
			}
			old := &oauth2.Token{AccessToken: g.AccessToken, TokenType: g.TokenType, RefreshToken: g.RefreshToken,
				Expiry: time.Now().Add(-time.Second)}
			ts := cfg.TokenSource(ctx, old)
			got, err := ts.Token()
			if err != nil {
				t.Fatalf("the library's refresh: %v", err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 || !tc.sent(reqs[0]) || reqs[0].form.Get("grant_type") != "refresh_token" ||
				reqs[0].form.Get("refresh_token") != g.RefreshToken {
				t.Fatalf("the library sent %+v, want one refresh_token grant authenticated by %s", reqs, tc.name)
			}
			if !got.Valid() || got.AccessToken == g.AccessToken || got.RefreshToken == "" || got.Type() != "Bearer" {
				t.Fatalf("refreshed token %+v: want a new valid bearer token and a refresh token", got)
			}
			if left := time.Until(got.Expiry); left < 4*time.Minute || left > 5*time.Minute+time.Second {
				t.Errorf("the library thinks the new access token lives %s, want the realm's 5m", left)
			}
			if in := s.introspect(t, got.AccessToken); !in.Active || in.ClientID != tc.client || in.Sub != user {
				t.Errorf("introspection of the refreshed access token: %+v", in)
			}
			// A valid token is served from the library's cache, without a request.
			if again, err := ts.Token(); err != nil || again.AccessToken != got.AccessToken || len(rec.requests()) != 1 {
				t.Errorf("second Token(): %v, %d requests; want the cached token", err, len(rec.requests()))
			}
			// The refresh token in the response works for the next refresh.
			got.Expiry = time.Now().Add(-time.Second)
			next, err := cfg.TokenSource(ctx, got).Token()
			if err != nil || next.AccessToken == got.AccessToken {
				t.Fatalf("refresh with the returned refresh token: %v", err)
			}
		})
	}
}

// TestOAuth2_refusalsReachTheLibraryAsRetrieveErrors: the library reports sessiond's
// refusals in its own error type, with the OAuth error code.
func TestOAuth2_refusalsReachTheLibraryAsRetrieveErrors(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	d := s.discovery(t, realmName)
	ctx := context.WithValue(s.ctx, oauth2.HTTPClient, s.client)
	g := s.open(t, login{})
	cases := []struct {
		name   string
		secret string
		token  string
		status int
		code   string
	}{
		{name: "wrong client secret", secret: "wrong", token: g.RefreshToken, status: http.StatusUnauthorized, code: "invalid_client"},
		{name: "forged refresh token", secret: confidentialSecret, token: tamper(g.RefreshToken), status: http.StatusBadRequest, code: "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := oauth2.Config{ClientID: confidential, ClientSecret: tc.secret,
				Endpoint: oauth2.Endpoint{TokenURL: d.TokenEndpoint, AuthStyle: oauth2.AuthStyleInHeader}}
			_, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tc.token}).Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != tc.status || re.ErrorCode != tc.code || re.ErrorDescription == "" {
				t.Fatalf("error %v, want a RetrieveError %d %s with a description", err, tc.status, tc.code)
			}
		})
	}
}

// TestGoOIDC_verifiesAccessTokensFromDiscoveryAndJWKS: coreos/go-oidc, given only the
// issuer URL, finds the keys through discovery and JWKS and verifies sessiond's access
// tokens; a token of another realm, a forged one, one for another audience and an expired
// one fail.
func TestGoOIDC_verifiesAccessTokensFromDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := oidc.ClientContext(s.ctx, s.client)
	provider, err := oidc.NewProvider(ctx, s.issuer(realmName))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if d := s.discovery(t, realmName); provider.Endpoint().TokenURL != d.TokenEndpoint || d.Issuer != s.issuer(realmName) {
		t.Fatalf("provider endpoint %+v, discovery %+v", provider.Endpoint(), d)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: confidential, Now: s.clock.Now})

	g := s.open(t, login{})
	tok, err := verifier.Verify(ctx, g.AccessToken)
	if err != nil {
		t.Fatalf("verify the login's access token: %v", err)
	}
	if tok.Subject != user || tok.Issuer != s.issuer(realmName) || !slices.Contains(tok.Audience, confidential) {
		t.Errorf("verified token: sub %q iss %q aud %v", tok.Subject, tok.Issuer, tok.Audience)
	}
	var claims struct {
		SessionID string `json:"sid"`
		Username  string `json:"preferred_username"`
	}
	if err := tok.Claims(&claims); err != nil || claims.SessionID != g.SessionID || claims.Username != "alice" {
		t.Errorf("claims %+v (%v), want sid %q and alice", claims, err, g.SessionID)
	}
	if _, err := verifier.Verify(ctx, s.refresh(t, confidentialAuth, g.RefreshToken).AccessToken); err != nil {
		t.Errorf("verify a refreshed access token: %v", err)
	}

	foreign := s.openIn(t, otherRealm, login{})
	// go-oidc checks the signature before the issuer; even with the issuer check off the
	// foreign token must fail, because its key is not in this realm's JWKS.
	noIssuerCheck := provider.Verifier(&oidc.Config{ClientID: confidential, Now: s.clock.Now, SkipIssuerCheck: true})
	spaToken := s.open(t, login{ClientID: spa}).AccessToken
	cases := []struct {
		name     string
		verifier *oidc.IDTokenVerifier
		raw      string
		want     string
	}{
		{"another realm's token", verifier, foreign.AccessToken, "signature"},
		{"another realm's key", noIssuerCheck, foreign.AccessToken, "signature"},
		{"forged signature", verifier, tamper(g.AccessToken), "signature"},
		{"alg none", verifier, algNone(t, g.AccessToken), "malformed jwt"},
		{"HS256 with the public key", verifier, s.hs256(t, realmName, g.AccessToken), "signature algorithm"},
		{"another client's token", verifier, spaToken, "audience"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.verifier.Verify(ctx, tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: %v, want an error about %s", err, tc.want)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		s.clock.Advance(6 * time.Minute)
		if _, err := verifier.Verify(ctx, g.AccessToken); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("verify after the access token lifespan: %v", err)
		}
	})
}
