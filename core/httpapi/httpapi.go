// Package httpapi is sessiond's HTTP surface: health, the OpenID Connect endpoints relying
// parties call, and the login front-end's session API. Errors become HTTP statuses here and
// nowhere else (errors.go).
package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/realm"
)

// The HTTP server's limits (set by the runtime on its listeners). A request, body
// included, must arrive within ReadTimeout, so a client that sends slowly cannot hold a
// connection; an answer must be written within WriteTimeout (a streamed listing, each
// page); an idle keep-alive connection is closed after IdleTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 2 * time.Minute
	// MaxHeaderBytes bounds a request's header: a bearer token and a cookie-less API need
	// far less than Go's default of 1 MiB.
	MaxHeaderBytes = 64 << 10
)

// Check is one named readiness condition.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "UP" or "DOWN"
	Reason string `json:"reason,omitempty"`
}

// Readiness reports whether the runtime can serve, and why not. It is implemented by the
// runtime; the handler only renders it.
type Readiness interface {
	Checks(ctx context.Context) []Check
}

// Deps are what the handlers call.
type Deps struct {
	Ready    Readiness
	Sessions Sessions
	Keys     KeySets
	Realms   *realm.Realms
	// Issuer is a realm's issuer URL, as written into its tokens.
	Issuer func(realm string) string
	// FrontendToken and AdminToken are the bearer credentials of the login front-end and
	// of the administrator; "" refuses every caller.
	FrontendToken, AdminToken string
	// AdminViewerToken is a view-only admin credential: GET routes of the admin API only.
	AdminViewerToken string
	// Admin serves the admin API (/admin/realms/…); nil leaves it out.
	Admin Admin
	// Actions mints and redeems action tokens (actions.go); nil leaves their routes out.
	Actions ActionTokens
	// HealthElsewhere leaves /health/* out of the handler tree: they are served on the
	// management interface (Health), and this tree answers 404 for them.
	HealthElsewhere bool
	// Guard audits and slows failed client, front-end and admin authentication, and
	// limits the logins an address starts; nil neither audits nor slows nor limits.
	Guard AuthGuard
	// Login serves the browser login flows (login.go); nil leaves them out.
	Login Logins
	// DevLogin is start-dev's development login front-end, served at devlogin.Path; nil
	// (start) leaves it out.
	DevLogin http.Handler
	// Console is the admin console, served under ConsolePath; nil leaves it out (the
	// admin API's catch-all then answers there).
	Console http.Handler
	// SSF is the Shared Signals transmitter (ssf.go); nil: its metadata is not served
	// and its admin routes answer 501.
	SSF SharedSignals
	// Account serves the account REST API (account.go); nil leaves it out.
	Account Account
	// AccountConsole is the account console, served under AccountPath (GET and POST); nil
	// leaves it out.
	AccountConsole http.Handler
	// DPoP checks DPoP proofs (dpop.go); nil serves no DPoP: a request with a proof, or of
	// a client that must use DPoP, is refused.
	DPoP Proofs
}

// ConsolePath is where the admin console is served (core/console).
const ConsolePath = "/admin/console/"

// AuthGuard watches authentication; *authfail.Guard implements it. Check runs before a
// credential is compared, and refuses a caller that failed too often with an
// *authfail.ThrottledError; every refusal, throttled ones included, goes to Refused.
// StartLogin takes from the address's budget of logins started, or refuses with an
// *authfail.ThrottledError.
type AuthGuard interface {
	Check(authfail.Attempt) error
	StartLogin(authfail.Attempt) error
	Refused(authfail.Refusal)
	Succeeded(authfail.Attempt)
}

// Server is the HTTP handler tree.
type Server struct {
	log                       hclog.Logger
	ready                     Readiness
	sessions                  Sessions
	keys                      KeySets
	realms                    *realm.Realms
	issuer                    func(string) string
	frontendToken, adminToken string
	viewerToken               string
	admin                     Admin
	actions                   ActionTokens
	guard                     AuthGuard
	login                     Logins
	mux                       *http.ServeMux
	console                   http.Handler
	ssf                       SharedSignals
	account                   Account
	proofs                    Proofs
}

// New builds the handler tree.
func New(log hclog.Logger, d Deps) *Server {
	s := &Server{
		log: log, ready: d.Ready, sessions: d.Sessions, keys: d.Keys, realms: d.Realms, issuer: d.Issuer,
		frontendToken: d.FrontendToken, adminToken: d.AdminToken, mux: http.NewServeMux(),
		viewerToken: d.AdminViewerToken, admin: d.Admin, guard: d.Guard, actions: d.Actions, login: d.Login,
		ssf:     d.SSF,
		account: d.Account,
		proofs:  d.DPoP,
	}
	if s.guard == nil {
		s.guard = noGuard{}
	}
	if !d.HealthElsewhere {
		s.healthRoutes(s.mux)
	}
	s.oidcRoutes()
	s.frontendRoutes()
	if s.actions != nil {
		s.actionRoutes()
	}
	if s.login != nil {
		s.loginRoutes()
	}
	if d.DevLogin != nil {
		s.mux.Handle("GET /realms/{realm}/dev-login", d.DevLogin)
		s.mux.Handle("POST /realms/{realm}/dev-login", d.DevLogin)
	}
	if s.admin != nil {
		s.adminRoutes()
	}
	if s.ssf != nil {
		s.ssfRoutes()
	}
	if d.Console != nil {
		s.console = d.Console
	}
	if s.account != nil {
		s.accountRoutes()
	}
	if d.AccountConsole != nil {
		s.mux.Handle("GET "+AccountPath, d.AccountConsole)
		s.mux.Handle("POST "+AccountPath, d.AccountConsole)
	}
	return s
}

func (s *Server) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health/live", s.live)
	mux.HandleFunc("GET /health/ready", s.readyHandler)
	mux.HandleFunc("GET /health", s.readyHandler)
}

// Health is the health routes alone (/health, /health/live, /health/ready), for the
// management interface.
func (s *Server) Health() http.Handler {
	mux := http.NewServeMux()
	s.healthRoutes(mux)
	return mux
}

// noGuard neither audits nor slows.
type noGuard struct{}

func (noGuard) Check(authfail.Attempt) error      { return nil }
func (noGuard) StartLogin(authfail.Attempt) error { return nil }
func (noGuard) Refused(authfail.Refusal)          {}
func (noGuard) Succeeded(authfail.Attempt)        {}

// ServeHTTP implements http.Handler. A path or query holding text no store can hold is
// refused before any route sees it (text.go).
//
// The console is handed its requests first: it checks their text itself and answers a
// browser with a page, not JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.console != nil && (r.URL.Path == strings.TrimSuffix(ConsolePath, "/") || strings.HasPrefix(r.URL.Path, ConsolePath)) {
		s.console.ServeHTTP(w, r)
		return
	}
	if err := checkRequestText(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// healthBody has the shape of Keycloak's (MicroProfile Health) responses, so existing
// probes and dashboards read it unchanged.
type healthBody struct {
	Status string  `json:"status"`
	Checks []Check `json:"checks"`
}

func (s *Server) live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, healthBody{Status: "UP", Checks: []Check{}})
}

func (s *Server) readyHandler(w http.ResponseWriter, r *http.Request) {
	checks := s.ready.Checks(r.Context())
	body := healthBody{Status: "UP", Checks: checks}
	code := http.StatusOK
	for _, c := range checks {
		if c.Status != "UP" {
			body.Status, code = "DOWN", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
