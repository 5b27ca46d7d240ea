package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	loginflow "github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
)

// testVerifier is the PKCE code_verifier of the rule tests (s256 makes its challenge).
var testVerifier = strings.Repeat("verifier-", 6)

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authURL is an authorization request of client with the rule tests' defaults (code,
// openid, state st, the test PKCE challenge); kv add to or replace them ("" removes).
func (s *loginStack) authURL(client, redirect string, kv ...string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"openid"},
		"state": {"st"}, "code_challenge": {s256(testVerifier)}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	return s.issuer(realmName) + "/protocol/openid-connect/auth?" + q.Encode()
}

// code logs in confidential in b and returns the code of its callback.
func (s *loginStack) code(t testing.TB, b *browser, kv ...string) string {
	t.Helper()
	back, status := b.visit(t, s.authURL(confidential, rpCallback, kv...))
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("no code: callback %v, status %d", back, status)
	}
	return back.Query().Get("code")
}

func codeCall(a auth, code string, kv ...string) call {
	params := append([]string{"grant_type", "authorization_code", "code", code, "redirect_uri", rpCallback, "code_verifier", testVerifier}, kv...)
	return form(tokenPath(realmName), a, params...)
}

// TestCodeGrant_refusalsChangeNothing: a code is bound to its client, redirect_uri and PKCE
// verifier, and lives for the Client login timeout; a refused exchange leaves the code
// redeemable (except the expired one).
func TestCodeGrant_refusalsChangeNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		call     func(code string) call
		advance  time.Duration
		desc     string
		code     string
		afterAll bool // the code is still good afterwards
	}{
		{name: "wrong PKCE verifier", call: func(c string) call {
			return form(tokenPath(realmName), confidentialAuth, "grant_type", "authorization_code", "code", c, "redirect_uri", rpCallback, "code_verifier", strings.Repeat("x", 43))
		}, desc: "does not match the code_challenge", afterAll: true},
		{name: "missing PKCE verifier", call: func(c string) call {
			return form(tokenPath(realmName), confidentialAuth, "grant_type", "authorization_code", "code", c, "redirect_uri", rpCallback)
		}, desc: "code_verifier is missing", afterAll: true},
		{name: "another redirect_uri", call: func(c string) call {
			return form(tokenPath(realmName), confidentialAuth, "grant_type", "authorization_code", "code", c, "redirect_uri", rpCallback+"x", "code_verifier", testVerifier)
		}, desc: "redirect_uri does not match", afterAll: true},
		{name: "another client", call: func(c string) call { return codeCall(public(spa), c) }, desc: "another client", afterAll: true},
		{name: "unknown code", call: func(string) call { return codeCall(confidentialAuth, "nope") }, desc: "Code not valid", afterAll: true},
		{name: "past the Client login timeout", call: func(c string) call { return codeCall(confidentialAuth, c) },
			advance: time.Minute, desc: "Code expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLoginStack(t)
			code := s.code(t, s.newBrowser())
			s.clock.Advance(tc.advance)
			s.do(t, tc.call(code)).refused(t, http.StatusBadRequest, "invalid_grant", tc.desc)
			if tc.afterAll {
				var got tokens
				s.do(t, codeCall(confidentialAuth, code)).decode(t, http.StatusOK, &got)
			}
		})
	}
	t.Run("one second before the Client login timeout", func(t *testing.T) {
		s := newLoginStack(t)
		code := s.code(t, s.newBrowser())
		s.clock.Advance(time.Minute - time.Second)
		var got tokens
		s.do(t, codeCall(confidentialAuth, code)).decode(t, http.StatusOK, &got)
	})
}

