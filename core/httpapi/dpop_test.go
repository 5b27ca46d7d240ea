package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/core/realm"
)

// holder is a client's DPoP key: proofs made with go-jose, the key in the header.
type holder struct {
	signer jose.Signer
	jkt    string
}

func newHolder(tb testing.TB) *holder {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		tb.Fatal(err)
	}
	// The thumbprint from RFC 7638's rules, written out here rather than taken from the
	// code under test: the members crv, kty, x, y in that order, no spaces.
	size := 32
	x, y := make([]byte, size), make([]byte, size)
	key.X.FillBytes(x)
	key.Y.FillBytes(y)
	b64 := base64.RawURLEncoding
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + b64.EncodeToString(x) + `","y":"` + b64.EncodeToString(y) + `"}`))
	return &holder{signer: sig, jkt: b64.EncodeToString(sum[:])}
}

// proof is a proof of a request of method to u at the time at, with extra claims.
func (h *holder) proof(tb testing.TB, method, u string, at time.Time, extra map[string]any) string {
	tb.Helper()
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": u, "iat": at.Unix()}
	maps.Copy(claims, extra)
	payload, _ := json.Marshal(claims)
	jws, err := h.signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// tokenURL is the token endpoint as the realm's issuer names it: the proofs' htu.
func (s *stack) tokenURL() string { return s.issuer(realmName) + "/protocol/openid-connect/token" }

// tokenProof is a good proof for the token endpoint now.
func (s *stack) tokenProof(tb testing.TB, h *holder) string {
	return h.proof(tb, http.MethodPost, s.tokenURL(), s.clock.Now(), nil)
}

// withDPoP adds DPoP headers to c.
func withDPoP(c call, proofs ...string) call {
	c.header = c.header.Clone()
	for _, p := range proofs {
		c.header.Add("DPoP", p)
	}
	return c
}

// bound is the part of an introspection answer DPoP adds (RFC 9449 §6.2).
type bound struct {
	Active bool `json:"active"`
	Cnf    *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

func (s *stack) jktOf(tb testing.TB, raw string) string {
	tb.Helper()
	var b bound
	s.do(tb, form(introspectPath(realmName), confidentialAuth, "token", raw)).decode(tb, http.StatusOK, &b)
	if !b.Active {
		tb.Fatal("introspection: the token is not active")
	}
	if b.Cnf == nil {
		return ""
	}
	return b.Cnf.JKT
}

// TestDPoP_grantsBindTokens: a token request with a proof gets token_type DPoP and an
// access token bound to the proof's key (cnf.jkt, seen through introspection), for every
// grant; a public client's refresh token is bound too, a confidential client's is not
// (RFC 9449 §5).
func TestDPoP_grantsBindTokens(t *testing.T) {
	s := newStack(t)
	h := newHolder(t)
	cases := []struct {
		name string
		// grant returns the token request's answer.
		grant       func(t *testing.T) tokens
		refreshBond bool // the refresh token is bound as well
	}{
		{"refresh_token, confidential", func(t *testing.T) tokens {
			g := s.open(t, login{})
			var got tokens
			s.do(t, withDPoP(refreshCall(realmName, confidentialAuth, g.RefreshToken), s.tokenProof(t, h))).decode(t, http.StatusOK, &got)
			return got
		}, false},
		{"refresh_token, public", func(t *testing.T) tokens {
			g := s.open(t, login{ClientID: spa})
			var got tokens
			s.do(t, withDPoP(refreshCall(realmName, public(spa), g.RefreshToken), s.tokenProof(t, h))).decode(t, http.StatusOK, &got)
			return got
		}, true},
		{"client_credentials", func(t *testing.T) tokens {
			var got tokens
			s.do(t, withDPoP(form(tokenPath(realmName), basic(service, otherSecret), "grant_type", "client_credentials"), s.tokenProof(t, h))).decode(t, http.StatusOK, &got)
			return got
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.grant(t)
			if got.TokenType != "DPoP" {
				t.Errorf("token_type %q, want DPoP", got.TokenType)
			}
			if tc.name == "client_credentials" {
				// A transient session: never active at introspection; the claim itself.
				if jkt := unverifiedJKT(t, got.AccessToken); jkt != h.jkt {
					t.Errorf("access token cnf.jkt %q, want %q", jkt, h.jkt)
				}
				return
			}
			if jkt := s.jktOf(t, got.AccessToken); jkt != h.jkt {
				t.Errorf("access token cnf.jkt %q, want %q", jkt, h.jkt)
			}
			want := ""
			if tc.refreshBond {
				want = h.jkt
			}
			if jkt := s.jktOf(t, got.RefreshToken); jkt != want {
				t.Errorf("refresh token cnf.jkt %q, want %q", jkt, want)
			}
			if !tc.refreshBond {
				// A confidential client's refresh token needs no proof: its credentials bind it.
				if again := s.refresh(t, confidentialAuth, got.RefreshToken); again.TokenType != "Bearer" {
					t.Errorf("refresh without a proof: token_type %q, want Bearer", again.TokenType)
				}
			}
		})
	}
	t.Run("no proof, bearer tokens", func(t *testing.T) {
		g := s.refresh(t, confidentialAuth, s.open(t, login{}).RefreshToken)
		if g.TokenType != "Bearer" || s.jktOf(t, g.AccessToken) != "" {
			t.Errorf("token_type %q: an unbound request got a bound token", g.TokenType)
		}
	})
}

// unverifiedJKT reads cnf.jkt from a JWT's payload without checking it (the test looks,
// sessiond verifies).
func unverifiedJKT(tb testing.TB, raw string) string {
	tb.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		tb.Fatal(err)
	}
	return c.Cnf.JKT
}

// TestDPoP_publicRefreshTokenStaysWithItsKey: a public client's bound refresh token is
// refused without a proof (invalid_dpop_proof) and with a proof of another key
// (invalid_grant), changing nothing; with its own key it goes on.
func TestDPoP_publicRefreshTokenStaysWithItsKey(t *testing.T) {
	s := newStack(t)
	h, thief := newHolder(t), newHolder(t)
	var g tokens
	s.do(t, withDPoP(refreshCall(realmName, public(spa), s.open(t, login{ClientID: spa}).RefreshToken), s.tokenProof(t, h))).decode(t, http.StatusOK, &g)
	before := s.snapshot(t)
	s.clock.Advance(time.Second)
	s.do(t, refreshCall(realmName, public(spa), g.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_dpop_proof", "bound to a DPoP key")
	s.do(t, withDPoP(refreshCall(realmName, public(spa), g.RefreshToken), s.tokenProof(t, thief))).refused(t, http.StatusBadRequest, "invalid_grant", "another DPoP key")
	s.unchanged(t, before)
	var next tokens
	s.do(t, withDPoP(refreshCall(realmName, public(spa), g.RefreshToken), s.tokenProof(t, h))).decode(t, http.StatusOK, &next)
	if s.jktOf(t, next.RefreshToken) != h.jkt {
		t.Error("the rotated refresh token lost its binding")
	}
}

// TestDPoP_refusals: each bad proof, or missing one, is refused with RFC 9449's error,
// and the session is left as it was.
func TestDPoP_refusals(t *testing.T) {
	h := newHolder(t)
	cases := []struct {
		name   string
		realm  func(*realm.Realm)
		proofs func(s *stack) []string
		code   string
		desc   string
	}{
		{"wrong htu", nil, func(s *stack) []string {
			return []string{h.proof(t, http.MethodPost, s.issuer(realmName)+"/protocol/openid-connect/userinfo", s.clock.Now(), nil)}
		}, "invalid_dpop_proof", "htu"},
		{"htu of another realm", nil, func(s *stack) []string {
			return []string{h.proof(t, http.MethodPost, s.issuer(otherRealm)+"/protocol/openid-connect/token", s.clock.Now(), nil)}
		}, "invalid_dpop_proof", "htu"},
		{"wrong htm", nil, func(s *stack) []string {
			return []string{h.proof(t, http.MethodGet, s.tokenURL(), s.clock.Now(), nil)}
		}, "invalid_dpop_proof", "htm"},
		{"stale iat", nil, func(s *stack) []string {
			return []string{h.proof(t, http.MethodPost, s.tokenURL(), s.clock.Now().Add(-2*time.Minute), nil)}
		}, "invalid_dpop_proof", "ago"},
		{"two proofs", nil, func(s *stack) []string { return []string{s.tokenProof(t, h), s.tokenProof(t, h)} }, "invalid_dpop_proof", "more than one"},
		{"garbage", nil, func(s *stack) []string { return []string{"not-a-proof"} }, "invalid_dpop_proof", "compact JWS"},
		{"client must use DPoP", func(r *realm.Realm) {
			c, _ := r.Client(confidential)
			c.DPoPBound = true
		}, func(s *stack) []string { return nil }, "invalid_dpop_proof", "must use DPoP"},
		{"nonce missing", func(r *realm.Realm) { r.DPoPNonce = true }, func(s *stack) []string { return []string{s.tokenProof(t, h)} }, "use_dpop_nonce", "nonce is required"},
		{"nonce forged", func(r *realm.Realm) { r.DPoPNonce = true }, func(s *stack) []string {
			return []string{h.proof(t, http.MethodPost, s.tokenURL(), s.clock.Now(), map[string]any{"nonce": "bm9uY2U"})}
		}, "use_dpop_nonce", "not one this server gave"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, withRealm(func(r *realm.Realm) {
				if tc.realm != nil {
					tc.realm(r)
				}
			}))
			g := s.open(t, login{})
			before := s.snapshot(t)
			s.clock.Advance(time.Second)
			r := s.do(t, withDPoP(refreshCall(realmName, confidentialAuth, g.RefreshToken), tc.proofs(s)...))
			r.refused(t, http.StatusBadRequest, tc.code, tc.desc)
			s.unchanged(t, before)
			if tc.code == "use_dpop_nonce" {
				// Retried with the nonce given, it goes through (and carries the next one).
				nonce := r.header.Get("DPoP-Nonce")
				if nonce == "" {
					t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
				}
				ok := s.do(t, withDPoP(refreshCall(realmName, confidentialAuth, g.RefreshToken), h.proof(t, http.MethodPost, s.tokenURL(), s.clock.Now(), map[string]any{"nonce": nonce})))
				var got tokens
				ok.decode(t, http.StatusOK, &got)
				if got.TokenType != "DPoP" || ok.header.Get("DPoP-Nonce") == "" {
					t.Errorf("token_type %q, DPoP-Nonce %q", got.TokenType, ok.header.Get("DPoP-Nonce"))
				}
			}
		})
	}
	t.Run("replayed proof", func(t *testing.T) {
		s := newStack(t)
		g := s.open(t, login{})
		p := s.tokenProof(t, h)
		s.do(t, withDPoP(refreshCall(realmName, confidentialAuth, g.RefreshToken), p)).decode(t, http.StatusOK, &tokens{})
		before := s.snapshot(t)
		s.clock.Advance(time.Second)
		s.do(t, withDPoP(refreshCall(realmName, confidentialAuth, g.RefreshToken), p)).refused(t, http.StatusBadRequest, "invalid_dpop_proof", "used before")
		s.unchanged(t, before)
	})
	t.Run("client must use DPoP, client_credentials", func(t *testing.T) {
		s := newStack(t, withRealm(func(r *realm.Realm) {
			c, _ := r.Client(service)
			c.DPoPBound = true
		}))
		s.do(t, form(tokenPath(realmName), basic(service, otherSecret), "grant_type", "client_credentials")).refused(t, http.StatusBadRequest, "invalid_dpop_proof", "must use DPoP")
	})
}

// TestDPoP_replayOnASecondNode: two nodes on one PostgreSQL schema, behind one hostname
// (one issuer): a proof the first accepted, the second refuses; a fresh proof it takes.
func TestDPoP_replayOnASecondNode(t *testing.T) {
	dbURL := pgSchema(t)
	a := newStack(t, withStore(pgProvider(t, dbURL, "node-a")))
	b := newStack(t, withStore(pgProvider(t, dbURL, "node-b")), withIssuer(a.srv.URL))
	h := newHolder(t)
	g := a.open(t, login{ClientID: spa})
	p := a.tokenProof(t, h)
	var first tokens
	a.do(t, withDPoP(refreshCall(realmName, public(spa), g.RefreshToken), p)).decode(t, http.StatusOK, &first)
	b.do(t, withDPoP(refreshCall(realmName, public(spa), first.RefreshToken), p)).refused(t, http.StatusBadRequest, "invalid_dpop_proof", "used before")
	var second tokens
	b.do(t, withDPoP(refreshCall(realmName, public(spa), first.RefreshToken), a.tokenProof(t, h))).decode(t, http.StatusOK, &second)
	if second.TokenType != "DPoP" {
		t.Errorf("token_type %q on the second node", second.TokenType)
	}
}

// TestDPoP_userInfo: a bound access token is taken at UserInfo only with the DPoP scheme
// and a proof of its key carrying its hash (RFC 9449 §7); as a bearer token it is refused.
func TestDPoP_userInfo(t *testing.T) {
	s := newStack(t)
	h, other := newHolder(t), newHolder(t)
	var g tokens
	s.do(t, withDPoP(refreshCall(realmName, confidentialAuth, s.open(t, login{}).RefreshToken), s.tokenProof(t, h))).decode(t, http.StatusOK, &g)
	plain := s.refresh(t, confidentialAuth, s.open(t, login{}).RefreshToken)
	u := s.issuer(realmName) + "/protocol/openid-connect/userinfo"
	ath := func(raw string) map[string]any {
		sum := sha256.Sum256([]byte(raw))
		return map[string]any{"ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	}
	get := func(scheme, raw string, proofs ...string) reply {
		c := call{method: http.MethodGet, path: oidcPath(realmName, "userinfo"), header: http.Header{"Authorization": {scheme + " " + raw}}}
		return s.do(t, withDPoP(c, proofs...))
	}
	cases := []struct {
		name      string
		r         func() reply
		status    int
		code      string
		challenge string // the WWW-Authenticate scheme
	}{
		{"bound token as a bearer token", func() reply { return get("Bearer", g.AccessToken) }, 401, "invalid_token", "Bearer "},
		{"DPoP scheme without a proof", func() reply { return get("DPoP", g.AccessToken) }, 401, "invalid_dpop_proof", "DPoP "},
		{"proof without ath", func() reply { return get("DPoP", g.AccessToken, h.proof(t, "GET", u, s.clock.Now(), nil)) }, 401, "invalid_dpop_proof", "DPoP "},
		{"proof for the token endpoint", func() reply {
			return get("DPoP", g.AccessToken, h.proof(t, "POST", s.tokenURL(), s.clock.Now(), ath(g.AccessToken)))
		}, 401, "invalid_dpop_proof", "DPoP "},
		{"proof of another key", func() reply {
			return get("DPoP", g.AccessToken, other.proof(t, "GET", u, s.clock.Now(), ath(g.AccessToken)))
		}, 401, "invalid_token", "DPoP "},
		{"unbound token with the DPoP scheme", func() reply {
			return get("DPoP", plain.AccessToken, h.proof(t, "GET", u, s.clock.Now(), ath(plain.AccessToken)))
		}, 401, "invalid_token", "DPoP "},
		{"bound token with its proof", func() reply {
			return get("DPoP", g.AccessToken, h.proof(t, "GET", u, s.clock.Now(), ath(g.AccessToken)))
		}, 200, "", ""},
		{"unbound token as a bearer token", func() reply { return get("Bearer", plain.AccessToken) }, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r()
			if tc.status == 200 {
				var info map[string]any
				r.decode(t, 200, &info)
				if info["sub"] != user {
					t.Errorf("userinfo %v", info)
				}
				return
			}
			var e oauthError
			r.decode(t, tc.status, &e)
			if e.Error != tc.code {
				t.Errorf("error %s (%s), want %s", e.Error, e.Description, tc.code)
			}
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, tc.challenge) || !strings.Contains(ch, tc.code) {
				t.Errorf("WWW-Authenticate %q, want a %schallenge with %s", ch, tc.challenge, tc.code)
			}
		})
	}
}

// TestDPoP_discovery lists the proof algorithms: asymmetric ones only.
func TestDPoP_discovery(t *testing.T) {
	s := newStack(t)
	var d struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	s.do(t, call{method: http.MethodGet, path: "/realms/" + realmName + "/.well-known/openid-configuration"}).decode(t, http.StatusOK, &d)
	for _, want := range []string{"ES256", "RS256", "EdDSA"} {
		if !slices.Contains(d.Algs, want) {
			t.Errorf("dpop_signing_alg_values_supported %v lacks %s", d.Algs, want)
		}
	}
	for _, a := range d.Algs {
		if a == "none" || strings.HasPrefix(a, "HS") {
			t.Errorf("dpop_signing_alg_values_supported lists %s", a)
		}
	}
}

// dpopTransport adds a fresh proof to every POST to the token endpoint, as a DPoP client
// library does around golang.org/x/oauth2.
type dpopTransport struct {
	base http.RoundTripper
	h    *holder
	tb   testing.TB
	now  func() time.Time
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
		r = r.Clone(r.Context())
		u := *r.URL
		u.RawQuery = ""
		r.Header.Set("DPoP", d.h.proof(d.tb, r.Method, u.String(), d.now(), nil))
	}
	return d.base.RoundTrip(r)
}

