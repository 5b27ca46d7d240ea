package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/core/dpop"
	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/internal/jsonkeys"
)

// maxBody bounds every request body: the largest legitimate one is a form carrying a
// token (16 KiB at most) or a front-end's JSON login request.
const maxBody = 64 << 10

// Sessions is the session service as the HTTP layer uses it; *session.Service implements it.
type Sessions interface {
	Open(ctx context.Context, req session.OpenRequest) (*session.Grant, error)
	Attach(ctx context.Context, req session.AttachRequest) (*session.Grant, error)
	Refresh(ctx context.Context, req session.RefreshRequest) (*session.Grant, error)
	IntrospectHint(ctx context.Context, realmName, raw, hint string) (*session.Introspection, error)
	Revoke(ctx context.Context, realmName, clientID, raw string) error
	Logout(ctx context.Context, req session.LogoutRequest) error
	Explain(ctx context.Context, realmName, sessionID string) (*session.Explanation, error)
}

// KeySets publishes a realm's public signing keys; *token.KeyManager implements it.
type KeySets interface {
	JWKS(ctx context.Context, realm string) (jose.JSONWebKeySet, error)
}

func (s *Server) oidcRoutes() {
	s.mux.HandleFunc("GET /realms/{realm}/.well-known/openid-configuration", s.discovery)
	s.mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/certs", s.certs)
	s.mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token", s.token)
	s.mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token/introspect", s.introspect)
	s.mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/revoke", s.revoke)
	s.mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/logout", s.logout)
}

// discoveryDoc is the subset of OpenID Connect Discovery 1.0 that sessiond serves: what it
// supports and nothing else. Without the login flows (Deps.Login) there is no
// authorization, userinfo or end-session endpoint and no authorization_code grant.
type discoveryDoc struct {
	Issuer                           string   `json:"issuer"`
	AuthorizationEndpoint            string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                    string   `json:"token_endpoint"`
	UserinfoEndpoint                 string   `json:"userinfo_endpoint,omitempty"`
	IntrospectionEndpoint            string   `json:"introspection_endpoint"`
	RevocationEndpoint               string   `json:"revocation_endpoint"`
	EndSessionEndpoint               string   `json:"end_session_endpoint,omitempty"`
	JWKSURI                          string   `json:"jwks_uri"`
	GrantTypes                       []string `json:"grant_types_supported"`
	ResponseTypes                    []string `json:"response_types_supported"`
	SubjectTypes                     []string `json:"subject_types_supported"`
	IDTokenAlgs                      []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethods         []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods    []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                  []string `json:"scopes_supported"`
	ResponseModes                    []string `json:"response_modes_supported,omitempty"`
	CodeChallengeMethods             []string `json:"code_challenge_methods_supported,omitempty"`
	PromptValues                     []string `json:"prompt_values_supported,omitempty"`
	ClaimsParameterSupported         bool     `json:"claims_parameter_supported"`
	RequestParameterSupported        bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported     bool     `json:"request_uri_parameter_supported"`
	AuthorizationResponseIss         bool     `json:"authorization_response_iss_parameter_supported"`
	BackchannelLogoutSupported       bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSession         bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported      bool     `json:"frontchannel_logout_supported"`
	FrontchannelLogoutSession        bool     `json:"frontchannel_logout_session_supported"`
	DPoPAlgs                         []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	iss := s.issuer(name)
	oidc := iss + "/protocol/openid-connect"
	auth := []string{"client_secret_basic", "client_secret_post", "none"}
	doc := discoveryDoc{
		Issuer:                           iss,
		TokenEndpoint:                    oidc + "/token",
		IntrospectionEndpoint:            oidc + "/token/introspect",
		RevocationEndpoint:               oidc + "/revoke",
		JWKSURI:                          oidc + "/certs",
		GrantTypes:                       []string{"client_credentials", "refresh_token"},
		ResponseTypes:                    []string{},
		SubjectTypes:                     []string{"public"},
		IDTokenAlgs:                      []string{"ES256", "RS256"},
		TokenEndpointAuthMethods:         auth,
		IntrospectionEndpointAuthMethods: auth[:2],
		RevocationEndpointAuthMethods:    auth,
		ScopesSupported:                  []string{"openid", "offline_access"},
		BackchannelLogoutSupported:       true,
		BackchannelLogoutSession:         true,
	}
	if s.proofs != nil {
		doc.DPoPAlgs = dpop.Algorithms()
	}
	if s.login != nil {
		doc.AuthorizationEndpoint, doc.UserinfoEndpoint, doc.EndSessionEndpoint = oidc+"/auth", oidc+"/userinfo", oidc+"/logout"
		doc.GrantTypes = []string{"authorization_code", "client_credentials", "refresh_token"}
		doc.ResponseTypes = []string{"code", "token", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}
		doc.ResponseModes = []string{"query", "fragment", login.FormPost}
		doc.CodeChallengeMethods = []string{"S256"}
		doc.PromptValues = []string{"none", "login", "consent", "select_account"}
		doc.AuthorizationResponseIss = true
		doc.FrontchannelLogoutSupported, doc.FrontchannelLogoutSession = true, true
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) certs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if _, err := s.knownRealm(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	set, err := s.keys.JWKS(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

// tokenResponse is RFC 6749 §5.1 plus Keycloak's members, so Keycloak adapters read it too.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	TokenType        string `json:"token_type"`
	NotBeforePolicy  int64  `json:"not-before-policy"`
	SessionState     string `json:"session_state,omitempty"`
	Scope            string `json:"scope,omitempty"`
}

func grantResponse(g *session.Grant) tokenResponse {
	resp := tokenResponse{
		AccessToken:      g.AccessToken,
		ExpiresIn:        g.ExpiresIn(),
		RefreshExpiresIn: g.RefreshExpiresIn(),
		RefreshToken:     g.RefreshToken,
		TokenType:        g.TokenType,
		Scope:            g.Scope,
	}
	if !g.Transient {
		resp.SessionState = g.SessionID
	}
	if !g.NotBefore.IsZero() {
		resp.NotBeforePolicy = g.NotBefore.Unix()
	}
	return resp
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	err := s.form(w, r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Every grant: the tokens are bound to the proof's key (dpop.go).
	jkt, err := s.tokenProof(w, r, name, client)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if rt == "" {
			s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "missing refresh_token"})
			return
		}
		g, err := s.sessions.Refresh(r.Context(), session.RefreshRequest{
			Realm: name, Client: client, RefreshToken: rt, Scope: r.PostForm.Get("scope"), JKT: jkt,
			IPAddress: remoteIP(r), UserAgent: r.UserAgent(),
		})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, grantResponse(g))
	case "authorization_code":
		s.codeGrant(w, r, name, client, jkt)
	case "client_credentials":
		s.clientCredentialsGrant(w, r, name, client, jkt)
	case "":
		s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "missing grant_type"})
	default:
		s.writeError(w, r, &session.Error{Code: session.UnsupportedGrantType, Description: fmt.Sprintf("unsupported grant_type %q: sessiond's token endpoint serves authorization_code, client_credentials and refresh_token", gt)})
	}
}