// TestCodeGrant_secondUseFailsAndRevokesWhatTheFirstIssued: RFC 6749 §4.1.2.
func TestCodeGrant_secondUseFailsAndRevokesWhatTheFirstIssued(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	code := s.code(t, s.newBrowser(), "scope", "openid offline_access")
	var first tokens
	s.do(t, codeCall(confidentialAuth, code)).decode(t, http.StatusOK, &first)
	s.do(t, codeCall(confidentialAuth, code)).refused(t, http.StatusBadRequest, "invalid_grant", "Code already used")
	s.do(t, refreshCall(realmName, confidentialAuth, first.RefreshToken)).refused(t, http.StatusBadRequest, "invalid_grant", "")
	if in := s.introspect(t, first.AccessToken); in.Active {
		t.Errorf("the first exchange's access token is still active: %+v", in)
	}
	// Receivers hear that a rule ended it, not the person (CAEP initiating_entity).
	ends := s.adm.ends.of(first.SessionState)
	if len(ends) == 0 {
		t.Fatal("the reused code's session end reached no Shared Signals receiver")
	}
	for _, e := range ends {
		if e.Initiator != session.InitiatorPolicy || e.Reason != "authorization code reuse" {
			t.Errorf("the reused code's session end was told as %q for %q, want policy for authorization code reuse", e.Initiator, e.Reason)
		}
	}
}

// TestAuthorize_unknownClientOrRedirectShowsAPageAndNeverRedirects: RFC 6749 §4.1.2.1.
func TestAuthorize_unknownClientOrRedirectShowsAPageAndNeverRedirects(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	for _, tc := range []struct{ name, url, want string }{
		{"unknown client", s.authURL("nobody", rpCallback), "not known"},
		{"disabled client", s.authURL(disabled, rpCallback), "disabled"},
		{"unregistered redirect_uri", s.authURL(confidential, "https://evil.example/cb"), "registered redirect URIs"},
		{"redirect_uri with a suffix", s.authURL(confidential, rpCallback+"/../x"), "registered redirect URIs"},
		{"missing redirect_uri", s.authURL(confidential, rpCallback, "redirect_uri", ""), "redirect_uri is missing"},
		{"redirect_uri twice", s.authURL(confidential, rpCallback) + "&redirect_uri=" + url.QueryEscape("https://evil.example/cb"), "more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.newBrowser().Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), tc.want) {
				t.Errorf("status %d, Location %q, type %q, body %s", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), body)
			}
		})
	}
}

// TestAuthorize_refusalsGoToTheClientWithStateAndIss: once the redirect URI is known good,
// the client hears of the refusal, with state and iss (RFC 9207).
func TestAuthorize_refusalsGoToTheClientWithStateAndIss(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	for _, tc := range []struct {
		name, client, redirect string
		kv                     []string
		code, desc             string
	}{
		{"prompt=none without a session", confidential, rpCallback, []string{"prompt", "none"}, "login_required", "no live session"},
		{"public client without PKCE", spa, spaCallback, []string{"code_challenge", "", "code_challenge_method", ""}, "invalid_request", "must send a PKCE"},
		{"plain PKCE", confidential, rpCallback, []string{"code_challenge_method", "plain"}, "invalid_request", "must be S256"},
		{"short challenge", confidential, rpCallback, []string{"code_challenge", "abc"}, "invalid_request", "43 to 128"},
		{"implicit without implicitFlowEnabled", confidential, rpCallback, []string{"response_type", "token"}, "unauthorized_client", "implicitFlowEnabled"},
		{"hybrid without implicitFlowEnabled", confidential, rpCallback, []string{"response_type", "code id_token", "nonce", "n"}, "unauthorized_client", "implicitFlowEnabled"},
		{"unknown response type", confidential, rpCallback, []string{"response_type", "code foo"}, "unsupported_response_type", "code, token, id_token"},
		{"response type twice", confidential, rpCallback, []string{"response_type", "code code"}, "unsupported_response_type", ""},
		{"id_token without nonce", implicitClient, implicitCallback, []string{"response_type", "id_token"}, "invalid_request", "nonce is required"},
		{"id_token without openid", implicitClient, implicitCallback, []string{"response_type", "id_token token", "nonce", "n", "scope", "profile"}, "invalid_request", "openid"},
		{"tokens in the query", implicitClient, implicitCallback, []string{"response_type", "token", "response_mode", "query"}, "invalid_request", "fragment"},
		{"no response_type", confidential, rpCallback, []string{"response_type", ""}, "invalid_request", "response_type is missing"},
		{"unknown prompt", confidential, rpCallback, []string{"prompt", "later"}, "invalid_request", "prompt"},
		{"prompt none with login", confidential, rpCallback, []string{"prompt", "none login"}, "invalid_request", "cannot be combined"},
		{"negative max_age", confidential, rpCallback, []string{"max_age", "-1"}, "invalid_request", "max_age"},
		{"bad scope", confidential, rpCallback, []string{"scope", "openid \"x\""}, "invalid_scope", "RFC 6749"},
		{"request object", confidential, rpCallback, []string{"request", "e30"}, "request_not_supported", ""},
		{"unknown response_mode", confidential, rpCallback, []string{"response_mode", "web_message"}, "invalid_request", "response_mode"},
		{"dpop_jkt not a thumbprint", confidential, rpCallback, []string{"dpop_jkt", "abc"}, "invalid_request", "RFC 7638"},
		{"dpop_jkt without a code", implicitClient, implicitCallback, []string{"response_type", "token", "dpop_jkt", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, "invalid_request", "binds an authorization code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			back, status := s.newBrowser().visit(t, s.authURL(tc.client, tc.redirect, tc.kv...))
			if back == nil {
				t.Fatalf("not redirected to the client (status %d)", status)
			}
			q, sep := back.Query(), "?"
			if back.Fragment != "" {
				q, _ = url.ParseQuery(back.EscapedFragment())
				sep = "#"
			}
			if !strings.HasPrefix(back.String(), tc.redirect+sep) || q.Get("error") != tc.code || !strings.Contains(q.Get("error_description"), tc.desc) ||
				q.Get("state") != "st" || q.Get("iss") != s.issuer(realmName) || q.Get("code") != "" {
				t.Errorf("callback %s", back)
			}
		})
	}
}

