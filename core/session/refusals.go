package session

// refusals is the closed set of Event.Refusal, in the order the documentation lists it.
var refusals = []string{
	RefusedInvalidToken, RefusedTokenExpired, RefusedNotBefore, RefusedStaleToken,
	RefusedUnknownSession, RefusedLoggedOut, RefusedSessionExpired, RefusedClientSession,
	RefusedNotAllowed, RefusedInvalidScope, RefusedReuse, RefusedConflict, RefusedSessionLimit, RefusedDPoPBinding, RefusedOther,
}

// Refusals returns the closed set of refusal classes (the Refused* values).
func Refusals() []string { return append([]string(nil), refusals...) }

// RefusalClass keeps a refusal in the closed set whatever a caller put in an event: a
// Refused* value is itself, anything else (empty, or text a newer or foreign emitter made
// up) is RefusedOther. The metrics' reason label and the event log's reason field both use
// it, so that the two always agree.
func RefusalClass(r string) string {
	for _, known := range refusals {
		if r == known {
			return r
		}
	}
	return RefusedOther
}