// ServiceAccountPrefix names a client's service account: the sub and preferred_username of
// its client_credentials tokens are this prefix and the clientId, as Keycloak names the
// service account user (sessiond has no user store to give it a UUID).
const ServiceAccountPrefix = "service-account-"

// clientCredentialsGrant is RFC 6749 §4.4 for a confidential client with a service account
// (Keycloak's serviceAccountsEnabled): an access token of a transient session, never stored,
// with no refresh token, as Keycloak issues by default.
func (s *Server) clientCredentialsGrant(w http.ResponseWriter, r *http.Request, realmName, clientID, jkt string) {
	_, c, _ := s.realms.Client(realmName, clientID)
	if c == nil || c.PublicClient || !c.ServiceAccountsEnabled {
		s.writeError(w, r, &session.Error{Code: session.UnauthorizedClient, Description: "the client has no service account (serviceAccountsEnabled) or is public"})
		return
	}
	g, err := s.sessions.Open(r.Context(), session.OpenRequest{
		Realm: realmName, ClientID: clientID, UserID: ServiceAccountPrefix + clientID, Username: ServiceAccountPrefix + clientID,
		AuthMethod: "client_credentials", Scope: trimScope(r.PostForm.Get("scope")), Transient: true, IPAddress: remoteIP(r), JKT: jkt,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, grantResponse(g))
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if err := s.form(w, r, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// As in Keycloak, only a client that proves who it is may learn about tokens: a public
	// client's id is no secret.
	if _, c, _ := s.realms.Client(name, client); c != nil && c.PublicClient {
		s.writeError(w, r, &session.Error{Code: session.InvalidClient, Description: "public clients may not introspect tokens"})
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "missing token"})
		return
	}
	res, err := s.sessions.IntrospectHint(r.Context(), name, raw, r.PostForm.Get("token_type_hint"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if err := s.form(w, r, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "missing token"})
		return
	}
	if err := s.sessions.Revoke(r.Context(), name, client, raw); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// logout is Keycloak's back-channel logout by refresh token: the client authenticates and
// presents the session's refresh token; 204 when the session has ended. A token refresh
// would refuse (rotated out, revoked by a not-before policy, …) is refused the same way,
// 400 invalid_grant, and the session goes on (session.Service.Logout).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("realm")
	if err := s.form(w, r, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The same endpoint serves RP-initiated logout, a browser's form without a refresh
	// token or client authentication, as Keycloak's does.
	if s.login != nil && !r.PostForm.Has("refresh_token") && r.Header.Get("Authorization") == "" && !r.PostForm.Has("client_secret") {
		s.endSession(w, r)
		return
	}
	client, err := s.authenticateClient(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		s.writeError(w, r, &session.Error{Code: session.InvalidRequest, Description: "missing refresh_token"})
		return
	}
	if err := s.sessions.Logout(r.Context(), session.LogoutRequest{Realm: name, Client: client, RefreshToken: rt}); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// form checks the realm, then reads an application/x-www-form-urlencoded body of at most
// maxBody bytes into r.PostForm.
func (s *Server) form(w http.ResponseWriter, r *http.Request, realmName string) error {
	if _, err := s.knownRealm(realmName); err != nil {
		return err
	}
	if !isForm(r.Header.Get("Content-Type")) {
		return &session.Error{Code: session.InvalidRequest, Description: "the body must be application/x-www-form-urlencoded"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := parseForm(r); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, maxBody)
		}
		return &session.Error{Code: session.InvalidRequest, Description: "malformed form body"}
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			// RFC 6749 §3.2: parameters must not be included more than once.
			return &session.Error{Code: session.InvalidRequest, Description: "parameter " + k + " given more than once"}
		}
	}
	return checkValues("form parameter", r.PostForm)
}

