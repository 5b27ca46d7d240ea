package httpapi

import (
	"fmt"
	"net/http"
	"strings"

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
	key, err := idempotencyKey(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if key != "" {
		key = "frontend:" + key // the login flow's keys are "login:…"
	}
	g, err := s.sessions.Open(r.Context(), session.OpenRequest{
		Realm: name, ClientID: req.ClientID, UserID: req.UserID, Username: req.Username,
		IPAddress: req.IPAddress, UserAgent: req.UserAgent, AuthMethod: req.AuthMethod,
		RememberMe: req.RememberMe, Scope: trimScope(req.Scope), OfflineAccess: req.OfflineAccess,
		Transient: req.Transient, Implicit: req.Implicit,
		BrokerSessionID: req.BrokerSessionID, BrokerUserID: req.BrokerUserID, Notes: req.Notes,
		IdempotencyKey: key,
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

// maxIdempotencyKey bounds an Idempotency-Key's length; a UUID takes 36 bytes.
const maxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header of the IETF httpapi draft
// (draft-ietf-httpapi-idempotency-key-header): a Structured Field string, "…" quoted; a bare
// value is taken as it is, as many clients send one. "" when absent. One header line only,
// of printable ASCII, at most maxIdempotencyKey bytes: anything else is refused, not ignored.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	if len(vs) == 0 {
		return "", nil
	}
	refuse := func(why string) error {
		return &session.Error{Code: session.InvalidRequest, Description: "Idempotency-Key: " + why}
	}
	if len(vs) > 1 {
		return "", refuse("give it once")
	}
	v := strings.TrimSpace(vs[0])
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			c := v[i]
			switch c {
			case '\\':
				if i+1 >= len(v)-1 || (v[i+1] != '"' && v[i+1] != '\\') {
					return "", refuse("a Structured Field string escapes only \\\" and \\\\")
				}
				i++
				c = v[i]
			case '"':
				return "", refuse("an unescaped quote inside the string")
			}
			b.WriteByte(c)
		}
		v = b.String()
	}
	switch {
	case v == "":
		return "", refuse("empty")
	case len(v) > maxIdempotencyKey:
		return "", refuse(fmt.Sprintf("longer than %d bytes", maxIdempotencyKey))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", refuse("only printable ASCII")
		}
	}
	return v, nil
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
