package console

// Sign-in through OpenID Connect against a realm of sessiond itself: the console is a client
// of that realm (the authorization code flow with PKCE, x/oauth2), verifies the ID token
// (go-oidc, the realm's published keys) and takes the operator's role from one of its claims.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/consolesession"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi"
)

// OIDC configures the console's sign-in through OpenID Connect.
type OIDC struct {
	// Realm is the realm operators sign in against; Issuer is its issuer URL.
	Realm, Issuer string
	// ClientID and ClientSecret are the console's client in Realm ("" secret: a public
	// client; PKCE is always used).
	ClientID     string
	ClientSecret realm.Secret
	// RoleClaim is the ID token claim holding the role; AdminRole the value that makes an
	// administrator, ViewerRole ("" for none) the one that makes a viewer.
	RoleClaim, AdminRole, ViewerRole string
	// HTTPClient makes the discovery and token requests; nil is a client with a 10 s
	// timeout.
	HTTPClient *http.Client
}

// oidcActorPrefix marks the actors signed in through OpenID Connect: "oidc:<username>".
const oidcActorPrefix = "oidc:"

// oidcStateCookie keeps the sign-in's state, nonce and PKCE verifier between its start and
// the callback. SameSite=Lax: the callback is a top-level navigation that may come from the
// login front-end's site.
const (
	oidcStateCookie = "sessiond_console_oidc"
	oidcStateLabel  = "console oidc sign-in"
	oidcStateTTL    = 10 * time.Minute
	actionOIDC      = "console-sign-in-oidc"
)

type oidcState struct {
	State, Nonce, Verifier string
}

// oidcSignIn is the console's OpenID Connect client; its provider is discovered on first use,
// so that sessiond's start does not call itself before it serves.
type oidcSignIn struct {
	cfg OIDC

	mu       sync.Mutex
	provider *oidc.Provider
}

func (o *oidcSignIn) client() *http.Client {
	if o.cfg.HTTPClient != nil {
		return o.cfg.HTTPClient
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (o *oidcSignIn) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client()), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover realm %q at %s: %w", o.cfg.Realm, o.cfg.Issuer, err)
	}
	o.provider = p
	return p, nil
}

// redirectURL is the callback, on the issuer's base URL (never the request's Host header).
func (o *oidcSignIn) redirectURL() string {
	base := strings.TrimSuffix(o.cfg.Issuer, "/realms/"+url.PathEscape(o.cfg.Realm))
	return base + Path + "oidc/callback"
}

func (o *oidcSignIn) config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret.Reveal(), Endpoint: p.Endpoint(),
		RedirectURL: o.redirectURL(), Scopes: []string{oidc.ScopeOpenID}}
}

// binding is what an OpenID Connect console session is bound to in place of a credential:
// the configuration that let it in; changed, its sessions are over.
func (o *oidcSignIn) binding() string {
	c := o.cfg
	return strings.Join([]string{"oidc", c.Realm, c.ClientID, c.RoleClaim, c.AdminRole, c.ViewerRole}, "\x00")
}

