package accountconsole

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/pageguard"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
)

// client is the realm's account-console client, or errNoClient: without it the realm
// serves no account console.
func (c *Console) client(realmName string) (*realm.Client, error) {
	r, cl, ok := c.realms.Client(realmName, ClientID)
	switch {
	case !ok && r == nil:
		return nil, fmt.Errorf("realm %q: %w", realmName, session.ErrUnknownRealm)
	case !ok || !cl.Enabled || !r.Enabled:
		return nil, errNoClient
	}
	return cl, nil
}

func (c *Console) redirectURI(realmName string) string {
	return c.logins.Issuer(realmName) + CallbackPath
}

// startLogin sends the browser to the realm's authorization endpoint as the account-console
// client, with a fresh state and PKCE verifier it remembers under the login cookie.
func (c *Console) startLogin(w http.ResponseWriter, r *http.Request) {
	realmName := r.PathValue("realm")
	if _, err := c.client(realmName); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	// The cookies below belong to the host the browser asked; the callback comes to the
	// issuer's. Without a configured hostname (start-dev, a bare address) the browser may
	// have come by another name of this node (localhost for 127.0.0.1): it is sent to the
	// issuer's name first, so that the login's cookie comes back with the callback. With a
	// hostname, a proxy may present another Host, and the redirect would never end.
	if iss, err := url.Parse(c.logins.Issuer(realmName)); c.hostname == "" && err == nil && iss.Host != "" && !strings.EqualFold(iss.Host, r.Host) {
		http.Redirect(w, r, iss.String()+"/account/", http.StatusSeeOther)
		return
	}
	id, p := randomToken(), &pendingLogin{realm: realmName, state: randomToken(), verifier: randomToken(), started: c.now()}
	c.mu.Lock()
	c.sweepLocked(c.now())
	if len(c.pending) >= maxHeld {
		clear(c.pending) // a flood of logins never finished: start over rather than grow
	}
	c.pending[key(id)] = p
	c.mu.Unlock()
	setCookie(w, r, loginCookieName, id, loginTimeout)
	sum := sha256.Sum256([]byte(p.verifier))
	q := url.Values{
		"client_id": {ClientID}, "redirect_uri": {c.redirectURI(realmName)}, "response_type": {"code"},
		"scope": {"openid"}, "state": {p.state}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	http.Redirect(w, r, c.logins.Issuer(realmName)+"/protocol/openid-connect/auth?"+q.Encode(), http.StatusSeeOther)
}

// callback takes the browser back from the authorization endpoint: the state must be the
// login's, the code is redeemed with its verifier, and the tokens become a console session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	realmName := r.PathValue("realm")
	ck, err := r.Cookie(loginCookieName)
	var p *pendingLogin
	if err == nil {
		c.mu.Lock()
		p = c.pending[key(ck.Value)]
		delete(c.pending, key(ck.Value))
		c.mu.Unlock()
	}
	setCookie(w, r, loginCookieName, "", 0)
	q := r.URL.Query()
	switch {
	case p == nil || p.realm != realmName || c.now().Sub(p.started) > loginTimeout:
		c.fail(w, r, nil, fmt.Errorf("%w: this browser started no sign-in here, or it took too long; open the account console again", errLogin))
		return
	case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.state)) != 1:
		c.fail(w, r, nil, fmt.Errorf("%w: the answer is not to this browser's sign-in (state)", errLogin))
		return
	case q.Get("error") != "":
		c.fail(w, r, nil, fmt.Errorf("%w: %s %s", errLogin, q.Get("error"), q.Get("error_description")))
		return
	}
	x, err := c.logins.Redeem(r.Context(), login.CodeGrant{Realm: realmName, ClientID: ClientID, Code: q.Get("code"),
		RedirectURI: c.redirectURI(realmName), Verifier: p.verifier})
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", errLogin, err))
		return
	}
	caller, err := c.account.Authenticate(r.Context(), realmName, x.AccessToken)
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", errLogin, err))
		return
	}
	now := c.now()
	s := &signedIn{realm: realmName, username: caller.Username, access: x.AccessToken, refresh: x.RefreshToken,
		accessExpires: now.Add(time.Duration(x.ExpiresIn()) * time.Second), csrf: randomToken(), started: now, lastSeen: now}
	if s.username == "" {
		s.username = caller.UserID
	}
	id := randomToken()
	c.mu.Lock()
	c.sweepLocked(now)
	if len(c.held) >= maxHeld {
		c.dropOldestLocked()
	}
	c.held[key(id)] = s
	c.mu.Unlock()
	setCookie(w, r, CookieName, id, 0)
	http.Redirect(w, r, accountURL(realmName, "device-activity"), http.StatusSeeOther)
}

