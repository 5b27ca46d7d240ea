package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/dpop"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const (
	realmName = "acme"
	tokenURL  = "https://sso.example.com/realms/acme/protocol/openid-connect/token"
)

// wantRefusal checks that err is a refused proof with code and a description containing desc.
func wantRefusal(t *testing.T, err error, code, desc string) *dpop.Error {
	t.Helper()
	var e *dpop.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want a *dpop.Error %s", err, code)
	}
	if e.Code != code || !strings.Contains(e.Description, desc) {
		t.Errorf("refused with %s %q, want %s containing %q", e.Code, e.Description, code, desc)
	}
	return e
}

// TestParse_RFCExample: the RFC's own proof parses, with the RFC's thumbprint of its key;
// the thumbprint function gives the same for the key alone.
func TestParse_RFCExample(t *testing.T) {
	p, err := dpop.Parse(rfcProof)
	if err != nil {
		t.Fatal(err)
	}
	if p.JKT != rfcJKT || p.Method != "POST" || p.URL != rfcHTU || p.ID != "-BwC3ESc6acc2lTc" || p.IssuedAt.Unix() != rfcIAT {
		t.Errorf("parsed %+v", p)
	}
	x, _ := b64.DecodeString(rfcX)
	y, _ := b64.DecodeString(rfcY)
	jkt, err := dpop.Thumbprint(&ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)})
	if err != nil || jkt != rfcJKT {
		t.Errorf("Thumbprint = %q, %v; want the RFC's %q", jkt, err, rfcJKT)
	}
	// And the checker takes it at its time, for its URL, once.
	c := dpop.New(memoryStore(t, "n1"), dpop.Options{Now: func() time.Time { return time.Unix(rfcIAT+5, 0) }})
	if _, err := c.Check(context.Background(), rfcProof, dpop.Request{Realm: realmName, Method: "POST", URL: rfcHTU}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(context.Background(), rfcProof, dpop.Request{Realm: realmName, Method: "POST", URL: rfcHTU})
	wantRefusal(t, err, dpop.InvalidProof, "used before")
}

// TestParse_algorithms: the asymmetric algorithms a client may sign with, each giving the
// key's thumbprint.
func TestParse_algorithms(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			s := newSigner(t, alg)
			p, err := dpop.Parse(s.sign(t, goodClaims(tokenURL, time.Now()), nil))
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != s.jkt {
				t.Errorf("jkt %s, want %s", p.JKT, s.jkt)
			}
		})
	}
}

