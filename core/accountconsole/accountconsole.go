// Package accountconsole is the account console at /realms/{realm}/account/: server-rendered
// pages where a person sees their sessions as devices and their applications' offline
// tokens, and ends or revokes them, over the account API's service (core/account).
//
// It signs in as Keycloak's account console does, as an OpenID Connect client of the realm
// (the public client "account-console"): the browser goes through the realm's authorization
// endpoint with PKCE and comes back with a code, which the console redeems in process
// (core/login's Redeem, the token endpoint's code grant). It keeps no token: the sign-in is
// a console session of core/consolesession (the admin console's), an HttpOnly cookie MACed
// under a key every node sharing the store reads, holding the user session the access token
// named. Every page is authorized by that session being live, still the person's and still
// holding the console's client session (the account API's own rule for a token's sid), so
// any node serves the console, a restart signs nobody out, and the user session's end
// (a logout elsewhere, an administrator, "sign out all") ends the console's sign-in. Its
// own sign-out ends the user session and is recorded in the store, so it holds on every
// node at once. Every form carries the console session's CSRF token. No script.
package accountconsole

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/consolesession"
	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/pageguard"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
)

// ClientID is the realm client the console signs in as, Keycloak's name for it.
const ClientID = realm.AccountConsoleClientID

// CallbackPath is the console's redirect URI under the realm's issuer: the realm's
// account-console client must list issuer + CallbackPath among its redirectUris.
const CallbackPath = "/account/callback"

// Cookie names: the console session and a login under way.
const (
	CookieName      = "sessiond_account"
	loginCookieName = "sessiond_account_login"
	csrfField       = "csrf"
)

// SessionsName is the console's name among core/consolesession's: its cookie key is the
// store record console-key/account, its sign-outs the records of kind
// account-console-signout.
const SessionsName = "account"

