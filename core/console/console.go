package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/consolesession"
	"github.com/sessiond/sessiond/core/pageguard"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Path is where the console is served.
const Path = "/admin/console/"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Admin is the admin service as the console uses it; *admin.Service implements it. It is
// the service the JSON API calls (core/httpapi.Admin), so both fronts act alike.
type Admin interface {
	Audit(admin.AuditEvent)
	Stats(ctx context.Context, realm string) ([]admin.ClientStat, error)
	Clients(ctx context.Context, realm, clientID string) ([]admin.ClientRep, error)
	RealmSessions(ctx context.Context, realm string, offline bool, q admin.Query) ([]admin.SessionRep, string, error)
	ClientSessions(ctx context.Context, realm, clientUUID string, offline bool, q admin.Query) ([]admin.SessionRep, string, error)
	UserSessions(ctx context.Context, realm, userID string, emit func([]admin.SessionRep) error) error
	UserOfflineSessions(ctx context.Context, realm, userID, clientUUID string, emit func([]admin.SessionRep) error) error
	LogoutSession(ctx context.Context, realm, id string, offline bool) (admin.Result, error)
	LogoutUser(ctx context.Context, realm, userID string) (admin.Result, error)
	LogoutAll(ctx context.Context, realm string) (admin.Result, error)
	RevokeOfflineToken(ctx context.Context, realm, userID, clientID string) (admin.Result, error)
	NotBefore(ctx context.Context, realm string) (time.Time, error)
	SetNotBefore(ctx context.Context, realm string, c admin.Change) (time.Time, error)
	ClientNotBefore(ctx context.Context, realm, clientUUID string) (time.Time, error)
	SetClientNotBefore(ctx context.Context, realm, clientUUID string, c admin.Change) (time.Time, error)
	SessionLimits(ctx context.Context, realm, userID string) (*admin.LimitsRep, error)
	PushRevocation(ctx context.Context, realm, clientUUID string) (admin.Report, error)
	Deliveries(ctx context.Context, realm string, state usersessions.DeliveryState, q admin.Query) ([]admin.DeliveryRep, string, error)
}

// Explainer says why a session expires when it does; *session.Service implements it.
type Explainer interface {
	Explain(ctx context.Context, realmName, sessionID string) (*session.Explanation, error)
}

// Guard watches failed sign-ins as the admin API's failed credentials are watched;
// *authfail.Guard implements it.
type Guard interface {
	Check(authfail.Attempt) error
	Refused(authfail.Refusal)
}

// Deps are the console's dependencies.
type Deps struct {
	Admin   Admin
	Explain Explainer
	Realms  *realm.Realms
	// Credentials are the admin API's; the console signs in with the same ones.
	Credentials admin.Credentials
	// Guard audits and slows failed sign-ins; nil neither audits nor slows.
	Guard Guard
	// Hostname is sessiond's public base URL (the hostname option), "" when unset: an
	// Origin equal to it is the console's own even when a proxy does not pass the Host
	// header on.
	Hostname string
	// Warnings are the start-up warnings about the configuration (conf.Settings.Warnings),
	// shown on the realm settings page beside the realm's own.
	Warnings []string
	Log      hclog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// IdleTimeout and MaxLifetime bound a console session; 0 means the defaults.
	IdleTimeout, MaxLifetime time.Duration
	// Records keep the console's cookie key and its sign-outs: the store's records, which
	// every node sharing the store reads (core/consolesession).
	Records consolesession.Records
	// KEK seals the cookie key in the store; nil keeps it in plain text (start-dev).
	KEK consolesession.Sealer
	// OIDC also lets operators sign in through OpenID Connect; nil: the credentials only.
	OIDC *OIDC
	// PageSize is how many sessions a page lists; 0 means DefaultPageSize.
	PageSize int
}

// DefaultPageSize is the sessions a page lists.
const DefaultPageSize = 50

