package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/sessiond/sessiond/core/dpop"
)

// Proofs checks DPoP proofs (RFC 9449) and makes server nonces; *dpop.Checker implements it.
type Proofs interface {
	Check(ctx context.Context, raw string, req dpop.Request) (*dpop.Proof, error)
	Nonce(ctx context.Context, realm string) (string, error)
}

var _ Proofs = (*dpop.Checker)(nil)

// tokenProof checks the DPoP proof of a token request of client in realmName and returns
// its key's thumbprint, "" for a request without one (then its tokens are bearer tokens,
// unless the client must use DPoP). Where the realm or client asks for server nonces, a
// fresh one goes in the DPoP-Nonce header of the answer, whatever it is (RFC 9449 §8).
func (s *Server) tokenProof(w http.ResponseWriter, r *http.Request, realmName, clientID string) (string, error) {
	rlm, err := s.knownRealm(realmName)
	if err != nil {
		return "", err
	}
	c, _ := rlm.Client(clientID)
	values := r.Header.Values(dpop.Header)
	if len(values) > 1 {
		return "", &dpop.Error{Code: dpop.InvalidProof, Description: "the request carries more than one DPoP header"}
	}
	if s.proofs == nil {
		if len(values) == 1 || (c != nil && c.DPoPBound) {
			return "", &dpop.Error{Code: dpop.InvalidProof, Description: "DPoP is not served here"}
		}
		return "", nil
	}
	nonce := rlm.DPoPNonceRequired(c)
	if nonce {
		n, err := s.proofs.Nonce(r.Context(), realmName)
		if err != nil {
			return "", err
		}
		w.Header().Set(dpop.NonceHeader, n)
	}
	if len(values) == 0 {
		if c != nil && c.DPoPBound {
			return "", &dpop.Error{Code: dpop.InvalidProof, Description: "client " + clientID + " must use DPoP: the token request must carry a DPoP proof"}
		}
		return "", nil
	}
	p, err := s.proofs.Check(r.Context(), values[0], dpop.Request{
		Realm: realmName, Method: r.Method, URL: s.issuer(realmName) + "/protocol/openid-connect/token", NonceRequired: nonce,
	})
	if err != nil {
		return "", err
	}
	return p.JKT, nil
}

// resourceProof reads an access token presented with the DPoP scheme at a protected
// resource of realmName (UserInfo, at path) and checks its proof, with the hash of the
// token (RFC 9449 §7). ok is false when the request does not use the DPoP scheme.
func (s *Server) resourceProof(r *http.Request, realmName, path string) (raw, jkt string, ok bool, err error) {
	scheme, got, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, dpop.Scheme) {
		return "", "", false, nil
	}
	refuse := func(code, desc string) (string, string, bool, error) {
		return "", "", true, &dpop.Error{Code: code, Description: desc, Resource: true}
	}
	if got == "" {
		return refuse("invalid_token", "the DPoP authorization has no access token")
	}
	values := r.Header.Values(dpop.Header)
	switch {
	case s.proofs == nil:
		return refuse(dpop.InvalidProof, "DPoP is not served here")
	case len(values) == 0:
		return refuse(dpop.InvalidProof, "a DPoP-bound access token needs a DPoP proof")
	case len(values) > 1:
		return refuse(dpop.InvalidProof, "the request carries more than one DPoP header")
	}
	rlm, err := s.knownRealm(realmName)
	if err != nil {
		return "", "", true, err
	}
	p, err := s.proofs.Check(r.Context(), values[0], dpop.Request{
		Realm: realmName, Method: r.Method, URL: s.issuer(realmName) + path, AccessToken: got, NonceRequired: rlm.DPoPNonce,
	})
	if de := (*dpop.Error)(nil); errors.As(err, &de) {
		de.Resource = true
	}
	if err != nil {
		return "", "", true, err
	}
	return got, p.JKT, true, nil
}