// Lifetimes.
const (
	// DefaultIdleTimeout ends a console session nobody used for that long (the user
	// session goes on).
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxLifetime ends a console session that long after sign-in; the user
	// session's own max lifetime (the realm's ssoSessionMaxLifespan) mostly ends it first.
	DefaultMaxLifetime = 10 * time.Hour
	// loginTimeout bounds a login under way: from the redirect to the callback.
	loginTimeout = 10 * time.Minute
	// sweepEvery is how often at most a node deletes the records of past sign-outs.
	sweepEvery = 10 * time.Minute
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Account is the account API's service; *account.Service implements it.
type Account interface {
	Authenticate(ctx context.Context, realm, raw string) (*account.Caller, error)
	Resume(ctx context.Context, realm, userID, sid, clientID string) (*account.Caller, error)
	Devices(ctx context.Context, c *account.Caller) ([]account.DeviceRep, error)
	Logout(ctx context.Context, c *account.Caller, id string) error
	LogoutAll(ctx context.Context, c *account.Caller, current bool) (int, error)
	Applications(ctx context.Context, c *account.Caller) ([]account.ClientRep, error)
	Revoke(ctx context.Context, c *account.Caller, clientID string) (int, error)
}

// Logins redeems the console's codes; *login.Service implements it.
type Logins interface {
	Issuer(realm string) string
	Redeem(ctx context.Context, g login.CodeGrant) (*login.Exchange, error)
}

// Deps are the console's dependencies.
type Deps struct {
	Account Account
	Logins  Logins
	Realms  *realm.Realms
	// Records keep the console sessions' cookie key and sign-outs: the user-sessions
	// store's, which every node sharing it reads.
	Records consolesession.Records
	// KEK seals the cookie key; nil keeps it in plain text (start-dev).
	KEK consolesession.Sealer
	// Hostname is sessiond's public base URL, "" when unset (the same-origin check).
	Hostname                 string
	IdleTimeout, MaxLifetime time.Duration
	Now                      func() time.Time
	Log                      hclog.Logger
}

// Console serves the account console; it is an http.Handler for the paths under
// /realms/{realm}/account/ that the account API does not take.
type Console struct {
	account  Account
	logins   Logins
	realms   *realm.Realms
	sessions *consolesession.Manager
	hostname string
	now      func() time.Time
	log      hclog.Logger
	tmpl     *template.Template
	mux      *http.ServeMux

	lastSweep atomic.Int64 // Unix seconds of this node's last sweep of past sign-outs
}

// New returns the console.
func New(d Deps) *Console {
	c := &Console{account: d.Account, logins: d.Logins, realms: d.Realms,
		hostname: strings.TrimSuffix(d.Hostname, "/"), now: d.Now, log: d.Log, mux: http.NewServeMux()}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = DefaultIdleTimeout
	}
	if d.MaxLifetime <= 0 {
		d.MaxLifetime = DefaultMaxLifetime
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	c.sessions = consolesession.New(consolesession.Options{Name: SessionsName, Records: d.Records, KEK: d.KEK,
		Idle: d.IdleTimeout, Max: d.MaxLifetime, Now: c.now})
	c.tmpl = template.Must(template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/*.html"))
	c.routes()
	return c
}

var funcs = template.FuncMap{
	"when": func(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 UTC") },
	"ms":   func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04 UTC") },
	"path": url.PathEscape,
}

const base = "/realms/{realm}/account/"

func (c *Console) routes() {
	static, _ := fs.Sub(staticFiles, "static")
	c.mux.Handle("GET "+base+"static/{file}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, r.PathValue("file"))
	}))
	c.mux.HandleFunc("GET "+base+"{$}", c.page(func(w http.ResponseWriter, r *http.Request, _ *view) error {
		http.Redirect(w, r, accountURL(r.PathValue("realm"), "device-activity"), http.StatusSeeOther)
		return nil
	}))
	c.mux.HandleFunc("GET "+base+"callback", c.callback)
	c.mux.HandleFunc("GET "+base+"device-activity", c.page(c.deviceActivity))
	c.mux.HandleFunc("GET "+base+"apps", c.page(c.applications))
	c.mux.HandleFunc("POST "+base+"device-activity/{id}/signout", c.act(func(w http.ResponseWriter, r *http.Request, v *view) error {
		if err := c.account.Logout(r.Context(), v.caller, r.PathValue("id")); err != nil {
			return err
		}
		http.Redirect(w, r, accountURL(v.Realm, "device-activity?done=signed-out"), http.StatusSeeOther)
		return nil
	}))
	c.mux.HandleFunc("POST "+base+"device-activity/signout-others", c.act(func(w http.ResponseWriter, r *http.Request, v *view) error {
		if _, err := c.account.LogoutAll(r.Context(), v.caller, false); err != nil {
			return err
		}
		http.Redirect(w, r, accountURL(v.Realm, "device-activity?done=signed-out-others"), http.StatusSeeOther)
		return nil
	}))
	c.mux.HandleFunc("POST "+base+"apps/{client}/revoke", c.act(func(w http.ResponseWriter, r *http.Request, v *view) error {
		if _, err := c.account.Revoke(r.Context(), v.caller, r.PathValue("client")); err != nil {
			return err
		}
		http.Redirect(w, r, accountURL(v.Realm, "apps?done=revoked"), http.StatusSeeOther)
		return nil
	}))
	c.mux.HandleFunc("POST "+base+"signout", c.act(c.signOut))
	c.mux.HandleFunc(base, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, fmt.Errorf("no account page %s %s: %w", r.Method, r.URL.Path, spi.ErrNotFound))
	})
}

// ServeHTTP serves the console with its security headers; a path, query or form holding text
// no store can hold is refused with a page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pageguard.SetHeaders(w.Header())
	if err := pageguard.CheckText(r); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// accountURL is a console path of realm.
func accountURL(realmName, rest string) string {
	return "/realms/" + url.PathEscape(realmName) + "/account/" + rest
}

// cookiePath is where the console's cookies go: the realm's console only.
func cookiePath(realmName string) string { return "/realms/" + url.PathEscape(realmName) + "/account/" }

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secure reports whether the browser reached sessiond over TLS (directly, or through a
// trusted proxy: core/forwarded sets the scheme).
func secure(r *http.Request) bool { return r.TLS != nil || r.URL.Scheme == "https" }

// setCookie sets one of the console's cookies. SameSite=Lax, not Strict: the browser comes
// back to the callback from the login front-end, which may be another site, and a Strict
// cookie would not come with that navigation. Lax still keeps it off cross-site POSTs, and
// every form also needs the CSRF token.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: cookiePath(r.PathValue("realm")), HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)}
	if value == "" {
		c.MaxAge, c.Expires = -1, time.Unix(0, 0)
	}
	http.SetCookie(w, c)
}

// Refusals of the console itself.
var (
	errCSRF      = errors.New("this form is stale or was not sent by the account console; reload the page and try again")
	errCrossSite = errors.New("a form from another site is refused")
	errNoClient  = errors.New("this realm has no account console: its operator has not registered the account-console client (docs/account-console.md)")
	errLogin     = errors.New("the sign-in could not be completed")
)

// status maps an error to the page's HTTP status; the one place the console does it.
func status(err error) int {
	var refused *session.Error
	var badToken *account.TokenError
	switch {
	case errors.Is(err, errCSRF), errors.Is(err, errCrossSite):
		return http.StatusForbidden
	case errors.As(err, &badToken):
		return http.StatusUnauthorized
	case errors.As(err, &refused):
		if refused.Code == session.TemporarilyUnavailable {
			return http.StatusServiceUnavailable
		}
		return http.StatusBadRequest
	case errors.Is(err, errLogin):
		return http.StatusBadRequest
	case errors.Is(err, errNoClient), errors.Is(err, spi.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, spi.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case errors.Is(err, spi.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// view is what every page's frame shows.
type view struct {
	Title    string
	Realm    string
	Username string
	CSRF     string
	Done     string
	caller   *account.Caller
	session  *consolesession.Session
}

type errorView struct {
	view
	Status  int
	Message string
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	code := status(err)
	msg := err.Error()
	if code >= 500 {
		c.log.Error("account console request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
		if code == http.StatusInternalServerError {
			msg = "internal error; the log says more"
		}
	}
	ev := errorView{Status: code, Message: msg}
	if v != nil {
		ev.view = *v
	}
	ev.Title = "Error"
	c.render(w, code, "error", ev)
}

func (c *Console) render(w http.ResponseWriter, code int, name string, data any) {
	var buf strings.Builder
	if err := c.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("account console page failed to render", "page", name, "error", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("internal error\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(buf.String()))
}
