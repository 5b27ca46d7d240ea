package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/session"
)

// Account is the account API's service; *account.Service implements it.
type Account interface {
	Authenticate(ctx context.Context, realm, raw string) (*account.Caller, error)
	Sessions(ctx context.Context, c *account.Caller) ([]account.SessionRep, error)
	Devices(ctx context.Context, c *account.Caller) ([]account.DeviceRep, error)
	Logout(ctx context.Context, c *account.Caller, id string) error
	LogoutAll(ctx context.Context, c *account.Caller, current bool) (int, error)
	Applications(ctx context.Context, c *account.Caller) ([]account.ClientRep, error)
	Revoke(ctx context.Context, c *account.Caller, clientID string) (int, error)
}

// AccountPath is the account console's path under a realm (core/accountconsole); the
// account API's routes below it are the more specific patterns and win.
const AccountPath = "/realms/{realm}/account/"

// accountRoutes are the account REST API (docs/account-console.md), Keycloak's paths.
func (s *Server) accountRoutes() {
	const p = "/realms/{realm}/account/"
	s.mux.HandleFunc("GET "+p+"sessions", s.accountCall(func(w http.ResponseWriter, r *http.Request, c *account.Caller) error {
		out, err := s.account.Sessions(r.Context(), c)
		return answer(w, out, err)
	}))
	s.mux.HandleFunc("GET "+p+"sessions/devices", s.accountCall(func(w http.ResponseWriter, r *http.Request, c *account.Caller) error {
		out, err := s.account.Devices(r.Context(), c)
		return answer(w, out, err)
	}))
	s.mux.HandleFunc("DELETE "+p+"sessions/{id}", s.accountCall(func(w http.ResponseWriter, r *http.Request, c *account.Caller) error {
		return noContent(w, s.account.Logout(r.Context(), c, r.PathValue("id")))
	}))
	s.mux.HandleFunc("DELETE "+p+"sessions", s.accountCall(func(w http.ResponseWriter, r *http.Request, c *account.Caller) error {
		current := false
		if v := r.URL.Query().Get("current"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return &session.Error{Code: session.InvalidRequest, Description: "current must be true or false, not " + strconv.Quote(v)}
			}
			current = b
		}
		_, err := s.account.LogoutAll(r.Context(), c, current)
		return noContent(w, err)
	}))
	s.mux.HandleFunc("GET "+p+"applications", s.accountCall(func(w http.ResponseWriter, r *http.Request, c *account.Caller) error {
		out, err := s.account.Applications(r.Context(), c)
		return answer(w, out, err)
	}))
	s.mux.HandleFunc("DELETE "+p+"applications/{clientId}/consent", s.accountCall(func(w http.ResponseWriter, r *http.Request, c *account.Caller) error {
		_, err := s.account.Revoke(r.Context(), c, r.PathValue("clientId"))
		return noContent(w, err)
	}))
}

// accountCall authorizes an account API call by the person's own access token (a bearer
// header) and runs h; every error goes through writeError.
func (s *Server) accountCall(h func(http.ResponseWriter, *http.Request, *account.Caller) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, _ := bearerCredential(r)
		c, err := s.account.Authenticate(r.Context(), r.PathValue("realm"), raw)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

func answer(w http.ResponseWriter, v any, err error) error {
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