// acceptCall is the front-end's accept of challenge as alice.
func acceptCall(challenge string) call {
	return jsonPut(loginRequestPath(realmName, challenge)+"/accept", frontendToken, acceptAlice(loginRequest{}))
}

// pendingLogin starts a login whose front-end only reads the challenge, and returns it.
func (s *loginStack) pendingLogin(t *testing.T, b *browser, client, redirect string, kv ...string) loginRequest {
	t.Helper()
	s.fe.setDecide(func(loginRequest) map[string]any { return nil })
	s.fe.seen.Store(nil)
	if back, status := b.visit(t, s.authURL(client, redirect, kv...)); back != nil || status != http.StatusOK {
		t.Fatalf("the browser went to %v (status %d), not to the front-end", back, status)
	}
	lr := s.fe.seen.Load()
	if lr == nil {
		t.Fatal("the front-end read no login request")
	}
	return *lr
}

// TestLoginTimeouts: a front-end step must come within the Login action timeout of the one
// before, and the whole login within the Login timeout; past either the front-end is told
// 410 login_expired, and nothing is opened.
func TestLoginTimeouts(t *testing.T) {
	t.Parallel()
	const action, whole = 5 * time.Minute, 12 * time.Minute
	timeouts := withRealm(func(r *realm.Realm) { r.LoginActionTimeout, r.LoginTimeout = action, whole })
	t.Run("accept within the Login action timeout", func(t *testing.T) {
		s := newLoginStack(t, timeouts)
		lr := s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
		s.clock.Advance(action - time.Second)
		var to struct {
			RedirectTo string `json:"redirect_to"`
		}
		s.do(t, acceptCall(lr.Challenge)).decode(t, http.StatusOK, &to)
	})
	t.Run("accept past the Login action timeout", func(t *testing.T) {
		s := newLoginStack(t, timeouts)
		lr := s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
		if want := s.clock.Now().Add(action); !lr.ExpiresAt.Equal(want) {
			t.Errorf("expires_at %s, want %s", lr.ExpiresAt, want)
		}
		s.clock.Advance(action)
		s.do(t, acceptCall(lr.Challenge)).refused(t, http.StatusGone, "login_expired", "Login action timeout")
		if got := s.snapshot(t); len(got) != 0 {
			t.Errorf("sessions opened: %s", dump(got))
		}
	})
	t.Run("steps within the action timeout, past the Login timeout", func(t *testing.T) {
		s := newLoginStack(t, timeouts)
		lr := s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
		for range 2 {
			s.clock.Advance(4 * time.Minute)
			s.do(t, call{method: http.MethodGet, path: loginRequestPath(realmName, lr.Challenge), header: bearerHeader(frontendToken)}).decode(t, http.StatusOK, &lr)
		}
		s.clock.Advance(4 * time.Minute) // 12 minutes in all
		s.do(t, acceptCall(lr.Challenge)).refused(t, http.StatusGone, "login_expired", "Login timeout")
	})
	t.Run("the browser's return past the Login action timeout", func(t *testing.T) {
		s := newLoginStack(t, timeouts)
		b := s.newBrowser()
		lr := s.pendingLogin(t, b, confidential, rpCallback)
		var to struct {
			RedirectTo string `json:"redirect_to"`
		}
		s.do(t, acceptCall(lr.Challenge)).decode(t, http.StatusOK, &to)
		s.clock.Advance(action)
		resp, err := b.Get(to.RedirectTo)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || b.stopped.Load() != nil || b.cookie(s.stack) != "" {
			t.Errorf("status %d, redirected to %v, cookie %q", resp.StatusCode, b.stopped.Load(), b.cookie(s.stack))
		}
	})
	t.Run("the browser's return in another browser", func(t *testing.T) {
		s := newLoginStack(t)
		lr := s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
		var to struct {
			RedirectTo string `json:"redirect_to"`
		}
		s.do(t, acceptCall(lr.Challenge)).decode(t, http.StatusOK, &to)
		other := s.newBrowser()
		resp, err := other.Get(to.RedirectTo)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || other.stopped.Load() != nil || other.cookie(s.stack) != "" || !strings.Contains(string(body), "another browser") {
			t.Errorf("status %d, redirected to %v, cookie %q: %s", resp.StatusCode, other.stopped.Load(), other.cookie(s.stack), body)
		}
	})
	t.Run("unknown challenge", func(t *testing.T) {
		s := newLoginStack(t)
		s.do(t, acceptCall("nope")).refused(t, http.StatusNotFound, "not_found", "")
	})
	t.Run("without the front-end credential", func(t *testing.T) {
		s := newLoginStack(t)
		lr := s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
		s.do(t, jsonPut(loginRequestPath(realmName, lr.Challenge)+"/accept", "wrong", acceptAlice(lr))).refused(t, http.StatusUnauthorized, "unauthorized", "")
	})
}