// TestParse_refusals: every malformed or unacceptable proof is invalid_dpop_proof, saying why.
func TestParse_refusals(t *testing.T) {
	es := newSigner(t, jose.ES256)
	other := newSigner(t, jose.ES256)
	now := time.Now()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	without := func(name string) map[string]any {
		c := goodClaims(tokenURL, now)
		delete(c, name)
		return c
	}
	with := func(name string, v any) map[string]any {
		c := goodClaims(tokenURL, now)
		c[name] = v
		return c
	}
	good := es.sign(t, goodClaims(tokenURL, now), nil)
	parts := strings.Split(good, ".")
	cases := []struct {
		name, proof, desc string
	}{
		{"empty", "", "empty"},
		{"not a JWS", "abc", "compact JWS"},
		{"four parts", good + ".x", "compact JWS"},
		{"a space", "a b.c.d", "compact JWS"},
		{"too large", strings.Repeat("a", dpop.MaxSize+1), "more than"},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], "compact JWS"},
		{"header not JSON", b64.EncodeToString([]byte("[1]")) + "." + parts[1] + "." + parts[2], "JSON object"},
		{"typ JWT", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["typ"] = "JWT" }), "typ"},
		{"typ at+jwt", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["typ"] = "at+jwt" }), "typ"},
		{"no typ", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { delete(h, "typ") }), "typ"},
		{"alg none", strings.Join([]string{b64.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":{}}`)), parts[1], ""}, "."), "signed with \"none\""},
		{"alg HS256", hmacProof(goodClaims(tokenURL, now)), "signed with \"HS256\""},
		{"no jwk", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { delete(h, "jwk") }), "no jwk"},
		{"private jwk", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["jwk"].(map[string]any)["d"] = "AAAA" }), "private"},
		{"jwk not a key", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["jwk"] = map[string]any{"kty": "XX"} }), "malformed"},
		{"another key's jwk", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["jwk"] = other.jwk }), "signature does not verify"},
		{"alg of another family", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["alg"] = "RS256" }), "signature does not verify"},
		{"tampered claims", parts[0] + "." + b64.EncodeToString([]byte(`{"jti":"x","htm":"POST","htu":"`+tokenURL+`","iat":1}`)) + "." + parts[2], "signature does not verify"},
		{"crit", es.sign(t, goodClaims(tokenURL, now), func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }), "crit"},
		{"RSA 1024", rsaSigner(t, small).sign(t, goodClaims(tokenURL, now), nil), "1024 bits"},
		{"no jti", es.sign(t, without("jti"), nil), "no jti"},
		{"empty jti", es.sign(t, with("jti", ""), nil), "no jti"},
		{"long jti", es.sign(t, with("jti", strings.Repeat("j", 257)), nil), "longer than"},
		{"no htm", es.sign(t, without("htm"), nil), "no htm"},
		{"no htu", es.sign(t, without("htu"), nil), "no htu"},
		{"no iat", es.sign(t, without("iat"), nil), "no iat"},
		{"iat a string", es.sign(t, with("iat", "now"), nil), "JSON object of the expected types"},
		{"iat negative", es.sign(t, with("iat", -5), nil), "not a time"},
		{"htm a number", es.sign(t, with("htm", 5), nil), "expected types"},
		{"claims an array", es.sign(t, nil, nil), "no jti"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := dpop.Parse(tc.proof)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			wantRefusal(t, err, dpop.InvalidProof, tc.desc)
		})
	}
}