// isForm reports whether a Content-Type is application/x-www-form-urlencoded. The type as
// clients send it is matched as it is; any other spelling (parameters, case) is parsed.
func isForm(contentType string) bool {
	const form = "application/x-www-form-urlencoded"
	if contentType == form {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == form
}

// parseForm is r.ParseForm for the requests form checks, whose body is a form: r.PostForm
// and the error are ParseForm's (the body's, else the query's), but the Content-Type is
// not parsed again and the body and the query are not merged into r.Form, which nothing
// reads (r.FormValue would merge them). That halves what ParseForm allocated for every
// token request.
func parseForm(r *http.Request) error {
	if r.PostForm != nil { // read already
		return nil
	}
	var err error
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		var body []byte
		if body, err = io.ReadAll(r.Body); err == nil {
			r.PostForm, err = url.ParseQuery(string(body))
		}
	}
	if r.PostForm == nil {
		r.PostForm = url.Values{}
	}
	if r.URL.RawQuery != "" {
		if _, e := url.ParseQuery(r.URL.RawQuery); err == nil {
			err = e
		}
	}
	return err
}

// decodeJSON reads a JSON body of at most maxBody bytes into v, refusing unknown fields,
// trailing data, duplicate keys and keys that match a field only by case.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &session.Error{Code: session.InvalidRequest, Description: "the body must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, maxBody)
		}
		return &session.Error{Code: session.InvalidRequest, Description: "the body could not be read"}
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD: refuse it instead.
	if err := checkText("the JSON body", string(body)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &session.Error{Code: session.InvalidRequest, Description: "malformed JSON body: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &session.Error{Code: session.InvalidRequest, Description: "malformed JSON body: data after the object"}
	}
	// encoding/json keeps the last of a duplicate key and fills a field from a key that
	// matches it only by case; a proxy or an audit log may read the first or the exact one.
	if err := jsonkeys.Check(body, v); err != nil {
		return &session.Error{Code: session.InvalidRequest, Description: "refused JSON body: " + err.Error()}
	}
	// A \u0000 escape decodes to NUL.
	return checkDecoded(reflect.ValueOf(v), "JSON")
}

// trimScope normalises a space-separated scope list.
func trimScope(s string) string { return strings.Join(strings.Fields(s), " ") }
