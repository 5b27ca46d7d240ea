// Package httpapi is sessiond's HTTP surface: health endpoints now, the session, token and
// admin endpoints as they arrive. Errors become HTTP statuses here and nowhere else.
package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/hashicorp/go-hclog"
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

// Server is the HTTP handler tree.
type Server struct {
	log   hclog.Logger
	ready Readiness
	mux   *http.ServeMux
}

// New builds the handler tree.
func New(log hclog.Logger, ready Readiness) *Server {
	s := &Server{log: log, ready: ready, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /health/live", s.live)
	s.mux.HandleFunc("GET /health/ready", s.readyHandler)
	s.mux.HandleFunc("GET /health", s.readyHandler)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

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