// TestDPoP_codeFlowWithOAuth2: golang.org/x/oauth2 runs the code flow of the public client
// with PKCE through a transport that adds proofs: the code grant answers token_type DPoP
// with both tokens bound; the library's refresh goes through with a proof, and without one
// the refresh token is refused.
func TestDPoP_codeFlowWithOAuth2(t *testing.T) {
	s := newLoginStack(t)
	h := newHolder(t)
	app := s.rp(t, spa, "", spaCallback, oidc.ScopeOpenID)
	withProofs := &http.Client{Transport: &dpopTransport{base: s.client.Transport, h: h, tb: t, now: s.clock.Now}}
	app.ctx = oidc.ClientContext(context.WithValue(s.ctx, oauth2.HTTPClient, withProofs), withProofs)
	tok, _ := app.login(t, s.newBrowser())
	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", tok.TokenType)
	}
	if s.jktOf(t, tok.AccessToken) != h.jkt || s.jktOf(t, tok.RefreshToken) != h.jkt {
		t.Fatal("the code grant's tokens are not bound to the proof's key")
	}
	s.clock.Advance(time.Second)
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Hour)
	next, err := app.conf.TokenSource(app.ctx, &expired).Token()
	if err != nil {
		t.Fatalf("refresh with a proof: %v", err)
	}
	if next.TokenType != "DPoP" || s.jktOf(t, next.RefreshToken) != h.jkt {
		t.Errorf("refresh: token_type %q", next.TokenType)
	}
	plain := oidc.ClientContext(s.ctx, s.client)
	stale := *next
	stale.Expiry = time.Now().Add(-time.Hour)
	if _, err := app.conf.TokenSource(plain, &stale).Token(); err == nil || !strings.Contains(err.Error(), "invalid_dpop_proof") {
		t.Errorf("refresh of a bound token without a proof: %v, want invalid_dpop_proof", err)
	}
}

