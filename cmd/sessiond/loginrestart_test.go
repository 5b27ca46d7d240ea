package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// An authentication session lives in the store, not in the node that opened it: a login
// started on a node that then stops is finished on the node that runs next on the same
// store (the same process started again, or another node).

const (
	restartFrontEnd = "login.test"     // the realm's loginFrontendUrl host: never reached
	restartRP       = "127.0.0.1:3000" // the client's redirect URI host: never reached
	restartIssuer   = persistHostname + "/realms/" + persistRealm
	restartCallback = "http://" + restartRP + "/cb"
)

// hostRouter stands for the load balancer at persistHostname: requests for its host go to
// whichever node runs now; the browser's cookies stay on the one public host.
type hostRouter struct {
	mu   sync.Mutex
	node *url.URL
}

func (r *hostRouter) to(base string) {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.node = u
}

func (r *hostRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if "http://"+req.URL.Host == persistHostname {
		r.mu.Lock()
		node := r.node
		r.mu.Unlock()
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host, req.Host = node.Scheme, node.Host, ""
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestLoginSurvivesANodeRestart starts a code-flow login (x/oauth2 with PKCE and a nonce),
// lets the browser reach the login front-end with its challenge, stops the node with
// SIGTERM, and on the node that runs next on the same store has the front-end read and
// accept the challenge, the browser follow the redirect to the code, the client redeem
// it with its verifier, and go-oidc verify the ID token (signature from the JWKS, nonce,
// at_hash). Embedded store: start-dev's default file, the same process started again in
// the same folder; PostgreSQL: another node (own folder and node id) on the same schema.
func TestLoginSurvivesANodeRestart(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name        string
		args        func(t *testing.T) []string
		anotherNode bool
	}{
		{"embedded (start-dev default)", func(*testing.T) []string { return nil }, false},
		{"postgres (another node)", func(t *testing.T) []string {
			return []string{"--spi-user-sessions-provider=postgres", "--spi-user-sessions-postgres-url=" + pgSchema(t)}
		}, true},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			sessiondBinary(t)
			raw := strings.Replace(persistRealmJSON, `"realm": "persist",`,
				`"realm": "persist", "loginFrontendUrl": "http://`+restartFrontEnd+`/login",`, 1)
			if raw == persistRealmJSON {
				t.Fatal("the realm JSON changed shape: loginFrontendUrl not inserted")
			}
			realmFile := filepath.Join(t.TempDir(), "realm.json")
			if err := os.WriteFile(realmFile, []byte(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append(persistArgs(realmFile), st.args(t)...)
			dir := t.TempDir()

			router := &hostRouter{}
			routed := &http.Client{Transport: router, Timeout: 10 * time.Second}
			ctx := oidc.ClientContext(context.WithValue(t.Context(), oauth2.HTTPClient, routed), routed)
			jar, _ := cookiejar.New(nil)
			var stoppedAt *url.URL // where the browser was sent last, off sessiond
			browser := &http.Client{Jar: jar, Transport: router, Timeout: 10 * time.Second,
				CheckRedirect: func(req *http.Request, _ []*http.Request) error {
					if req.URL.Host == restartFrontEnd || req.URL.Host == restartRP {
						stoppedAt = req.URL
						return http.ErrUseLastResponse
					}
					return nil
				}}
			get := func(u string) *url.URL {
				t.Helper()
				stoppedAt = nil
				resp, err := browser.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if stoppedAt == nil {
					t.Fatalf("GET %s ended at %s with %d, not at the front-end or the client", u, resp.Request.URL, resp.StatusCode)
				}
				return stoppedAt
			}

			first := startDaemonIn(t, dir, append(args, "--node-id=first")...)
			router.to(first.base)
			provider, err := oidc.NewProvider(ctx, restartIssuer)
			if err != nil {
				t.Fatalf("discovery: %v", err)
			}
			rp := oauth2.Config{ClientID: persistClient, ClientSecret: persistSecret, Endpoint: provider.Endpoint(),
				RedirectURL: restartCallback, Scopes: []string{oidc.ScopeOpenID}}
			verifier, state, nonce := oauth2.GenerateVerifier(), "state-"+oauth2.GenerateVerifier()[:8], "nonce-"+oauth2.GenerateVerifier()[:8]
			atFrontEnd := get(rp.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce),
				oauth2.SetAuthURLParam("login_hint", "alice")))
			challenge := atFrontEnd.Query().Get("login_challenge")
			if atFrontEnd.Host != restartFrontEnd || challenge == "" {
				t.Fatalf("the authorization request led to %s, want the login front-end with a login_challenge", atFrontEnd)
			}

			stopDaemon(t, first)
			nextDir, nodeID := dir, "first"
			if st.anotherNode {
				nextDir, nodeID = t.TempDir(), "second"
			}
			next := startDaemonIn(t, nextDir, append(args, "--node-id="+nodeID)...)
			router.to(next.base)

			// The login front-end, on the node that runs now.
			loginRequest := next.base + "/realms/" + persistRealm + "/login-requests/" + url.PathEscape(challenge)
			var read struct {
				ClientID    string `json:"client_id"`
				RedirectURI string `json:"redirect_uri"`
				LoginHint   string `json:"login_hint"`
			}
			if code, body := ssfCall(t, http.MethodGet, loginRequest, persistFrontend, ""); code != http.StatusOK {
				t.Fatalf("front-end read after the restart = %d %s, want 200", code, body)
			} else if err := json.Unmarshal([]byte(body), &read); err != nil || read.ClientID != persistClient ||
				read.RedirectURI != restartCallback || read.LoginHint != "alice" {
				t.Fatalf("front-end read after the restart = %s (%v), want client %s, redirect %s, hint alice", body, err, persistClient, restartCallback)
			}
			var accepted struct {
				RedirectTo string `json:"redirect_to"`
			}
			code, body := ssfCall(t, http.MethodPut, loginRequest+"/accept", persistFrontend, `{"user_id":"alice-id","username":"alice"}`)
			if err := json.Unmarshal([]byte(body), &accepted); code != http.StatusOK || err != nil || accepted.RedirectTo == "" {
				t.Fatalf("front-end accept after the restart = %d %s, want 200 with redirect_to", code, body)
			}

			back := get(accepted.RedirectTo)
			if back.Host != restartRP || back.Query().Get("state") != state || back.Query().Get("iss") != restartIssuer || back.Query().Get("code") == "" {
				t.Fatalf("the browser came back to %s, want the client's redirect URI with a code, state %q and iss %q", back, state, restartIssuer)
			}
			tok, err := rp.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("code exchange on the node that runs now: %v", err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: persistClient}).Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("go-oidc refuses the ID token: %v", err)
			}
			if idt.Subject != "alice-id" || idt.Nonce != nonce {
				t.Errorf("ID token sub %q nonce %q, want alice-id and %q", idt.Subject, idt.Nonce, nonce)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash does not match the access token: %v", err)
			}
		})
	}
}