func rsaSigner(t testing.TB, k *rsa.PrivateKey) *signer {
	s := newSigner(t, jose.RS256)
	pub := jose.JSONWebKey{Key: &k.PublicKey}
	raw, _ := pub.MarshalJSON()
	s.key, s.jwk = k, nil
	if err := jsonUnmarshal(raw, &s.jwk); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCheck: a proof against its request: method, URL (normalised as RFC 9449 §4.3 says),
// iat window, ath. A refused proof leaves no jti behind: sent again correctly, it passes.
func TestCheck(t *testing.T) {
	clock := testclock.New(time.Now().UTC().Truncate(time.Second))
	store := memoryStore(t, "n1")
	c := dpop.New(store, dpop.Options{Now: clock.Now})
	s := newSigner(t, jose.ES256)
	const at = "an.access.token"
	post := dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL}
	claims := func(edit func(map[string]any)) map[string]any {
		m := goodClaims(tokenURL, clock.Now())
		if edit != nil {
			edit(m)
		}
		return m
	}
	cases := []struct {
		name   string
		claims map[string]any
		req    dpop.Request
		desc   string // "" accepted
	}{
		{"good", claims(nil), post, ""},
		{"htu with query and fragment", claims(func(m map[string]any) { m["htu"] = tokenURL + "?a=b#frag" }), post, ""},
		{"htu with default port and upper-case host", claims(func(m map[string]any) {
			m["htu"] = "HTTPS://SSO.example.COM:443/realms/acme/protocol/openid-connect/token"
		}), post, ""},
		{"iat a fraction", claims(func(m map[string]any) { m["iat"] = float64(clock.Now().Unix()) + 0.5 }), post, ""},
		{"iat 50 s ago", claims(func(m map[string]any) { m["iat"] = clock.Now().Add(-50 * time.Second).Unix() }), post, ""},
		{"iat 20 s ahead", claims(func(m map[string]any) { m["iat"] = clock.Now().Add(20 * time.Second).Unix() }), post, ""},
		{"wrong htm", claims(func(m map[string]any) { m["htm"] = "GET" }), post, "htm"},
		{"htm lower case", claims(func(m map[string]any) { m["htm"] = "post" }), post, "htm"},
		{"wrong htu path", claims(func(m map[string]any) {
			m["htu"] = "https://sso.example.com/realms/acme/protocol/openid-connect/userinfo"
		}), post, "htu"},
		{"wrong htu realm", claims(func(m map[string]any) {
			m["htu"] = "https://sso.example.com/realms/other/protocol/openid-connect/token"
		}), post, "htu"},
		{"wrong htu host", claims(func(m map[string]any) {
			m["htu"] = "https://evil.example.com/realms/acme/protocol/openid-connect/token"
		}), post, "htu"},
		{"wrong htu scheme", claims(func(m map[string]any) { m["htu"] = "http://sso.example.com/realms/acme/protocol/openid-connect/token" }), post, "htu"},
		{"wrong htu port", claims(func(m map[string]any) {
			m["htu"] = "https://sso.example.com:8443/realms/acme/protocol/openid-connect/token"
		}), post, "htu"},
		{"htu relative", claims(func(m map[string]any) { m["htu"] = "/realms/acme/protocol/openid-connect/token" }), post, "htu"},
		{"htu with userinfo", claims(func(m map[string]any) {
			m["htu"] = "https://a@sso.example.com/realms/acme/protocol/openid-connect/token"
		}), post, "htu"},
		{"stale iat", claims(func(m map[string]any) { m["iat"] = clock.Now().Add(-61 * time.Second).Unix() }), post, "ago"},
		{"iat far ahead", claims(func(m map[string]any) { m["iat"] = clock.Now().Add(31 * time.Second).Unix() }), post, "future"},
		{"ath missing at a resource", claims(nil), dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL, AccessToken: at}, "no ath"},
		{"ath of another token", claims(func(m map[string]any) { m["ath"] = dpop.AccessTokenHash("another") }), dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL, AccessToken: at}, "ath"},
		{"ath right", claims(func(m map[string]any) { m["ath"] = dpop.AccessTokenHash(at) }), dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL, AccessToken: at}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := s.sign(t, tc.claims, nil)
			before := records(t, store)
			p, err := c.Check(context.Background(), raw, tc.req)
			if tc.desc == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.JKT != s.jkt {
					t.Errorf("jkt %s, want %s", p.JKT, s.jkt)
				}
				if n := records(t, store); n != before+1 {
					t.Errorf("%d jti records after an accepted proof, want %d", n, before+1)
				}
				_, err = c.Check(context.Background(), raw, tc.req)
				wantRefusal(t, err, dpop.InvalidProof, "used before")
				return
			}
			wantRefusal(t, err, dpop.InvalidProof, tc.desc)
			if n := records(t, store); n != before {
				t.Errorf("a refused proof left a jti record (%d, was %d)", n, before)
			}
		})
	}
}

func records(t *testing.T, store usersessions.Provider) int {
	t.Helper()
	recs, err := store.ListRecords(context.Background(), dpop.JTIKind)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestCheck_nonce: where a nonce is required, a proof without one, with a forged one, one
// of another realm or an expired one is use_dpop_nonce with a fresh nonce; with the nonce
// given, it passes, on another node sharing the store too.
func TestCheck_nonce(t *testing.T) {
	clock := testclock.New(time.Now().UTC().Truncate(time.Second))
	store := memoryStore(t, "n1")
	c := dpop.New(store, dpop.Options{Now: clock.Now})
	s := newSigner(t, jose.ES256)
	ctx := context.Background()
	req := dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL, NonceRequired: true}
	withNonce := func(n string) string {
		m := goodClaims(tokenURL, clock.Now())
		if n != "" {
			m["nonce"] = n
		}
		return s.sign(t, m, nil)
	}
	_, err := c.Check(ctx, withNonce(""), req)
	e := wantRefusal(t, err, dpop.UseNonce, "nonce is required")
	if e.Nonce == "" {
		t.Fatal("use_dpop_nonce without a nonce to retry with")
	}
	if _, err := c.Check(ctx, withNonce(e.Nonce), req); err != nil {
		t.Fatalf("the nonce given refused: %v", err)
	}
	foreign, err := c.Nonce(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]string{"forged": b64.EncodeToString(make([]byte, 24)), "junk": "%%%", "other realm": foreign} {
		_, err := c.Check(ctx, withNonce(n), req)
		wantRefusal(t, err, dpop.UseNonce, "not one this server gave")
		_ = name
	}
	// Another node on the same store accepts this node's nonce.
	second := dpop.New(store, dpop.Options{Now: clock.Now})
	fresh, _ := c.Nonce(ctx, realmName)
	if _, err := second.Check(ctx, withNonce(fresh), req); err != nil {
		t.Fatalf("another node refused the nonce: %v", err)
	}
	clock.Advance(dpop.DefaultNonceLifetime + time.Second)
	_, err = c.Check(ctx, withNonce(fresh), req)
	wantRefusal(t, err, dpop.UseNonce, "expired")
}

