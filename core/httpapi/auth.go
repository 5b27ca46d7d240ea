package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
)

var (
	errUnauthenticated = errors.New("missing or invalid credentials")
	errForbidden       = errors.New("credentials not allowed here")
)

// bearer checks an "Authorization: Bearer <token>" header against the configured
// credential in constant time. An unset credential refuses everyone.
func bearer(r *http.Request, want string) error {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
		return fmt.Errorf("%w: an Authorization: Bearer header is required", errUnauthenticated)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errUnauthenticated
	}
	return nil
}

// authenticateClient implements the token endpoint's client authentication (RFC 6749
// §2.3): client_secret_basic, client_secret_post, or a public client naming itself with
// client_id. It returns the client's clientId.
func (s *Server) authenticateClient(r *http.Request, realmName string) (string, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", &session.Error{Code: session.InvalidClient, Description: "malformed client credentials in the Authorization header"}
		}
		if r.PostForm.Has("client_secret") {
			return "", &session.Error{Code: session.InvalidRequest, Description: "more than one client authentication method used"}
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return "", &session.Error{Code: session.InvalidClient, Description: "client authentication required (client_secret_basic, client_secret_post or client_id for a public client)"}
	}
	_, c, ok := s.realms.Client(realmName, id)
	if !ok {
		return "", &session.Error{Code: session.InvalidClient, Description: "invalid client or invalid client credentials"}
	}
	if !c.Enabled {
		return "", &session.Error{Code: session.UnauthorizedClient, Description: "client disabled"}
	}
	if c.PublicClient {
		return c.ClientID, nil
	}
	if secret == "" || !c.Secret.Matches(secret) {
		return "", &session.Error{Code: session.InvalidClient, Description: "invalid client or invalid client credentials"}
	}
	return c.ClientID, nil
}

// knownRealm answers 404 for a realm sessiond does not serve, before anything else reads it.
func (s *Server) knownRealm(name string) (*realm.Realm, error) {
	r, ok := s.realms.Realm(name)
	if !ok || !r.Enabled {
		return nil, session.ErrUnknownRealm
	}
	return r, nil
}