// TestAuthorize_maxAgeAndPromptLoginMakeTheFrontEndAuthenticateAgain: with a live SSO
// session the front-end is told skip; prompt=login or an exceeded max_age say it must
// authenticate again; prompt=none with an exceeded max_age is login_required.
func TestAuthorize_maxAgeAndPromptLoginMakeTheFrontEndAuthenticateAgain(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	b := s.newBrowser()
	s.code(t, b)
	s.clock.Advance(2 * time.Minute)
	for _, tc := range []struct {
		name string
		kv   []string
		skip bool
	}{
		{"live session", nil, true},
		{"max_age not exceeded", []string{"max_age", "600"}, true},
		{"max_age exceeded", []string{"max_age", "60"}, false},
		{"prompt=login", []string{"prompt", "login"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lr := s.pendingLogin(t, b, spa, spaCallback, tc.kv...)
			if lr.Skip != tc.skip || lr.SessionID == "" || (tc.skip && lr.Subject != user) {
				t.Errorf("login request %+v, want skip %v", lr, tc.skip)
			}
		})
	}
	t.Run("prompt=none with max_age exceeded", func(t *testing.T) {
		back, _ := b.visit(t, s.authURL(spa, spaCallback, "prompt", "none", "max_age", "60"))
		if back == nil || back.Query().Get("error") != "login_required" {
			t.Errorf("callback %v, want login_required", back)
		}
	})
	t.Run("prompt=none within max_age", func(t *testing.T) {
		back, _ := b.visit(t, s.authURL(spa, spaCallback, "prompt", "none", "max_age", "600"))
		if back == nil || back.Query().Get("code") == "" {
			t.Errorf("callback %v, want a code", back)
		}
	})
}

// TestAuthorize_forgedCookieIsNoSession: a cookie that does not verify is ignored.
func TestAuthorize_forgedCookieIsNoSession(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	b := s.newBrowser()
	s.code(t, b)
	good := b.cookie(s.stack)
	u, _ := url.Parse(s.issuer(realmName) + "/")
	parts := strings.Split(good, ".")
	for name, v := range map[string]string{
		"garbage":         "x",
		"another payload": parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","sid":"x","typ":"SSO"}`)) + "." + parts[2],
	} {
		t.Run(name, func(t *testing.T) {
			forged := s.newBrowser()
			forged.Jar.SetCookies(u, []*http.Cookie{{Name: "SESSIOND_SSO", Value: v, Path: "/realms/" + realmName + "/"}})
			back, _ := forged.visit(t, s.authURL(confidential, rpCallback, "prompt", "none"))
			if back == nil || back.Query().Get("error") != "login_required" {
				t.Errorf("callback %v, want login_required", back)
			}
		})
	}
}

