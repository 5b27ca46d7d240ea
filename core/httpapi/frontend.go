package httpapi

import (
	"net/http"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/session"
)

func (s *Server) frontendRoutes() {
	s.mux.HandleFunc("POST /realms/{realm}/sessions", s.openSession)
	s.mux.HandleFunc("POST /realms/{realm}/sessions/{id}/clients", s.attachClient)
	s.mux.HandleFunc("GET /realms/{realm}/sessions/{id}/explain", s.explain)
}

// openRequest is what the login front-end posts once it has authenticated a person.
type openRequest struct {
	ClientID        string            `json:"client_id"`
	UserID          string            `json:"user_id"`
	Username        string            `json:"username"`
	IPAddress       string            `json:"ip_address"`
	UserAgent       string            `json:"user_agent"`
	AuthMethod      string            `json:"auth_method"`
	RememberMe      bool              `json:"remember_me"`
	Scope           string            `json:"scope"`
	OfflineAccess   bool              `json:"offline_access"`
	Transient       bool              `json:"transient"`
	Implicit        bool              `json:"implicit"`
	BrokerSessionID string            `json:"broker_session_id"`
	BrokerUserID    string            `json:"broker_user_id"`
	Notes           map[string]string `json:"notes"`
}

// openResponse is the token response plus the session id the front-end keeps (in its SSO
// cookie) to attach further clients.
type openResponse struct {
	SessionID string `json:"session_id,omitempty"`
	tokenResponse
}

func (s *Server) openSession(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if err := s.authBearer(r, authfail.KindFrontend, name, s.frontendToken); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req openRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ClientID == "" || req.UserID == "" {
		s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "client_id and user_id are required"})
		return
	}
	g, err := s.sessions.Open(r.Context(), session.OpenRequest{
		Realm: name, ClientID: req.ClientID, UserID: req.UserID, Username: req.Username,
		IPAddress: req.IPAddress, UserAgent: req.UserAgent, AuthMethod: req.AuthMethod,
		RememberMe: req.RememberMe, Scope: trimScope(req.Scope), OfflineAccess: req.OfflineAccess,
		Transient: req.Transient, Implicit: req.Implicit,
		BrokerSessionID: req.BrokerSessionID, BrokerUserID: req.BrokerUserID, Notes: req.Notes,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := openResponse{tokenResponse: grantResponse(g)}
	if !g.Transient {
		resp.SessionID = g.SessionID
	}
	writeJSON(w, http.StatusCreated, resp)
}

type attachRequest struct {
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Implicit bool   `json:"implicit"`
}

func (s *Server) attachClient(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("realm"), r.PathValue("id")
	if err := s.authBearer(r, authfail.KindFrontend, name, s.frontendToken); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req attachRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ClientID == "" {
		s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "client_id is required"})
		return
	}
	g, err := s.sessions.Attach(r.Context(), session.AttachRequest{
		Realm: name, SessionID: id, ClientID: req.ClientID, Scope: trimScope(req.Scope), Implicit: req.Implicit,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, openResponse{SessionID: g.SessionID, tokenResponse: grantResponse(g)})
}

// explain answers, for an administrator, which timeout governs a session and its client
// sessions, when each ends and why.
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("realm"), r.PathValue("id")
	if err := s.authBearer(r, authfail.KindAdmin, name, s.adminToken); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.sessions.Explain(r.Context(), name, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
