package actiontoken

// The codes of a refused request or token: what a front-end branches on.
const (
	InvalidRequest = "invalid_request"      // a field is missing, too long or not allowed
	Invalid        = "invalid_action_token" // malformed, forged, of another kind or realm
	Expired        = "expired_action_token"
	Revoked        = "revoked_action_token" // genuine, but the realm revoked it since (not-before, client disabled)
	Used           = "used_action_token"    // redeemed before: valid once
)

// Error is a refused request or token. Description is safe to return to the caller.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(description string) *Error {
	return &Error{Code: InvalidRequest, Description: description}
}
