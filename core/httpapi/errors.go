package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/actiontoken"
	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/dpop"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/spi"
)

// statusClientClosedRequest answers a request whose caller went away before it was done
// (nginx's 499): nobody reads it, but logs, audit events and metrics show it as the
// caller's doing, not as a server failure.
const statusClientClosedRequest = 499

// retryAfter is what a client is told to wait when a provider is unavailable: a plugin
// restart takes a few hundred milliseconds, a database failover longer, so one second is
// the shortest honest hint.
const retryAfter = time.Second

// errorBody is the OAuth 2.0 error shape (RFC 6749 §5.2), used for every error answer.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// SessionLimitExceeded is the error code of a login a session limit refused; its
// error_description is the realm's sessionLimits.errorMessage, for the front-end to show.
const SessionLimitExceeded = "session_limit_exceeded"

// IdempotencyKeyReused is the error code of an open whose Idempotency-Key opened a session
// with a different request (HTTP 422).
const IdempotencyKeyReused = "idempotency_key_reused"

// errBodyTooLarge marks a request body over maxBody.
var errBodyTooLarge = errors.New("request body too large")

// oauthStatus is the HTTP status of each OAuth error code (RFC 6749 §5.2, RFC 7009).
var oauthStatus = map[string]int{
	session.InvalidRequest:         http.StatusBadRequest,
	session.InvalidClient:          http.StatusUnauthorized,
	session.InvalidGrant:           http.StatusBadRequest,
	session.UnauthorizedClient:     http.StatusBadRequest,
	session.UnsupportedGrantType:   http.StatusBadRequest,
	session.InvalidScope:           http.StatusBadRequest,
	session.UnsupportedTokenType:   http.StatusBadRequest,
	session.TemporarilyUnavailable: http.StatusServiceUnavailable,
	session.InvalidDPoPProof:       http.StatusBadRequest, // RFC 9449 §5
}

// actionStatus is the HTTP status of each refusal of an action token (core/actiontoken): a
// token used before conflicts with that use; the rest are bad requests.
var actionStatus = map[string]int{
	actiontoken.InvalidRequest: http.StatusBadRequest,
	actiontoken.Invalid:        http.StatusBadRequest,
	actiontoken.Expired:        http.StatusBadRequest,
	actiontoken.Revoked:        http.StatusBadRequest,
	actiontoken.Used:           http.StatusConflict,
}