// maxUserSessions bounds the sessions a user's page lists: it reads them a store page at
// a time and stops there, saying so.
const maxUserSessions = 500

// Console serves the admin console. It is an http.Handler for the paths under Path.
type Console struct {
	admin    Admin
	explain  Explainer
	realms   *realm.Realms
	creds    admin.Credentials
	guard    Guard
	warnings []string
	hostname string
	log      hclog.Logger
	now      func() time.Time
	pageSize int
	sessions *consolesession.Manager
	oidc     *oidcSignIn // nil without OpenID Connect sign-in
	tmpl     *template.Template
	mux      *http.ServeMux
}

// New returns the console over its dependencies.
func New(d Deps) *Console {
	c := &Console{
		admin: d.Admin, explain: d.Explain, realms: d.Realms, creds: d.Credentials, guard: d.Guard,
		warnings: d.Warnings, hostname: strings.TrimSuffix(d.Hostname, "/"), log: d.Log, now: d.Now, pageSize: d.PageSize,
		mux: http.NewServeMux(),
	}
	if c.guard == nil {
		c.guard = noGuard{}
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if d.OIDC != nil {
		c.oidc = &oidcSignIn{cfg: *d.OIDC}
	}
	c.sessions = consolesession.New(consolesession.Options{Records: d.Records, KEK: d.KEK, Now: c.now,
		Idle: orDefault(d.IdleTimeout, DefaultIdleTimeout), Max: orDefault(d.MaxLifetime, DefaultMaxLifetime)})
	if c.pageSize <= 0 || c.pageSize > maxPageSize {
		c.pageSize = DefaultPageSize
	}
	c.tmpl = template.Must(template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/*.html"))
	c.routes()
	return c
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

type noGuard struct{}

func (noGuard) Check(authfail.Attempt) error { return nil }
func (noGuard) Refused(authfail.Refusal)     {}

// page is a route that needs a signed-in operator; acting ones need the manage role, a
// POST and the session's CSRF token.
type page struct {
	pattern string
	action  string // the audit action of an acting route, as the JSON API names it
	acting  bool
	handle  func(c *Console, w http.ResponseWriter, r *http.Request, s *signedIn) error
}

func (c *Console) routes() {
	static, _ := fs.Sub(staticFiles, "static")
	c.mux.Handle("GET "+Path+"static/", http.StripPrefix(Path+"static/", http.FileServer(http.FS(static))))
	c.mux.HandleFunc("GET "+Path+"{$}", c.home)
	c.mux.HandleFunc("POST "+Path+"signin", c.signIn)
	c.mux.HandleFunc("POST "+Path+"signout", c.signOut)
	c.mux.HandleFunc("GET "+Path+"oidc/start", c.oidcStart)
	c.mux.HandleFunc("GET "+Path+"oidc/callback", c.oidcCallback)
	const realmPath = Path + "realms/{realm}/"
	for _, p := range []page{
		{pattern: "GET " + Path + "realms/{$}", handle: (*Console).realmList},
		{pattern: "GET " + realmPath + "{$}", handle: (*Console).realmHome},
		{pattern: "GET " + realmPath + "sessions", handle: (*Console).sessionList},
		{pattern: "GET " + realmPath + "sessions/{id}/explain", handle: (*Console).explainPage},
		{pattern: "GET " + realmPath + "clients", handle: (*Console).clientList},
		{pattern: "GET " + realmPath + "clients/{id}/sessions", handle: (*Console).clientSessions},
		{pattern: "GET " + realmPath + "users", handle: (*Console).userPage},
		{pattern: "GET " + realmPath + "actions", handle: (*Console).actionsPage},
		{pattern: "GET " + realmPath + "logout-all", handle: (*Console).logoutAllConfirm},
		{pattern: "GET " + realmPath + "deliveries", handle: (*Console).deliveriesPage},
		{pattern: "GET " + realmPath + "settings", handle: (*Console).settingsPage},
		{pattern: "GET " + realmPath + "limits", handle: (*Console).limitsPage},

		{pattern: "POST " + realmPath + "sessions/{id}/logout", action: "logout-session", acting: true, handle: (*Console).logoutSession},
		{pattern: "POST " + realmPath + "users/{id}/logout", action: "logout-user", acting: true, handle: (*Console).logoutUser},
		{pattern: "POST " + realmPath + "users/{id}/consents/{client}/revoke", action: "revoke-offline-token", acting: true, handle: (*Console).revokeConsent},
		{pattern: "POST " + realmPath + "logout-all", action: "logout-all", acting: true, handle: (*Console).logoutAll},
		{pattern: "POST " + realmPath + "not-before", action: "set-not-before", acting: true, handle: (*Console).setNotBefore},
		{pattern: "POST " + realmPath + "push-revocation", action: "push-revocation", acting: true, handle: (*Console).pushRevocation},
		{pattern: "POST " + realmPath + "clients/{id}/not-before", action: "set-client-not-before", acting: true, handle: (*Console).setNotBefore},
		{pattern: "POST " + realmPath + "clients/{id}/push-revocation", action: "push-client-revocation", acting: true, handle: (*Console).pushRevocation},
	} {
		c.mux.HandleFunc(p.pattern, c.guarded(p))
	}
	c.mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, fmt.Errorf("no console page %s %s: %w", r.Method, r.URL.Path, spi.ErrNotFound))
	})
}

// ServeHTTP serves the console. Every answer carries its security headers; a path, query
// or form holding text no store can hold is refused with a page before any route sees it.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pageguard.SetHeaders(w.Header())
	if r.URL.Path == strings.TrimSuffix(Path, "/") {
		http.Redirect(w, r, Path, http.StatusFound)
		return
	}
	if err := pageguard.CheckText(r); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// errBadInput is a malformed request: 400.
var errBadInput = errors.New("bad request")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadInput, fmt.Sprintf(format, args...))
}

// Refusals of the console itself.
var (
	errSignIn    = errors.New("sign in first")
	errForbidden = errors.New("the view-only credential may not act")
	errCSRF      = errors.New("this form is stale or was not sent by the console; reload the page and try again")
	errCrossSite = errors.New("a form from another site is refused")
)

// status maps an error to the page's HTTP status; the one place the console does it.
func status(err error) int {
	var throttled *authfail.ThrottledError
	var refused *session.Error
	switch {
	case errors.As(err, &throttled):
		return http.StatusTooManyRequests
	case errors.As(err, &refused):
		// The session service's refusals (the explain view of a disabled realm).
		if refused.Code == session.TemporarilyUnavailable {
			return http.StatusServiceUnavailable
		}
		return http.StatusBadRequest
	case errors.Is(err, errSignIn):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden), errors.Is(err, errCSRF), errors.Is(err, errCrossSite):
		return http.StatusForbidden
	case errors.Is(err, admin.ErrNotConfigured):
		return http.StatusNotImplemented
	case errors.Is(err, spi.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case errors.Is(err, spi.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errBadInput), errors.Is(err, spi.ErrInvalid), errors.Is(err, admin.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, spi.ErrConflict), errors.Is(err, spi.ErrExists):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// errorView is the error page.
type errorView struct {
	layout
	Status  int
	Message string
}

// fail answers err with the error page. A server failure's details go to the log only.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *signedIn, err error) {
	code := status(err)
	msg := err.Error()
	if code >= 500 {
		c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
		if code == http.StatusInternalServerError {
			msg = "internal error; the log says more"
		}
	}
	var throttled *authfail.ThrottledError
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
	}
	c.render(w, code, "error", errorView{layout: c.layoutFor(r, s, "Error"), Status: code, Message: msg})
}

// render writes a page.
func (c *Console) render(w http.ResponseWriter, code int, name string, data any) {
	var buf strings.Builder
	if err := c.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("console page failed to render", "page", name, "error", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("internal error\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(buf.String()))
}

// remoteIP is the caller's address (core/forwarded has set RemoteAddr from a trusted
// proxy's headers).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// current returns the request's console session, nil when it has none (no cookie, or one
// that is expired, signed out, not this store's, or opened with a credential since
// changed). A cookie whose last-seen time moved on is sent back renewed. An error is the
// store's: whether the session was signed out cannot be told.
func (c *Console) current(w http.ResponseWriter, r *http.Request) (*signedIn, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	s, renewed, err := c.sessions.Open(r.Context(), ck.Value, c.credentialOf)
	switch {
	case errors.Is(err, consolesession.ErrInvalid), errors.Is(err, consolesession.ErrExpired),
		errors.Is(err, consolesession.ErrSignedOut), errors.Is(err, consolesession.ErrRebound):
		clearCookie(w, r)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
	}
	role := roleOf(s.Role)
	if role == admin.RoleNone {
		clearCookie(w, r)
		return nil, nil
	}
	if renewed != "" {
		setCookie(w, r, renewed, c.sessions.Ends(s).Sub(c.now()))
	}
	return &signedIn{Session: s, actor: s.Actor, role: role, csrf: s.CSRF}, nil
}

// guarded runs a page for a signed-in operator. An acting page also needs the manage role,
// a same-origin POST and the session's CSRF token; each refusal changes nothing. A viewer's
// acting request is refused and audited as the admin API refuses it (authfail, forbidden);
// every acting request that gets through is audited with its outcome.
func (c *Console) guarded(p page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.current(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Path, http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, errSignIn)
			return
		}
		if !p.acting {
			if err := p.handle(c, w, r, s); err != nil {
				c.fail(w, r, s, err)
			}
			return
		}
		realmName := r.PathValue("realm")
		ev := admin.AuditEvent{Actor: s.actor, Action: p.action, Realm: realmName, Target: target(p.action, r), IP: remoteIP(r)}
		switch {
		case !pageguard.SameOrigin(r, c.hostname):
			c.fail(w, r, s, errCrossSite)
			return
		case !validCSRF(s, r.PostForm.Get(csrfField)):
			c.fail(w, r, s, errCSRF)
			return
		case !s.canAct():
			err := fmt.Errorf("%w: %s", errForbidden, p.action)
			c.guard.Refused(authfail.Refusal{Attempt: authfail.Attempt{Kind: authfail.KindAdmin, Realm: realmName, Addr: ev.IP},
				Reason: authfail.ReasonForbidden, Actor: s.actor, Action: p.action, Target: ev.Target,
				Status: http.StatusForbidden, Detail: err.Error()})
			c.fail(w, r, s, err)
			return
		}
		rec := &recorder{ResponseWriter: w}
		if err := p.handle(c, rec, r, s); err != nil {
			ev.Outcome, ev.Status, ev.Detail = admin.OutcomeFailed, status(err), err.Error()
			c.fail(rec, r, s, err)
		} else {
			ev.Outcome, ev.Status, ev.Detail = admin.OutcomeSuccess, rec.code(), rec.detail
		}
		c.admin.Audit(ev)
	}
}

// target is what an acting route acts on, as the JSON API's audit events name it.
func target(action string, r *http.Request) string {
	switch action {
	case "logout-session":
		return "session/" + r.PathValue("id")
	case "logout-user":
		return "user/" + r.PathValue("id")
	case "revoke-offline-token":
		return "user/" + r.PathValue("id") + "/client/" + r.PathValue("client")
	case "set-client-not-before", "push-client-revocation":
		return "client/" + r.PathValue("id")
	}
	return "realm/" + r.PathValue("realm")
}

// recorder remembers the status an acting page answered, for its audit event.
type recorder struct {
	http.ResponseWriter
	status int
	detail string
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
