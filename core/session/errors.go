package session

import "fmt"

// OAuth 2.0 error codes (RFC 6749 §5.2, RFC 7009 §2.2.1) the service answers with.
const (
	InvalidRequest         = "invalid_request"
	InvalidClient          = "invalid_client"
	InvalidGrant           = "invalid_grant"
	UnauthorizedClient     = "unauthorized_client"
	UnsupportedGrantType   = "unsupported_grant_type"
	InvalidScope           = "invalid_scope"
	UnsupportedTokenType   = "unsupported_token_type"
	TemporarilyUnavailable = "temporarily_unavailable"
	// InvalidDPoPProof is RFC 9449's: the request lacks the DPoP proof its refresh token is
	// bound to (core/dpop refuses the proofs themselves with the same code).
	InvalidDPoPProof = "invalid_dpop_proof"
)

// How a presented refresh token relates to its client session's rotation lineage when
// Revoke Refresh Token is on: Error.Reuse, Grant.Reuse and Event.Reuse.
const (
	// ReuseWithinGrace: the token rotated out moments ago, presented again inside the
	// realm's rotation grace window (two tabs refreshing at once). Allowed.
	ReuseWithinGrace = "within grace"
	// ReuseAllowed: the token rotated out, presented again within Refresh Token Max Reuse.
	ReuseAllowed = "within max reuse"
	// ReuseConcurrent: reused beyond the limit within a second of the last use.
	ReuseConcurrent = "concurrent"
	// ReuseRepeated: reused beyond the limit, later than that.
	ReuseRepeated = "reuse"
	// ReuseStaleLineage: an older token than the one rotated out last.
	ReuseStaleLineage = "stale lineage"
)

// Why a refresh was refused, as Error.Refusal and Event.Refusal: a small closed set that
// metrics may use as a label and SIEM rules may match, where Description is free text.
const (
	RefusedInvalidToken   = "invalid_token"   // bad signature, shape, type or realm; another client's or user's
	RefusedTokenExpired   = "token_expired"   // the token's own exp has passed
	RefusedNotBefore      = "not_before"      // issued before the realm's or the client's not-before
	RefusedStaleToken     = "stale_token"     // issued before its user session started
	RefusedUnknownSession = "unknown_session" // no such user session (or it ended meanwhile)
	RefusedLoggedOut      = "logged_out"
	RefusedSessionExpired = "session_expired"
	RefusedClientSession  = "client_session" // the client session is missing or expired
	RefusedNotAllowed     = "not_allowed"    // offline tokens not allowed for the client
	RefusedInvalidScope   = "invalid_scope"
	RefusedReuse          = "reuse" // a rotated refresh token presented again (Error.Reuse says how)
	RefusedConflict       = "conflict"
	// RefusedOutcomeUnknown: the write's commit got no answer (usersessions.ErrOutcomeUnknown);
	// it may have been applied. The client is told to retry (503), which is safe: the old
	// refresh token still works within the rotation's grace window.
	RefusedOutcomeUnknown = "outcome_unknown"
	RefusedOther          = "other"
	// RefusedSessionLimit: a login over a session limit whose behaviour is Deny new session.
	RefusedSessionLimit = "session_limit"
	// RefusedDPoPBinding: a DPoP-bound refresh token presented without a proof of its key,
	// or with a proof of another key (RFC 9449 §5).
	RefusedDPoPBinding = "dpop_binding"
)

// Error is a refusal with an OAuth error code and a precise description. Nothing was
// changed in the store, except where Ended says a client session was ended on reuse.
type Error struct {
	Code        string
	Description string
	// Reuse classifies a refused refresh-token reuse ("" for other refusals).
	Reuse string
	// Ended is set when the refusal ended the client session (the realm's
	// EndClientSessionOnRefreshTokenReuse).
	Ended bool
	// Refusal classifies an invalid_grant of a refresh (a Refused* value; "" elsewhere).
	Refusal string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

// refuse is an invalid_grant classified for metrics and the event log.
func refuse(kind, format string, args ...any) *Error {
	e := errorf(InvalidGrant, format, args...)
	e.Refusal = kind
	return e
}

// refusalClass is e's Refused* class; refusals decided without one (a reuse, a scope, a check
// added later) still fall into the closed set.
func (e *Error) refusalClass() string {
	switch {
	case e.Refusal != "":
		return e.Refusal
	case e.Reuse != "":
		return RefusedReuse
	case e.Code == InvalidScope:
		return RefusedInvalidScope
	}
	return RefusedOther
}