// TestDPoP_dpopJKTBindsTheCode: an authorization request's dpop_jkt (RFC 9449 §10) binds
// its code to that key: a token request without a proof, or with a proof by another key, is
// refused and leaves the code redeemable; the proof by the named key redeems it, and the
// access token is bound to that key.
func TestDPoP_dpopJKTBindsTheCode(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	h, other := newHolder(t), newHolder(t)
	code := s.code(t, s.newBrowser(), "dpop_jkt", h.jkt)
	s.do(t, codeCall(confidentialAuth, code)).refused(t, http.StatusBadRequest, "invalid_grant", "dpop_jkt")
	s.do(t, withDPoP(codeCall(confidentialAuth, code), s.tokenProof(t, other))).refused(t, http.StatusBadRequest, "invalid_grant", "dpop_jkt")
	var got tokens
	s.do(t, withDPoP(codeCall(confidentialAuth, code), s.tokenProof(t, h))).decode(t, http.StatusOK, &got)
	if got.TokenType != "DPoP" {
		t.Errorf("token_type %q, want DPoP", got.TokenType)
	}
	if jkt := s.jktOf(t, got.AccessToken); jkt != h.jkt {
		t.Errorf("access token bound to %q, want the dpop_jkt key %q", jkt, h.jkt)
	}

	// Without dpop_jkt the code is not bound to a key: any proof's key binds the tokens.
	free := s.code(t, s.newBrowser())
	s.do(t, withDPoP(codeCall(confidentialAuth, free), s.tokenProof(t, other))).decode(t, http.StatusOK, &got)
	if jkt := s.jktOf(t, got.AccessToken); jkt != other.jkt {
		t.Errorf("access token bound to %q, want the proof's key %q", jkt, other.jkt)
	}
}
