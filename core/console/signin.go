package console

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/pageguard"
	"github.com/sessiond/sessiond/spi"
)

// The audit actions of signing in and out of the console.
const (
	actionSignIn  = "console-sign-in"
	actionSignOut = "console-sign-out"
)

// layout is what every page's frame shows.
type layout struct {
	Title  string
	Actor  string // "" when nobody is signed in
	CanAct bool
	CSRF   string
	Realm  string // the realm the page is about, "" for none
	Realms []string
}

func (c *Console) layoutFor(r *http.Request, s *signedIn, title string) layout {
	l := layout{Title: title}
	if s == nil {
		return l
	}
	l.Actor, l.CanAct, l.CSRF = s.actor, s.canAct(), s.csrf
	if name := r.PathValue("realm"); name != "" {
		if _, ok := c.realms.Realm(name); ok {
			l.Realm = name
		}
	}
	for _, rl := range c.realms.List() {
		l.Realms = append(l.Realms, rl.Name)
	}
	return l
}

type signInView struct {
	layout
	Error string
	// OIDCRealm is the realm operators may also sign in against, "" for none.
	OIDCRealm string
}

func (c *Console) signInView(err string) signInView {
	v := signInView{layout: layout{Title: "Sign in"}, Error: err}
	if c.oidc != nil {
		v.OIDCRealm = c.oidc.cfg.Realm
	}
	return v
}

// home is the sign-in page, or the realm picker for a signed-in operator.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if s, err := c.current(w, r); err != nil {
		c.fail(w, r, nil, err)
		return
	} else if s != nil {
		http.Redirect(w, r, Path+"realms/", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "signin", c.signInView(""))
}

// signIn checks the credential as the admin API does (admin.Credentials.Match) and opens a
// console session. A caller that failed too often is refused before the comparison; each
// refusal goes to the failed-authentication guard (audited, and slowed when it repeats);
// a sign-in is audited.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	attempt := authfail.Attempt{Kind: authfail.KindAdmin, Addr: ip}
	ref := authfail.Refusal{Attempt: attempt, Actor: admin.ActorAnonymous, Action: actionSignIn, Target: "console"}
	refuse := func(code int, reason string, err error) {
		ref.Reason, ref.Status, ref.Detail = reason, code, err.Error()
		c.guard.Refused(ref)
		var throttled *authfail.ThrottledError
		if errors.As(err, &throttled) {
			c.fail(w, r, nil, err)
			return
		}
		c.render(w, code, "signin", c.signInView(err.Error()))
	}
	if !pageguard.SameOrigin(r, c.hostname) {
		c.fail(w, r, nil, errCrossSite)
		return
	}
	if err := c.guard.Check(attempt); err != nil {
		refuse(http.StatusTooManyRequests, authfail.ReasonThrottled, err)
		return
	}
	presented := r.PostForm.Get("credential")
	if presented == "" {
		refuse(http.StatusUnauthorized, authfail.ReasonMissing, errors.New("enter the administrator or view-only credential"))
		return
	}
	actor, role := c.creds.Match(presented)
	ref.Actor = actor
	switch {
	case actor == admin.ActorFrontend:
		refuse(http.StatusForbidden, authfail.ReasonForbidden, errors.New("the front-end credential has no admin role"))
		return
	case role == admin.RoleNone:
		refuse(http.StatusUnauthorized, authfail.ReasonInvalid, errors.New("that credential is not the administrator's or the view-only one"))
		return
	}
	value, _, err := c.sessions.Start(r.Context(), actor, roleName(role), presented)
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	setCookie(w, r, value, c.sessions.Max())
	c.signedInOrOut(w, r, actor, actionSignIn, Path+"realms/")
}

// signOut ends the console session. It needs the session's CSRF token, so that another
// site cannot sign an operator out either.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	s, err := c.current(w, r)
	switch {
	case err != nil:
		c.fail(w, r, nil, err)
		return
	case s == nil:
		clearCookie(w, r)
		http.Redirect(w, r, Path, http.StatusSeeOther)
		return
	case !pageguard.SameOrigin(r, c.hostname):
		c.fail(w, r, s, errCrossSite)
		return
	case !validCSRF(s, r.PostForm.Get(csrfField)):
		c.fail(w, r, s, errCSRF)
		return
	}
	if err := c.sessions.End(r.Context(), s.Session); err != nil {
		c.fail(w, r, s, fmt.Errorf("%w: %w", spi.ErrUnavailable, err))
		return
	}
	if err := c.sessions.Sweep(r.Context()); err != nil {
		c.log.Warn("cannot delete the records of past console sign-outs; the next sign-out tries again", "error", err)
	}
	clearCookie(w, r)
	c.signedInOrOut(w, r, s.actor, actionSignOut, Path)
}

// signedInOrOut audits a sign-in or sign-out and sends the browser on to next.
func (c *Console) signedInOrOut(w http.ResponseWriter, r *http.Request, actor, action, next string) {
	c.admin.Audit(admin.AuditEvent{Actor: actor, Action: action, Target: "console", IP: remoteIP(r),
		Outcome: admin.OutcomeSuccess, Status: http.StatusSeeOther})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// realmList is the realm picker.
func (c *Console) realmList(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	c.render(w, http.StatusOK, "realms", c.layoutFor(r, s, "Realms"))
	return nil
}

// realmHome sends a realm's page to its sessions.
func (c *Console) realmHome(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	if _, err := c.realm(r); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("%srealms/%s/sessions", Path, pathEscape(r.PathValue("realm"))), http.StatusSeeOther)
	return nil
}