// TestLogin_acrossTwoNodesOnOnePostgreSQL: a login started on node A is accepted on node B
// (the browser returns to B, which sets the cookie and issues the code), and the code is
// redeemed on A: authentication sessions and codes live in the shared store.
func TestLogin_acrossTwoNodesOnOnePostgreSQL(t *testing.T) {
	t.Parallel()
	db := pgSchema(t)
	a := newLoginStack(t, withStore(pgProvider(t, db, "node-a")))
	bNode := newStack(t, withStore(pgProvider(t, db, "node-b")), withRealm(func(r *realm.Realm) { r.LoginFrontendURL = a.fe.srv.URL + "/login" }))
	browser := a.newBrowser()
	lr := a.pendingLogin(t, browser, confidential, rpCallback)

	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	bNode.do(t, acceptCall(lr.Challenge)).decode(t, http.StatusOK, &to)
	if !strings.HasPrefix(to.RedirectTo, bNode.issuer(realmName)) {
		t.Fatalf("node B sends the browser to %s", to.RedirectTo)
	}
	back, status := browser.visit(t, to.RedirectTo)
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("no code from node B: %v (status %d)", back, status)
	}
	var got struct {
		tokens
		IDToken string `json:"id_token"`
	}
	a.do(t, codeCall(confidentialAuth, back.Query().Get("code"))).decode(t, http.StatusOK, &got)
	if got.IDToken == "" || got.SessionState == "" {
		t.Fatalf("node A's answer %+v", got)
	}
	// The same code on node B is a second use.
	bNode.do(t, codeCall(confidentialAuth, back.Query().Get("code"))).refused(t, http.StatusBadRequest, "invalid_grant", "already used")
}

// TestLoginCleanup_removesExpiredAuthenticationSessionsAndCodes: records past their Login
// timeout or Client login timeout go; live ones stay.
func TestLoginCleanup_removesExpiredAuthenticationSessionsAndCodes(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t)
	s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
	s.fe.setDecide(acceptAlice)
	s.code(t, s.newBrowser())
	count := func() (pending, codes int) {
		p, _ := s.store.ListRecords(s.ctx, loginflow.RequestKind)
		c, _ := s.store.ListRecords(s.ctx, loginflow.CodeKind)
		return len(p), len(c)
	}
	if n, err := s.login.Cleanup(s.ctx); n != 0 || err != nil {
		t.Fatalf("cleanup of live records removed %d: %v", n, err)
	}
	if p, c := count(); p != 2 || c != 1 {
		t.Fatalf("records: %d authentication sessions, %d codes; want 2 and 1", p, c)
	}
	s.clock.Advance(time.Minute) // the Client login timeout
	if n, err := s.login.Cleanup(s.ctx); n != 1 || err != nil {
		t.Fatalf("cleanup at the Client login timeout removed %d (%v), want the code", n, err)
	}
	s.clock.Advance(30 * time.Minute) // the Login timeout
	if n, err := s.login.Cleanup(s.ctx); n != 2 || err != nil {
		t.Fatalf("cleanup at the Login timeout removed %d (%v), want both authentication sessions", n, err)
	}
	if p, c := count(); p != 0 || c != 0 {
		t.Errorf("left %d authentication sessions, %d codes", p, c)
	}
}

