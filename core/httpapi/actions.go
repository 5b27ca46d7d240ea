package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/actiontoken"
	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/token"
)

// ActionTokens mints and redeems action tokens; *actiontoken.Service implements it.
type ActionTokens interface {
	MintForUser(ctx context.Context, req actiontoken.Request) (*actiontoken.Minted, error)
	MintForAdmin(ctx context.Context, req actiontoken.Request) (*actiontoken.Minted, error)
	Consume(ctx context.Context, realm, raw string) (*token.ActionToken, error)
}

// actionRoutes are the login front-end's action-token routes (docs/action-tokens.md); the
// admin API's are in its table (adminRoutes).
func (s *Server) actionRoutes() {
	s.mux.HandleFunc("POST /realms/{realm}/action-tokens", s.mintActionToken)
	s.mux.HandleFunc("POST /realms/{realm}/action-tokens/consume", s.consumeActionToken)
}

// actionFields are the optional claims of a mint request, under the names of
// docs/action-tokens.md.
type actionFields struct {
	Action                   string   `json:"action"`
	ClientID                 string   `json:"client_id"`
	RedirectURI              string   `json:"redirect_uri"`
	Email                    string   `json:"email"`
	RequiredActions          []string `json:"required_actions"`
	AuthSessionID            string   `json:"auth_session_id"`
	IdentityProviderAlias    string   `json:"identity_provider_alias"`
	IdentityProviderUsername string   `json:"identity_provider_username"`
}

func (f actionFields) request(realmName, userID string) actiontoken.Request {
	return actiontoken.Request{
		Realm: realmName, UserID: userID, Action: f.Action, ClientID: f.ClientID, RedirectURI: f.RedirectURI,
		Email: f.Email, RequiredActions: f.RequiredActions, AuthSessionID: f.AuthSessionID,
		IdentityProviderAlias: f.IdentityProviderAlias, IdentityProviderUsername: f.IdentityProviderUsername,
	}
}

// userActionRequest is the front-end's: the user is in the body.
type userActionRequest struct {
	UserID string `json:"user_id"`
	actionFields
}

// adminActionRequest is the admin API's: the user is in the path; lifespan in seconds.
type adminActionRequest struct {
	Lifespan int64 `json:"lifespan"`
	actionFields
}

// mintedBody answers a mint.
type mintedBody struct {
	Token          string `json:"token"`
	TokenID        string `json:"token_id"`
	Action         string `json:"action"`
	UserID         string `json:"user_id"`
	AdminInitiated bool   `json:"admin_initiated"`
	IssuedAt       int64  `json:"issued_at"`
	ExpiresAt      int64  `json:"expires_at"`
	ExpiresIn      int64  `json:"expires_in"`
	LifespanSource string `json:"lifespan_source"`
	// EmailSent is always false: sessiond sends no email (Keycloak's execute-actions-email
	// does); the caller delivers the token.
	EmailSent bool `json:"email_sent"`
}

func mintedOf(m *actiontoken.Minted) mintedBody {
	return mintedBody{
		Token: m.Token, TokenID: m.ID, Action: m.Action, UserID: m.UserID, AdminInitiated: m.AdminInitiated,
		IssuedAt: m.IssuedAt.Unix(), ExpiresAt: m.Expiry.Unix(), ExpiresIn: int64(m.Lifespan / time.Second),
		LifespanSource: m.LifespanSource,
	}
}

// frontendJSON authenticates the front-end on a route of a realm, checks the realm and
// decodes the JSON body into v. It returns the realm, or answers the refusal and "".
func (s *Server) frontendJSON(w http.ResponseWriter, r *http.Request, v any) string {
	name := r.PathValue("realm")
	err := s.authBearer(r, authfail.KindFrontend, name, s.frontendToken)
	if err == nil {
		_, err = s.knownRealm(name)
	}
	if err == nil {
		err = decodeJSON(w, r, v)
	}
	if err != nil {
		s.writeError(w, r, err)
		return ""
	}
	return name
}

func (s *Server) mintActionToken(w http.ResponseWriter, r *http.Request) {
	var req userActionRequest
	name := s.frontendJSON(w, r, &req)
	if name == "" {
		return
	}
	m, err := s.actions.MintForUser(r.Context(), req.request(name, req.UserID))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, mintedOf(m))
}

