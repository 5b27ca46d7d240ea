package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// formPost is a form_post page as a browser reads it: where the form goes, its fields,
// and whether the page's own policy lets its one script run.
type formPost struct {
	action    string
	fields    url.Values
	csp       string
	scriptRan bool // the inline script's hash is in the page's script-src
}

// postPage loads u in b and reads the form_post page it ends on.
func postPage(t *testing.T, b *browser, u string) formPost {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || b.stopped.Load() != nil {
		t.Fatalf("status %d, left for %v, want sessiond's form_post page:\n%s", resp.StatusCode, b.stopped.Load(), body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q: the page holds a code", cc)
	}
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	p := formPost{fields: url.Values{}, csp: resp.Header.Get("Content-Security-Policy")}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		attr := map[string]string{}
		for _, a := range n.Attr {
			attr[a.Key] = a.Val
		}
		switch n.Data {
		case "form":
			p.action = attr["action"]
		case "input":
			p.fields.Add(attr["name"], attr["value"])
		case "script":
			if n.FirstChild != nil {
				sum := sha256.Sum256([]byte(n.FirstChild.Data))
				p.scriptRan = strings.Contains(p.csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
			}
		}
	}
	return p
}

// TestFormPostResponseMode: with response_mode=form_post the code, the state and iss reach
// the client in a form the page posts to the redirect URI (never in a URL), the page's
// Content-Security-Policy lets exactly its own script run and the form go to the client's
// origin, and x/oauth2 exchanges the code. A front-end's refusal reaches the client the same
// way, through sessiond.
func TestFormPostResponseMode(t *testing.T) {
	s := newLoginStack(t)
	web := s.rp(t, confidential, confidentialSecret, rpCallback, oidc.ScopeOpenID)
	verifier, state := oauth2.GenerateVerifier(), "st-form"
	authURL := web.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "form_post"))

	t.Run("accepted", func(t *testing.T) {
		p := postPage(t, s.newBrowser(), authURL)
		if p.action != rpCallback || p.fields.Get("state") != state || p.fields.Get("iss") != s.issuer(realmName) || p.fields.Get("code") == "" {
			t.Fatalf("form to %q with %v", p.action, p.fields)
		}
		cb, _ := url.Parse(rpCallback)
		if !p.scriptRan || !strings.Contains(p.csp, "form-action 'self' "+cb.Scheme+"://"+cb.Host+";") {
			t.Errorf("CSP %q does not let the page post itself to the client", p.csp)
		}
		tok, err := web.conf.Exchange(web.ctx, p.fields.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if _, err := web.verifier.Verify(web.ctx, tok.Extra("id_token").(string)); err != nil {
			t.Errorf("ID token: %v", err)
		}
	})

	t.Run("rejected by the front-end", func(t *testing.T) {
		var challenge string
		s.fe.setDecide(func(lr loginRequest) map[string]any { challenge = lr.Challenge; return nil })
		b := s.newBrowser()
		if back, status := b.visit(t, authURL); back != nil || status != http.StatusOK {
			t.Fatalf("the browser went to %v (%d), want the front-end's page", back, status)
		}
		var to struct {
			RedirectTo string `json:"redirect_to"`
		}
		if status, err := s.fe.call(http.MethodPut, loginRequestPath(realmName, challenge)+"/reject", map[string]any{"error": "access_denied", "error_description": "no"}, &to); err != nil {
			t.Fatalf("reject: %d %v", status, err)
		}
		if !strings.HasPrefix(to.RedirectTo, s.issuer(realmName)+"/") {
			t.Fatalf("reject sends the browser to %q, want back through sessiond", to.RedirectTo)
		}
		p := postPage(t, b, to.RedirectTo)
		if p.action != rpCallback || p.fields.Get("error") != "access_denied" || p.fields.Get("state") != state || p.fields.Get("code") != "" {
			t.Errorf("form to %q with %v", p.action, p.fields)
		}
		if _, status := b.visit(t, to.RedirectTo); status != http.StatusBadRequest && status != http.StatusNotFound {
			t.Errorf("the refusal was answered again (%d)", status)
		}
	})

	t.Run("query cannot carry tokens", func(t *testing.T) {
		spaApp := s.rp(t, spa, "", spaCallback, oidc.ScopeOpenID)
		u := spaApp.conf.AuthCodeURL("s", oauth2.SetAuthURLParam("response_type", "id_token"), oauth2.SetAuthURLParam("nonce", "n"),
			oauth2.SetAuthURLParam("response_mode", "query"))
		if back, _ := s.newBrowser().visit(t, u); back == nil || back.Query().Get("error") == "" && !strings.Contains(back.Fragment, "error=") {
			t.Errorf("response_mode=query for an id_token answered %v", back)
		}
	})
}

// TestAcceptTwice_leavesOneSession: a front-end that accepts the same login twice at once (a
// double submit, two nodes) gets one redirect_to and one session: the session's id derives
// from the login request, so the losing accept finds the winner's session (it must not end
// it) rather than leaving a second one behind with no browser to hold it. The race is tried
// many times; in a try where the accepts do not overlap the second is simply refused.
func TestAcceptTwice_leavesOneSession(t *testing.T) {
	s := newLoginStack(t)
	web := s.rp(t, confidential, confidentialSecret, rpCallback, oidc.ScopeOpenID)
	var challenge string
	s.fe.setDecide(func(lr loginRequest) map[string]any { challenge = lr.Challenge; return nil })
	const tries = 25
	for range tries {
		if back, status := s.newBrowser().visit(t, web.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); back != nil || status != http.StatusOK {
			t.Fatalf("the browser went to %v (%d), want the front-end's page", back, status)
		}
		start := make(chan struct{})
		results := make(chan int, 2)
		for range 2 {
			go func() {
				<-start
				var to struct {
					RedirectTo string `json:"redirect_to"`
				}
				status, _ := s.fe.call(http.MethodPut, loginRequestPath(realmName, challenge)+"/accept", acceptAlice(loginRequest{}), &to)
				results <- status
			}()
		}
		close(start)
		ok := 0
		for range 2 {
			switch st := <-results; st {
			case http.StatusOK:
				ok++
			case http.StatusNotFound, http.StatusBadRequest: // already accepted; changed at the same time
			default:
				t.Fatalf("an accept answered %d", st)
			}
		}
		if ok != 1 {
			t.Fatalf("%d accepts of one login succeeded, want 1", ok)
		}
	}
	n, err := s.store.Count(s.ctx, usersessions.Filter{RealmID: realmName, UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	if n != tries {
		t.Errorf("%d sessions after %d logins each accepted twice, want %d", n, tries, tries)
	}
}