// writeError maps an error from the core or a provider to its HTTP answer. It is the one
// place where errors meet status codes.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, body := s.classify(r, err)
	// A refusal for want of a (fresh) server nonce carries one to retry with (RFC 9449 §8).
	if de := (*dpop.Error)(nil); errors.As(err, &de) && de.Nonce != "" {
		w.Header().Set(dpop.NonceHeader, de.Nonce)
	}
	var throttled *authfail.ThrottledError
	switch code {
	case http.StatusTooManyRequests:
		if errors.As(err, &throttled) {
			w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	case http.StatusUnauthorized:
		// The front-end and admin APIs take a bearer credential (RFC 6750); the OAuth
		// endpoints authenticate clients with HTTP Basic (RFC 6749 §2.3.1). The account API
		// takes the person's access token and says why it refused one (RFC 6750 §3); a
		// protected resource refuses a DPoP-bound token's request with a DPoP challenge
		// (RFC 9449 §7.1).
		var refusedToken *account.TokenError
		if de := (*dpop.Error)(nil); errors.As(err, &de) {
			w.Header().Set("WWW-Authenticate", dpop.Challenge(body.Error, body.Description))
		} else if errors.As(err, &refusedToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond", error="invalid_token"`)
		} else if errors.Is(err, errUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="sessiond"`)
		}
	}
	if code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	}
	writeJSON(w, code, body)
}

// classify maps err, met while serving r, to a status and an answer.
func (s *Server) classify(r *http.Request, err error) (int, errorBody) {
	var se *session.Error
	var ae *actiontoken.Error
	var throttled *authfail.ThrottledError
	var limited *sessionlimit.ExceededError
	var refusedToken *account.TokenError
	var proof *dpop.Error
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The caller went away (the core ended its work on the request's context). A
		// cancellation while the caller still waits is the server's own: a 500 below.
		return statusClientClosedRequest, errorBody{Error: "client_closed_request", Description: "the request was cancelled by its caller"}
	case errors.As(err, &se):
		code, ok := oauthStatus[se.Code]
		if !ok {
			code = http.StatusBadRequest
		}
		return code, errorBody{Error: se.Code, Description: se.Description}
	case errors.Is(err, session.ErrIdempotencyKeyReused):
		// The IETF httpapi Idempotency-Key draft's answer to a key reused with another request.
		return http.StatusUnprocessableEntity, errorBody{Error: IdempotencyKeyReused, Description: err.Error()}
	case errors.As(err, &refusedToken):
		// An access token the account API does not take: of another kind, expired, or of
		// a session that has ended (RFC 6750 §3.1).
		return http.StatusUnauthorized, errorBody{Error: "invalid_token", Description: refusedToken.Description}
	case errors.As(err, &proof):
		// RFC 9449: the token endpoint answers 400 (§5, §8); a protected resource 401 with
		// a DPoP challenge (§7.1, §9).
		if proof.Resource {
			return http.StatusUnauthorized, errorBody{Error: proof.Code, Description: proof.Description}
		}
		return http.StatusBadRequest, errorBody{Error: proof.Code, Description: proof.Description}
	case errors.As(err, &limited):
		// 409, not 429: the login conflicts with the sessions that exist, and waiting does
		// not help; ending one of them does (Keycloak's limiter answers with an error page).
		return http.StatusConflict, errorBody{Error: SessionLimitExceeded, Description: limited.Message}
	case errors.As(err, &ae):
		code, ok := actionStatus[ae.Code]
		if !ok {
			code = http.StatusBadRequest
		}
		return code, errorBody{Error: ae.Code, Description: ae.Description}
	case errors.As(err, &throttled):
		// The OAuth endpoints answer in their own vocabulary (RFC 8628 §3.5's slow_down, the
		// one OAuth error that means "too fast"); the front-end and admin APIs in theirs.
		if throttled.Kind == authfail.KindClient {
			return http.StatusTooManyRequests, errorBody{Error: "slow_down", Description: err.Error()}
		}
		return http.StatusTooManyRequests, errorBody{Error: "too_many_requests", Description: err.Error()}
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, errorBody{Error: session.InvalidRequest, Description: err.Error()}
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, errorBody{Error: "unauthorized", Description: err.Error()}
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, errorBody{Error: "forbidden", Description: err.Error()}
	case errors.Is(err, admin.ErrNotConfigured):
		return http.StatusNotImplemented, errorBody{Error: "not_implemented", Description: err.Error()}
	case errors.Is(err, spi.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, errorBody{Error: session.TemporarilyUnavailable, Description: "a provider is unavailable; retry shortly"}
	case errors.Is(err, spi.ErrNotFound):
		return http.StatusNotFound, errorBody{Error: "not_found", Description: err.Error()}
	case errors.Is(err, spi.ErrInvalid):
		// Also text no store can hold (a NUL, invalid UTF-8), refused at the door (text.go)
		// or, should one get past, by the store.
		return http.StatusBadRequest, errorBody{Error: session.InvalidRequest, Description: err.Error()}
	case errors.Is(err, spi.ErrConflict), errors.Is(err, spi.ErrExists):
		return http.StatusConflict, errorBody{Error: "conflict", Description: err.Error()}
	default:
		// The details go to the log, not to the caller.
		return http.StatusInternalServerError, errorBody{Error: "server_error", Description: "internal error"}
	}
}
