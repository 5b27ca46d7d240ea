package session

import "testing"

// refusalClasses is the class (Event.Refusal) each refusal of TestRefreshChecksInOrder must
// have, by case name: metrics count refusals by it and SIEM rules match it.
var refusalClasses = map[string]string{
	"precondition: no token":                                                             RefusedOther,
	"1 signature: tampered signature, also another client's":                             RefusedInvalidToken,
	"1 signature: alg none":                                                              RefusedInvalidToken,
	"1 signature: truncated token":                                                       RefusedInvalidToken,
	"1 realm: signed by another realm's key":                                             RefusedInvalidToken,
	"2 type: an access token, also another client's":                                     RefusedInvalidToken,
	"2 type: expired refresh token (seed 002: bounded by SSO idle)":                      RefusedTokenExpired,
	"3 client: token of another client, also revoked by not-before":                      RefusedInvalidToken,
	"4 not-before: realm policy set to now (seed 000 revocation), also the client's":     RefusedNotBefore,
	"4 not-before: client policy, also the session gone":                                 RefusedNotBefore,
	"5 user session: gone":                                                               RefusedUnknownSession,
	"5 user session: logged out, also without its client session":                        RefusedLoggedOut,
	"5 user session: SSO idle shortened to 10m (seed 004), also the client session gone": RefusedSessionExpired,
	"6 client session: gone":                                                             RefusedClientSession,
	"6 client session: client idle override 5m (seed 000 advanced settings)":             RefusedClientSession,
	"7 offline: client no longer allowed offline tokens (seed 000 offline access)":       RefusedNotAllowed,
	"8 scope: more than granted (RFC 6749 section 6)":                                    RefusedInvalidScope,
	"9 rotation: a stale lineage (issue 4)":                                              RefusedReuse,
	"9 rotation: reuse beyond Refresh Token Max Reuse 0 (seed 002)":                      RefusedReuse,
}

// checkRefusalClass checks a refused event's class; a case not listed above must at least
// be classified.
func checkRefusalClass(t *testing.T, name string, ev Event) {
	t.Helper()
	want, listed := refusalClasses[name]
	switch {
	case listed && ev.Refusal != want:
		t.Errorf("refusal class %q, want %q", ev.Refusal, want)
	case !listed && (ev.Refusal == "" || ev.Refusal == RefusedOther):
		t.Errorf("refusal class %q: a refresh refusal falls into a named class", ev.Refusal)
	}
}

// Every refusal class a refusal can carry is named, and "other" catches the rest.
func TestRefusalOfUnclassifiedErrors(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"classified", refuse(RefusedNotBefore, "Stale token"), RefusedNotBefore},
		{"a reuse", &Error{Code: InvalidGrant, Reuse: ReuseRepeated}, RefusedReuse},
		{"a scope", errorf(InvalidScope, "Invalid scopes: admin"), RefusedInvalidScope},
		{"anything else", errorf(InvalidRequest, "Missing refresh token"), RefusedOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.refusalClass(); got != tc.want {
				t.Errorf("refusalClass() = %q, want %q", got, tc.want)
			}
		})
	}
}
