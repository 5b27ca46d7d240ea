// Package accountconsole is the account console at /realms/{realm}/account/: server-rendered
// pages where a person sees their sessions as devices and their applications' offline
// tokens, and ends or revokes them, over the account API's service (core/account).
//
// It signs in as Keycloak's account console does, as an OpenID Connect client of the realm
// (the public client "account-console"): the browser goes through the realm's authorization
// endpoint with PKCE and comes back with a code, which the console redeems in process
// (core/login's Redeem, the token endpoint's code grant). The tokens stay in this node's
// memory under a random id, kept by the browser in an HttpOnly cookie; every page is
// authorized by the access token exactly as the REST API is, and every form carries the
// console session's CSRF token. No script.
package accountconsole

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/account"
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

// Lifetimes.
const (
	// DefaultIdleTimeout ends a console session nobody used for that long (the tokens'
	// session goes on).
	DefaultIdleTimeout = 30 * time.Minute
	// loginTimeout bounds a login under way: from the redirect to the callback.
	loginTimeout = 10 * time.Minute
	// maxHeld bounds the console sessions and logins held; past it the oldest goes.
	maxHeld = 10000
	// refreshAhead refreshes the access token that long before it expires.
	refreshAhead = 15 * time.Second
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Account is the account API's service; *account.Service implements it.
type Account interface {
	Authenticate(ctx context.Context, realm, raw string) (*account.Caller, error)
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

// Refresher refreshes the console's access token; *session.Service implements it.
type Refresher interface {
	Refresh(ctx context.Context, req session.RefreshRequest) (*session.Grant, error)
}

// Deps are the console's dependencies.
type Deps struct {
	Account Account
	Logins  Logins
	Tokens  Refresher
	Realms  *realm.Realms
	// Hostname is sessiond's public base URL, "" when unset (the same-origin check).
	Hostname    string
	IdleTimeout time.Duration
	Now         func() time.Time
	Log         hclog.Logger
}

// Console serves the account console; it is an http.Handler for the paths under
// /realms/{realm}/account/ that the account API does not take.
type Console struct {
	account  Account
	logins   Logins
	tokens   Refresher
	realms   *realm.Realms
	hostname string
	idle     time.Duration
	now      func() time.Time
	log      hclog.Logger
	tmpl     *template.Template
	mux      *http.ServeMux

	mu      sync.Mutex
	held    map[[32]byte]*signedIn
	pending map[[32]byte]*pendingLogin
}

// signedIn is one console session: a person's tokens.
type signedIn struct {
	realm, username   string
	access, refresh   string
	accessExpires     time.Time
	csrf              string
	started, lastSeen time.Time
}

// pendingLogin is a login under way: what the callback checks and redeems with.
type pendingLogin struct {
	realm, state, verifier string
	started                time.Time
}

// New returns the console.
func New(d Deps) *Console {
	c := &Console{account: d.Account, logins: d.Logins, tokens: d.Tokens, realms: d.Realms,
		hostname: strings.TrimSuffix(d.Hostname, "/"), idle: d.IdleTimeout, now: d.Now, log: d.Log,
		mux: http.NewServeMux(), held: map[[32]byte]*signedIn{}, pending: map[[32]byte]*pendingLogin{}}
	if c.idle <= 0 {
		c.idle = DefaultIdleTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
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

func key(id string) [32]byte { return sha256.Sum256([]byte(id)) }

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

func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
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