func (c *Console) sweepLocked(now time.Time) {
	for k, s := range c.held {
		if now.Sub(s.lastSeen) >= c.idle {
			delete(c.held, k)
		}
	}
	for k, p := range c.pending {
		if now.Sub(p.started) > loginTimeout {
			delete(c.pending, k)
		}
	}
}

func (c *Console) dropOldestLocked() {
	var oldest [32]byte
	var at time.Time
	for k, s := range c.held {
		if at.IsZero() || s.started.Before(at) {
			oldest, at = k, s.started
		}
	}
	delete(c.held, oldest)
}

// current returns the request's console session, its access token refreshed when it is
// about to expire, and the person it authorizes. ok is false when there is none, or when
// its session has ended (signed out elsewhere): it is forgotten, and a page signs in again.
func (c *Console) current(r *http.Request) (*view, string, bool, error) {
	realmName := r.PathValue("realm")
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, "", false, nil
	}
	now := c.now()
	c.mu.Lock()
	s, ok := c.held[key(ck.Value)]
	if ok && (s.realm != realmName || now.Sub(s.lastSeen) >= c.idle) {
		if s.realm == realmName {
			delete(c.held, key(ck.Value))
		}
		ok = false
	}
	var copy signedIn
	if ok {
		s.lastSeen = now
		copy = *s
	}
	c.mu.Unlock()
	if !ok {
		return nil, ck.Value, false, nil
	}
	if now.Add(refreshAhead).After(copy.accessExpires) {
		g, err := c.tokens.Refresh(r.Context(), session.RefreshRequest{Realm: realmName, Client: ClientID, RefreshToken: copy.refresh,
			IPAddress: remoteIP(r), UserAgent: r.UserAgent()})
		var refused *session.Error
		if errors.As(err, &refused) && refused.Code != session.TemporarilyUnavailable {
			c.forget(ck.Value)
			return nil, ck.Value, false, nil
		}
		if err != nil {
			return nil, ck.Value, false, err
		}
		copy.access, copy.refresh = g.AccessToken, g.RefreshToken
		copy.accessExpires = now.Add(time.Duration(g.ExpiresIn()) * time.Second)
		c.mu.Lock()
		if held, ok := c.held[key(ck.Value)]; ok {
			held.access, held.refresh, held.accessExpires = copy.access, copy.refresh, copy.accessExpires
		}
		c.mu.Unlock()
	}
	caller, err := c.account.Authenticate(r.Context(), realmName, copy.access)
	var badToken *account.TokenError
	if errors.As(err, &badToken) {
		c.forget(ck.Value)
		return nil, ck.Value, false, nil
	}
	if err != nil {
		return nil, ck.Value, false, err
	}
	return &view{Realm: realmName, Username: copy.username, CSRF: copy.csrf, caller: caller}, ck.Value, true, nil
}

func (c *Console) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, key(id))
}

// page runs a GET page for a signed-in person; without a console session it signs in first.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, _, ok, err := c.current(r)
		switch {
		case err != nil:
			c.fail(w, r, nil, err)
			return
		case !ok:
			c.startLogin(w, r)
			return
		}
		v.Done = r.URL.Query().Get("done")
		if err := h(w, r, v); err != nil {
			c.fail(w, r, v, err)
		}
	}
}

// act runs a form's POST: a signed-in person, a same-origin request, the session's CSRF
// token; each refusal changes nothing.
func (c *Console) act(h func(http.ResponseWriter, *http.Request, *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, _, ok, err := c.current(r)
		switch {
		case err != nil:
			c.fail(w, r, nil, err)
		case !ok:
			http.Redirect(w, r, accountURL(r.PathValue("realm"), ""), http.StatusSeeOther)
		case !pageguard.SameOrigin(r, c.hostname):
			c.fail(w, r, v, errCrossSite)
		case r.PostForm.Get(csrfField) == "" || subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(v.CSRF)) != 1:
			c.fail(w, r, v, errCSRF)
		default:
			if err := h(w, r, v); err != nil {
				c.fail(w, r, v, err)
			}
		}
	}
}

// signOut ends the person's current session (the one the console signed in with), through
// the account API's logout path, and the console session.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, v *view) error {
	if err := c.account.Logout(r.Context(), v.caller, v.caller.SessionID); err != nil && !errors.Is(err, spi.ErrNotFound) {
		return err
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		c.forget(ck.Value)
	}
	setCookie(w, r, CookieName, "", 0)
	c.render(w, http.StatusOK, "signedout", view{Title: "Signed out", Realm: v.Realm})
	return nil
}