func randomText() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// oidcStart sends the browser to the realm's authorization endpoint.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.fail(w, r, nil, fmt.Errorf("sign-in through OpenID Connect is not configured (admin-console-oidc-realm): %w", spi.ErrNotFound))
		return
	}
	p, err := c.oidc.discover(r.Context())
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	st := oidcState{State: randomText(), Nonce: randomText(), Verifier: oauth2.GenerateVerifier()}
	sealed, err := c.sessions.SealState(r.Context(), oidcStateLabel, st, oidcStateTTL)
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: sealed, Path: Path + "oidc/", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcStateTTL / time.Second)})
	http.Redirect(w, r, c.oidc.config(p).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// oidcCallback takes the code, verifies the ID token and its nonce, reads the role, and
// opens a console session. Every refusal is audited through the failed-authentication guard
// and answered with the sign-in page saying why.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.fail(w, r, nil, fmt.Errorf("sign-in through OpenID Connect is not configured (admin-console-oidc-realm): %w", spi.ErrNotFound))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: "", Path: Path + "oidc/", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: -1, Expires: time.Unix(0, 0)})
	attempt := authfail.Attempt{Kind: authfail.KindAdmin, Realm: c.oidc.cfg.Realm, Addr: remoteIP(r)}
	ref := authfail.Refusal{Attempt: attempt, Actor: admin.ActorAnonymous, Action: actionOIDC, Target: "console"}
	refuse := func(code int, reason string, err error) {
		ref.Reason, ref.Status, ref.Detail = reason, code, err.Error()
		c.guard.Refused(ref)
		c.render(w, code, "signin", c.signInView(err.Error()))
	}
	if err := c.guard.Check(attempt); err != nil {
		refuse(http.StatusTooManyRequests, authfail.ReasonThrottled, err)
		return
	}
	q := r.URL.Query()
	var st oidcState
	ck, err := r.Cookie(oidcStateCookie)
	if err == nil {
		err = c.sessions.OpenState(r.Context(), oidcStateLabel, ck.Value, &st)
	}
	switch {
	case errors.Is(err, http.ErrNoCookie), errors.Is(err, consolesession.ErrInvalid), errors.Is(err, consolesession.ErrExpired):
		refuse(http.StatusBadRequest, authfail.ReasonInvalid, errors.New("this sign-in was not started here or took too long; sign in again"))
		return
	case err != nil:
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1:
		refuse(http.StatusBadRequest, authfail.ReasonInvalid, errors.New("the sign-in's state does not match; sign in again"))
		return
	case q.Get("error") != "":
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, fmt.Errorf("realm %s did not sign you in: %s %s", c.oidc.cfg.Realm, q.Get("error"), q.Get("error_description")))
		return
	}
	p, err := c.oidc.discover(r.Context())
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	ctx := oidc.ClientContext(r.Context(), c.oidc.client())
	tok, err := c.oidc.config(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, fmt.Errorf("the code was not taken: %v", err))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.VerifierContext(ctx, &oidc.Config{ClientID: c.oidc.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, fmt.Errorf("the ID token does not verify: %v", err))
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, errors.New("the ID token's nonce is not this sign-in's"))
		return
	}
	// The front-end's claims (the role among them) are sessiond's UserInfo answer; the ID
	// token carries the standard ones.
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, fmt.Errorf("the ID token's claims: %v", err))
		return
	}
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	var more map[string]any
	if err == nil {
		err = ui.Claims(&more)
	}
	if err != nil || ui.Subject != idt.Subject {
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, fmt.Errorf("the realm's UserInfo for %s: %v", idt.Subject, cmpErr(err, "another subject")))
		return
	}
	for k, v := range more {
		if _, set := claims[k]; !set {
			claims[k] = v
		}
	}
	name, _ := claims["preferred_username"].(string)
	if name == "" {
		name = idt.Subject
	}
	actor := oidcActorPrefix + name
	ref.Actor = actor
	roles := claimValues(claims[c.oidc.cfg.RoleClaim])
	role := admin.RoleNone
	switch {
	case slices.Contains(roles, c.oidc.cfg.AdminRole):
		role = admin.RoleManage
	case c.oidc.cfg.ViewerRole != "" && slices.Contains(roles, c.oidc.cfg.ViewerRole):
		role = admin.RoleView
	}
	if role == admin.RoleNone {
		refuse(http.StatusForbidden, authfail.ReasonForbidden, fmt.Errorf("%s is signed in to realm %s but its %q claim holds no console role (%s)",
			name, c.oidc.cfg.Realm, c.oidc.cfg.RoleClaim, strings.Join(c.roleNames(), " or ")))
		return
	}
	value, _, err := c.sessions.Start(r.Context(), actor, roleName(role), c.credentialOf(actor))
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	setCookie(w, r, value, c.sessions.Max())
	c.admin.Audit(admin.AuditEvent{Actor: actor, Action: actionOIDC, Realm: c.oidc.cfg.Realm, Target: "console", IP: remoteIP(r),
		Outcome: admin.OutcomeSuccess, Status: http.StatusOK})
	// A page that moves on by itself, not a redirect: the browser came here from another
	// site (the login front-end), and would not send the SameSite=Strict cookie on a
	// redirect of that navigation.
	c.render(w, http.StatusOK, "continue", layout{Title: "Signed in"})
}

func (c *Console) roleNames() []string {
	out := []string{c.oidc.cfg.AdminRole}
	if c.oidc.cfg.ViewerRole != "" {
		out = append(out, c.oidc.cfg.ViewerRole)
	}
	return out
}

// claimValues reads a claim that is a string or a list of strings.
func claimValues(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}