// TestClientCredentials_serviceAccountsOnly: a confidential client with a service account
// gets an access token of a transient session (no refresh token, nothing stored); any other
// client is unauthorized_client.
func TestClientCredentials_serviceAccountsOnly(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	before := s.snapshot(t)
	var got tokens
	s.do(t, form(tokenPath(realmName), basic(service, otherSecret), "grant_type", "client_credentials", "scope", "openid offline_access")).decode(t, http.StatusOK, &got)
	claims := payload(t, got.AccessToken)
	if got.RefreshToken != "" || got.SessionState != "" || claims["sub"] != "service-account-service" || claims["azp"] != service || got.Scope != "openid" {
		t.Errorf("answer %+v, claims %v", got, claims)
	}
	s.unchanged(t, before)
	for name, a := range map[string]auth{"without a service account": confidentialAuth, "public": public(spa)} {
		t.Run(name, func(t *testing.T) {
			s.do(t, form(tokenPath(realmName), a, "grant_type", "client_credentials")).refused(t, http.StatusBadRequest, "unauthorized_client", "service account")
		})
	}
	t.Run("wrong secret", func(t *testing.T) {
		s.do(t, form(tokenPath(realmName), basic(service, "nope"), "grant_type", "client_credentials")).refused(t, http.StatusUnauthorized, "invalid_client", "")
	})
}

// TestImplicitAndHybrid_tokensInTheFragment: a client with implicitFlowEnabled gets tokens
// from the authorization endpoint, in the fragment: the access token with the implicit-flow
// lifespan and never a refresh token, the ID token bound by nonce, at_hash and c_hash, and
// (hybrid) a code still redeemed with PKCE.
func TestImplicitAndHybrid_tokensInTheFragment(t *testing.T) {
	t.Parallel()
	const implicitLifespan = 10 * time.Minute
	s := newLoginStack(t, withRealm(func(r *realm.Realm) { r.AccessTokenLifespanImplicit = implicitLifespan }))
	ctx := oidc.ClientContext(s.ctx, s.client)
	provider, err := oidc.NewProvider(ctx, s.issuer(realmName))
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: implicitClient, Now: s.clock.Now})
	for _, tc := range []struct {
		responseType          string
		code, access, idToken bool
	}{
		{"token", false, true, false},
		{"id_token", false, false, true},
		{"id_token token", false, true, true},
		{"code id_token", true, false, true},
		{"code token", true, true, false},
		{"code id_token token", true, true, true},
	} {
		t.Run(tc.responseType, func(t *testing.T) {
			back, status := s.newBrowser().visit(t, s.authURL(implicitClient, implicitCallback, "response_type", tc.responseType, "nonce", "n-1"))
			if back == nil || back.RawQuery != "" {
				t.Fatalf("callback %v (status %d), want the answer in the fragment only", back, status)
			}
			f, _ := url.ParseQuery(back.EscapedFragment())
			if f.Get("error") != "" || (f.Get("code") != "") != tc.code || (f.Get("access_token") != "") != tc.access ||
				(f.Get("id_token") != "") != tc.idToken || f.Get("refresh_token") != "" || f.Get("state") != "st" || f.Get("iss") != s.issuer(realmName) {
				t.Fatalf("fragment %v", f)
			}
			if tc.access {
				c := payload(t, f.Get("access_token"))
				if f.Get("expires_in") != "600" || c["exp"].(float64)-c["iat"].(float64) != implicitLifespan.Seconds() {
					t.Errorf("access token lives %v s (expires_in %s), want the implicit lifespan %v", c["exp"].(float64)-c["iat"].(float64), f.Get("expires_in"), implicitLifespan)
				}
			}
			if tc.idToken {
				idt, err := verifier.Verify(ctx, f.Get("id_token"))
				if err != nil || idt.Nonce != "n-1" {
					t.Fatalf("ID token: %v, nonce %q", err, idt.Nonce)
				}
				if tc.access {
					if err := idt.VerifyAccessToken(f.Get("access_token")); err != nil {
						t.Errorf("at_hash: %v", err)
					}
				}
				var c struct {
					CHash string `json:"c_hash"`
				}
				_ = idt.Claims(&c)
				if tc.code {
					sum := sha256.Sum256([]byte(f.Get("code")))
					if want := base64.RawURLEncoding.EncodeToString(sum[:16]); c.CHash != want {
						t.Errorf("c_hash %q, want %q", c.CHash, want)
					}
				}
			}
			if tc.code {
				var got tokens
				s.do(t, form(tokenPath(realmName), public(implicitClient), "grant_type", "authorization_code", "code", f.Get("code"),
					"redirect_uri", implicitCallback, "code_verifier", testVerifier)).decode(t, http.StatusOK, &got)
				if got.RefreshToken == "" {
					t.Error("the hybrid flow's code got no refresh token")
				}
			}
		})
	}
}