// TestCleanup: jti records go once their proofs are too old to be accepted, not before.
func TestCleanup(t *testing.T) {
	clock := testclock.New(time.Now().UTC().Truncate(time.Second))
	store := memoryStore(t, "n1")
	c := dpop.New(store, dpop.Options{Now: clock.Now})
	s := newSigner(t, jose.ES256)
	ctx := context.Background()
	for range 3 {
		if _, err := c.Check(ctx, s.sign(t, goodClaims(tokenURL, clock.Now()), nil), dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := c.Cleanup(ctx); err != nil || n != 0 {
		t.Fatalf("Cleanup of live records = %d, %v", n, err)
	}
	clock.Advance(dpop.DefaultMaxAge + 2*time.Second)
	if n, err := c.Cleanup(ctx); err != nil || n != 3 {
		t.Fatalf("Cleanup = %d, %v; want 3", n, err)
	}
	if n := records(t, store); n != 0 {
		t.Errorf("%d records left", n)
	}
}

// TestCheck_replayAcrossNodes: two nodes, each with its own PostgreSQL provider on one
// schema; a proof the first accepted, the second refuses, and the other way round; of
// proofs sent to both at once, exactly one is accepted.
func TestCheck_replayAcrossNodes(t *testing.T) {
	url := testpg.Schema(t, "dpop")
	nodes := make([]*dpop.Checker, 2)
	for i := range nodes {
		p := postgres.New(hclog.NewNullLogger())
		if err := p.Configure(context.Background(), spi.Config{postgres.OptURL: url, spi.HostNodeID: "node-" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(context.Background()) })
		nodes[i] = dpop.New(p, dpop.Options{})
	}
	s := newSigner(t, jose.ES256)
	req := dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL}
	ctx := context.Background()
	for i := range 2 {
		raw := s.sign(t, goodClaims(tokenURL, time.Now()), nil)
		if _, err := nodes[i].Check(ctx, raw, req); err != nil {
			t.Fatal(err)
		}
		_, err := nodes[1-i].Check(ctx, raw, req)
		wantRefusal(t, err, dpop.InvalidProof, "used before")
	}
	for range 10 {
		raw := s.sign(t, goodClaims(tokenURL, time.Now()), nil)
		errs := make(chan error, 2)
		for _, n := range nodes {
			go func() { _, err := n.Check(ctx, raw, req); errs <- err }()
		}
		accepted := 0
		for range 2 {
			err := <-errs
			switch {
			case err == nil:
				accepted++
			case !dpop.IsError(err):
				t.Fatal(err)
			}
		}
		if accepted != 1 {
			t.Fatalf("%d nodes accepted one proof sent to both", accepted)
		}
	}
}

// TestChallenge: the WWW-Authenticate of a resource's refusal (RFC 9449 §7.1).
func TestChallenge(t *testing.T) {
	got := dpop.Challenge(dpop.InvalidProof, `bad "proof"`)
	want := `DPoP error="invalid_dpop_proof", error_description="bad \"proof\"", algs="ES256 ES384 ES512 RS256 RS384 RS512 PS256 PS384 PS512 EdDSA"`
	if got != want {
		t.Errorf("Challenge = %s\nwant        %s", got, want)
	}
}