// consumedBody answers a redemption with the token's claims.
type consumedBody struct {
	TokenID                  string   `json:"token_id"`
	Action                   string   `json:"action"`
	UserID                   string   `json:"user_id"`
	AdminInitiated           bool     `json:"admin_initiated"`
	ClientID                 string   `json:"client_id,omitempty"`
	RedirectURI              string   `json:"redirect_uri,omitempty"`
	Email                    string   `json:"email,omitempty"`
	RequiredActions          []string `json:"required_actions,omitempty"`
	AuthSessionID            string   `json:"auth_session_id,omitempty"`
	IdentityProviderAlias    string   `json:"identity_provider_alias,omitempty"`
	IdentityProviderUsername string   `json:"identity_provider_username,omitempty"`
	IssuedAt                 int64    `json:"issued_at"`
	ExpiresAt                int64    `json:"expires_at"`
}

func (s *Server) consumeActionToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	name := s.frontendJSON(w, r, &req)
	if name == "" {
		return
	}
	t, err := s.actions.Consume(r.Context(), name, req.Token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, consumedBody{
		TokenID: t.ID, Action: t.Action, UserID: t.Subject, AdminInitiated: t.AdminInitiated, ClientID: t.ClientID,
		RedirectURI: t.RedirectURI, Email: t.Email, RequiredActions: t.Required, AuthSessionID: t.AuthSessionID,
		IdentityProviderAlias: t.IdentityProviderAlias, IdentityProviderUsername: t.IdentityProviderUsername,
		IssuedAt: t.IssuedAt.Unix(), ExpiresAt: t.Expiry.Unix(),
	})
}

// adminMintActionToken mints an admin-initiated token for the user in the path.
func (s *Server) adminMintActionToken(w http.ResponseWriter, r *http.Request) error {
	if s.actions == nil {
		return admin.ErrNotConfigured
	}
	var req adminActionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ar := req.request(r.PathValue("realm"), r.PathValue("id"))
	var err error
	if ar.Lifespan, err = lifespanSeconds(req.Lifespan, req.Lifespan != 0); err != nil {
		return err
	}
	m, err := s.actions.MintForAdmin(r.Context(), ar)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, mintedOf(m))
	return nil
}

// adminExecuteActionsEmail is Keycloak's PUT .../users/{id}/execute-actions-email: query
// parameters redirect_uri, client_id and lifespan, the required actions as a JSON array in
// the body. Keycloak answers 204 and emails the user a link; sessiond has no mailer, so it
// answers 200 with the execute-actions token, for the caller to deliver.
func (s *Server) adminExecuteActionsEmail(w http.ResponseWriter, r *http.Request) error {
	if s.actions == nil {
		return admin.ErrNotConfigured
	}
	q := r.URL.Query()
	var lifespan time.Duration
	if v := q.Get("lifespan"); v != "" {
		n, _ := strconv.ParseInt(v, 10, 64) // not a number: 0, refused below
		var err error
		if lifespan, err = lifespanSeconds(n, true); err != nil {
			return err
		}
	}
	var actions []string
	if r.ContentLength != 0 || strings.TrimSpace(r.Header.Get("Content-Type")) != "" {
		if err := decodeJSON(w, r, &actions); err != nil {
			return err
		}
	}
	m, err := s.actions.MintForAdmin(r.Context(), actiontoken.Request{
		Realm: r.PathValue("realm"), UserID: r.PathValue("id"), Action: "execute-actions",
		ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"), RequiredActions: actions,
		Lifespan: lifespan,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, mintedOf(m))
	return nil
}

// lifespanSeconds turns an administrator's lifespan in seconds into a duration; given, it
// must be from 1 s to actiontoken.MaxLifespan (checked here too, before the multiplication
// could overflow).
func lifespanSeconds(n int64, given bool) (time.Duration, error) {
	limit := int64(actiontoken.MaxLifespan / time.Second)
	if given && (n <= 0 || n > limit) {
		return 0, badRequest("lifespan must be a whole number of seconds from 1 to %d", limit)
	}
	return time.Duration(n) * time.Second, nil
}
