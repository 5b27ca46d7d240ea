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
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}
