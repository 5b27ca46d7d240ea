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
	"github.com/sessiond/sessiond/core/consolesession"
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

// pendingLogin is a login under way, sealed in the login cookie (MACed under the console's
// cookie key, so that the callback may come to any node): what the callback checks and
// redeems with.
type pendingLogin struct {
	Realm, State, Verifier string
}

// loginLabel keeps a sealed login for this use only.
const loginLabel = "account console sign-in"

// credential is what a console session is bound to: the console itself. Its sign-in rests
// on the user session, checked on every request, not on a credential that could change.
const credential = "account-console"

// startLogin sends the browser to the realm's authorization endpoint as the account-console
// client, with a fresh state and PKCE verifier sealed in the login cookie.
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
	p := pendingLogin{Realm: realmName, State: randomToken(), Verifier: randomToken()}
	sealed, err := c.sessions.SealState(r.Context(), loginLabel, p, loginTimeout)
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	setCookie(w, r, loginCookieName, sealed, loginTimeout)
	sum := sha256.Sum256([]byte(p.Verifier))
	q := url.Values{
		"client_id": {ClientID}, "redirect_uri": {c.redirectURI(realmName)}, "response_type": {"code"},
		"scope": {"openid"}, "state": {p.State}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	http.Redirect(w, r, c.logins.Issuer(realmName)+"/protocol/openid-connect/auth?"+q.Encode(), http.StatusSeeOther)
}

// callback takes the browser back from the authorization endpoint: the state must be the
// login's, the code is redeemed with its verifier, and the user session the access token
// names becomes a console session. The tokens are not kept.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	realmName := r.PathValue("realm")
	var p pendingLogin
	ck, err := r.Cookie(loginCookieName)
	if err == nil {
		err = c.sessions.OpenState(r.Context(), loginLabel, ck.Value, &p)
	}
	setCookie(w, r, loginCookieName, "", 0)
	q := r.URL.Query()
	switch {
	case errors.Is(err, http.ErrNoCookie), errors.Is(err, consolesession.ErrInvalid), errors.Is(err, consolesession.ErrExpired),
		err == nil && p.Realm != realmName:
		c.fail(w, r, nil, fmt.Errorf("%w: this browser started no sign-in here, or it took too long; open the account console again", errLogin))
		return
	case err != nil:
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.State)) != 1:
		c.fail(w, r, nil, fmt.Errorf("%w: the answer is not to this browser's sign-in (state)", errLogin))
		return
	case q.Get("error") != "":
		c.fail(w, r, nil, fmt.Errorf("%w: %s %s", errLogin, q.Get("error"), q.Get("error_description")))
		return
	}
	x, err := c.logins.Redeem(r.Context(), login.CodeGrant{Realm: realmName, ClientID: ClientID, Code: q.Get("code"),
		RedirectURI: c.redirectURI(realmName), Verifier: p.Verifier})
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", errLogin, err))
		return
	}
	caller, err := c.account.Authenticate(r.Context(), realmName, x.AccessToken)
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", errLogin, err))
		return
	}
	name := caller.Username
	if name == "" {
		name = caller.UserID
	}
	value, _, err := c.sessions.StartSession(r.Context(), consolesession.Session{Actor: caller.UserID, Realm: realmName,
		UserSession: caller.SessionID, Username: name}, credential)
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	setCookie(w, r, CookieName, value, 0)
	http.Redirect(w, r, accountURL(realmName, "device-activity"), http.StatusSeeOther)
}

// current returns the request's console session and the person it authorizes. ok is false
// when there is none: no cookie, one no node of this store issued, one idle or old past its
// bounds, one signed out, or one whose user session has ended; a page then signs in again.
func (c *Console) current(w http.ResponseWriter, r *http.Request) (*view, bool, error) {
	realmName := r.PathValue("realm")
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, false, nil
	}
	s, refreshed, err := c.sessions.Open(r.Context(), ck.Value, func(string) string { return credential })
	switch {
	case errors.Is(err, consolesession.ErrInvalid), errors.Is(err, consolesession.ErrExpired),
		errors.Is(err, consolesession.ErrSignedOut), errors.Is(err, consolesession.ErrRebound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
	case s.Realm != realmName:
		return nil, false, nil
	}
	caller, err := c.account.Resume(r.Context(), realmName, s.Actor, s.UserSession, ClientID)
	var ended *account.TokenError
	if errors.As(err, &ended) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if refreshed != "" {
		setCookie(w, r, CookieName, refreshed, 0)
	}
	return &view{Realm: realmName, Username: s.Username, CSRF: s.CSRF, caller: caller, session: s}, true, nil
}

// page runs a GET page for a signed-in person; without a console session it signs in first.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok, err := c.current(w, r)
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
		v, ok, err := c.current(w, r)
		switch {
		case err != nil:
			c.fail(w, r, nil, err)
		case !ok:
			http.Redirect(w, r, accountURL(r.PathValue("realm"), ""), http.StatusSeeOther)
		case !pageguard.SameOrigin(r, c.hostname):
			c.fail(w, r, v, errCrossSite)
		case !consolesession.ValidCSRF(v.session, r.PostForm.Get(csrfField)):
			c.fail(w, r, v, errCSRF)
		default:
			if err := h(w, r, v); err != nil {
				c.fail(w, r, v, err)
			}
		}
	}
}

// signOut ends the person's current session (the one the console signed in with), through
// the account API's logout path, and the console session, on every node: its sign-out is
// recorded in the store.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, v *view) error {
	if err := c.account.Logout(r.Context(), v.caller, v.caller.SessionID); err != nil && !errors.Is(err, spi.ErrNotFound) {
		return err
	}
	if err := c.sessions.End(r.Context(), v.session); err != nil {
		return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
	}
	c.sweep(r)
	setCookie(w, r, CookieName, "", 0)
	c.render(w, http.StatusOK, "signedout", view{Title: "Signed out", Realm: v.Realm})
	return nil
}

// sweep deletes the records of sign-outs past their sessions' max lifetime, at most every
// sweepEvery on a node: a sign-out does not pay for listing them all each time.
func (c *Console) sweep(r *http.Request) {
	now, last := c.now().Unix(), c.lastSweep.Load()
	if now-last < int64(sweepEvery/time.Second) || !c.lastSweep.CompareAndSwap(last, now) {
		return
	}
	if err := c.sessions.Sweep(r.Context()); err != nil {
		c.log.Warn("cannot delete the records of past account console sign-outs; a later sign-out tries again", "error", err)
	}
}
