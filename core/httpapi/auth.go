package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
)

var (
	errUnauthenticated = errors.New("missing or invalid credentials")
	errForbidden       = errors.New("credentials not allowed here")
	// errNoBearer is a request without a bearer credential at all.
	errNoBearer = fmt.Errorf("%w: an Authorization: Bearer header is required", errUnauthenticated)
)

// bearer checks an "Authorization: Bearer <token>" header against the configured
// credential in constant time. An unset credential refuses everyone.
func bearer(r *http.Request, want string) error {
	got, ok := bearerCredential(r)
	if !ok {
		return errNoBearer
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errUnauthenticated
	}
	return nil
}

// bearerCredential is the credential of an "Authorization: Bearer <token>" header.
func bearerCredential(r *http.Request) (string, bool) {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return got, ok && strings.EqualFold(scheme, "Bearer") && got != ""
}

// authBearer authenticates a bearer credential of kind (the front-end's, or the
// administrator's outside the admin API) on a route of realmName: a caller that failed too
// often is refused before the comparison, and every refusal is audited.
func (s *Server) authBearer(r *http.Request, kind authfail.Kind, realmName, want string) error {
	a := authfail.Attempt{Kind: kind, Realm: realmName, Addr: remoteIP(r)}
	if err := s.guard.Check(a); err != nil {
		s.refused(r, authfail.Refusal{Attempt: a, Reason: authfail.ReasonThrottled}, err)
		return err
	}
	if err := bearer(r, want); err != nil {
		reason := authfail.ReasonInvalid
		if errors.Is(err, errNoBearer) {
			reason = authfail.ReasonMissing
		}
		s.refused(r, authfail.Refusal{Attempt: a, Reason: reason}, err)
		return err
	}
	return nil
}

// refused hands a refused authentication to the guard, with the status and description
// the caller is answered.
func (s *Server) refused(r *http.Request, ref authfail.Refusal, err error) {
	code, body := s.classify(r, err)
	ref.Status, ref.Detail = code, body.Description
	s.guard.Refused(ref)
}

// authenticateClient implements the token endpoint's client authentication (RFC 6749
// §2.3): client_secret_basic, client_secret_post, or a public client naming itself with
// client_id. It returns the client's clientId. A caller that failed too often is refused
// before the secret is compared; every refusal is audited.
func (s *Server) authenticateClient(r *http.Request, realmName string) (string, error) {
	id, secret, basic := r.BasicAuth()
	a := authfail.Attempt{Kind: authfail.KindClient, Realm: realmName, ClientID: r.PostForm.Get("client_id"), Addr: remoteIP(r)}
	if basic {
		a.ClientID = id
		if decoded, err := url.QueryUnescape(id); err == nil {
			a.ClientID = decoded
		}
	}
	if err := s.guard.Check(a); err != nil {
		s.refused(r, authfail.Refusal{Attempt: a, Reason: authfail.ReasonThrottled}, err)
		return "", err
	}
	c, reason, err := s.clientCredentials(r, realmName, id, secret, basic)
	if err != nil {
		s.refused(r, authfail.Refusal{Attempt: a, Reason: reason}, err)
		return "", err
	}
	if !c.PublicClient {
		s.guard.Succeeded(a)
	}
	return c.ClientID, nil
}

// clientCredentials checks the client's credentials; on failure it says why (an
// authfail.Reason*).
func (s *Server) clientCredentials(r *http.Request, realmName, id, secret string, basic bool) (*realm.Client, string, error) {
	if basic {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, authfail.ReasonMalformed, &session.Error{Code: session.InvalidClient, Description: "malformed client credentials in the Authorization header"}
		}
		if r.PostForm.Has("client_secret") {
			return nil, authfail.ReasonMalformed, &session.Error{Code: session.InvalidRequest, Description: "more than one client authentication method used"}
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, authfail.ReasonMissing, &session.Error{Code: session.InvalidClient, Description: "client authentication required (client_secret_basic, client_secret_post or client_id for a public client)"}
	}
	_, c, ok := s.realms.Client(realmName, id)
	if !ok {
		return nil, authfail.ReasonUnknownClient, &session.Error{Code: session.InvalidClient, Description: "invalid client or invalid client credentials"}
	}
	if !c.Enabled {
		return nil, authfail.ReasonDisabled, &session.Error{Code: session.UnauthorizedClient, Description: "client disabled"}
	}
	if c.PublicClient {
		return c, "", nil
	}
	if secret == "" || !c.Secret.Matches(secret) {
		return nil, authfail.ReasonInvalidSecret, &session.Error{Code: session.InvalidClient, Description: "invalid client or invalid client credentials"}
	}
	return c, "", nil
}

// knownRealm answers 404 for a realm sessiond does not serve, before anything else reads it.
func (s *Server) knownRealm(name string) (*realm.Realm, error) {
	r, ok := s.realms.Realm(name)
	if !ok || !r.Enabled {
		return nil, session.ErrUnknownRealm
	}
	return r, nil
}
