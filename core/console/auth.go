package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/consolesession"
)

// The console's own sessions are kept by core/consolesession: a cookie MACed with a key
// every node sharing the store reads, so that any node serves any signed-in operator and a
// restart signs nobody out; a sign-out is recorded in the store and holds on every node.
const (
	// CookieName is the console session's cookie; it holds the session (its id, actor,
	// role, times and a MAC of the credential signed in with), never the credential.
	CookieName = "sessiond_console"
	// DefaultIdleTimeout ends a console session nobody used for that long.
	DefaultIdleTimeout = 15 * time.Minute
	// DefaultMaxLifetime ends a console session that long after sign-in, used or not.
	DefaultMaxLifetime = 8 * time.Hour
	// csrfField is the hidden form field holding the session's CSRF token.
	csrfField = "csrf"
)

// signedIn is one console session.
type signedIn struct {
	*consolesession.Session
	actor string // admin.ActorAdmin or admin.ActorViewer
	role  admin.Role
	csrf  string
}

// canAct reports whether the session may change anything.
func (s *signedIn) canAct() bool { return s.role == admin.RoleManage }

// Roles as the cookie names them.
const (
	roleManage = "manage"
	roleView   = "view"
)

func roleName(r admin.Role) string {
	if r == admin.RoleManage {
		return roleManage
	}
	return roleView
}

func roleOf(name string) admin.Role {
	switch name {
	case roleManage:
		return admin.RoleManage
	case roleView:
		return admin.RoleView
	}
	return admin.RoleNone
}

// credentialOf is the credential an actor signs in with now: a console session opened
// with another one (the credential was changed since) is over.
func (c *Console) credentialOf(actor string) string {
	if strings.HasPrefix(actor, oidcActorPrefix) {
		if c.oidc == nil {
			return "" // OpenID Connect sign-in was turned off
		}
		return c.oidc.binding()
	}
	switch actor {
	case admin.ActorAdmin:
		return c.creds.Admin
	case admin.ActorViewer:
		return c.creds.Viewer
	}
	return ""
}

// secure reports whether the browser reached sessiond over TLS (directly, or through a
// proxy whose headers are trusted: core/forwarded sets the scheme).
func secure(r *http.Request) bool { return r.TLS != nil || r.URL.Scheme == "https" }

// setCookie gives the browser the session's id.
func setCookie(w http.ResponseWriter, r *http.Request, id string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: Path, HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second),
	})
}

// clearCookie takes the session's cookie back.
func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: Path, HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: -1, Expires: time.Unix(0, 0),
	})
}

// validCSRF compares a form's token with the session's, in constant time.
func validCSRF(s *signedIn, got string) bool { return consolesession.ValidCSRF(s.Session, got) }
