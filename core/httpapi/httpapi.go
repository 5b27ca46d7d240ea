// Package httpapi is sessiond's HTTP surface: health, the OpenID Connect endpoints relying
// parties call, and the login front-end's session API. Errors become HTTP statuses here and
// nowhere else (errors.go).
package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
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
	mux                       *http.ServeMux
}

// New builds the handler tree.
func New(log hclog.Logger, d Deps) *Server {
	s := &Server{
		log: log, ready: d.Ready, sessions: d.Sessions, keys: d.Keys, realms: d.Realms, issuer: d.Issuer,
		frontendToken: d.FrontendToken, adminToken: d.AdminToken, mux: http.NewServeMux(),
		viewerToken: d.AdminViewerToken, admin: d.Admin,
	}
	s.mux.HandleFunc("GET /health/live", s.live)
	s.mux.HandleFunc("GET /health/ready", s.readyHandler)
	s.mux.HandleFunc("GET /health", s.readyHandler)
	s.oidcRoutes()
	s.frontendRoutes()
	if s.admin != nil {
		s.adminRoutes()
	}
	return s
}

// ServeHTTP implements http.Handler. A path or query holding text no store can hold is
// refused before any route sees it (text.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
