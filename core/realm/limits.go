package realm

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// AttrSessionLimitsPrefix starts the realm attributes that limit concurrent sessions
// (docs/operator-guide.md, "Session limits"). The names after it are those of Keycloak's
// User Session Count Limiter where it has one (userRealmLimit, userClientLimit, behavior,
// errorMessage); clientLimit, realmLimit, the per-limit behaviours and countOffline are
// sessiond's own.
const AttrSessionLimitsPrefix = "sessionLimits."

// Behaviours on exceeding a limit, spelt as Keycloak's limiter spells them.
const (
	DenyNewSession         = "Deny new session"
	TerminateOldestSession = "Terminate oldest session"
)

// DefaultLimitMessage is what the front-end is given on a refused login when the realm sets
// no errorMessage (Keycloak's "sessionLimitExceeded" text).
const DefaultLimitMessage = "There are too many sessions"

// Limit is one cap on concurrent sessions: at most Max (0 = no limit), and what happens to
// the login that would exceed it.
type Limit struct {
	Max int
	// Terminate: end the least recently used sessions to make room; otherwise refuse the
	// new session.
	Terminate bool
}

// On reports whether the limit is set.
func (l Limit) On() bool { return l.Max > 0 }

// SessionLimits are a realm's caps on concurrent sessions. The zero value limits nothing.
type SessionLimits struct {
	UserRealm  Limit // sessions of one user in the realm (Keycloak's userRealmLimit)
	UserClient Limit // sessions of one user on one client (Keycloak's userClientLimit)
	Client     Limit // sessions on one client, of all users (beyond Keycloak)
	Realm      Limit // sessions in the realm, of all users (beyond Keycloak)
	// ErrorMessage is what a refused login tells the front-end; "" means DefaultLimitMessage.
	ErrorMessage string
	// CountOffline: offline sessions are limited too, counted apart from online ones
	// against the same numbers. Off, offline sessions are neither counted nor limited.
	CountOffline bool
}

// Any reports whether some limit is set: a realm without one pays nothing on login.
func (l SessionLimits) Any() bool {
	return l.UserRealm.On() || l.UserClient.On() || l.Client.On() || l.Realm.On()
}

// Message is the text of a refusal.
func (l SessionLimits) Message() string {
	if l.ErrorMessage == "" {
		return DefaultLimitMessage
	}
	return l.ErrorMessage
}

// sessionLimitAttrs are the attribute names after AttrSessionLimitsPrefix, and what each is.
var sessionLimitAttrs = map[string]string{
	"userRealmLimit":     "the most sessions of one user in the realm (0 = no limit)",
	"userClientLimit":    "the most sessions of one user on one client",
	"clientLimit":        "the most sessions on one client",
	"realmLimit":         "the most sessions in the realm",
	"behavior":           "what every limit does when exceeded: " + DenyNewSession + " or " + TerminateOldestSession,
	"userRealmBehavior":  "behavior of userRealmLimit alone",
	"userClientBehavior": "behavior of userClientLimit alone",
	"clientBehavior":     "behavior of clientLimit alone",
	"realmBehavior":      "behavior of realmLimit alone",
	"errorMessage":       "the message a refused login shows",
	"countOffline":       "true: offline sessions are limited too, counted apart",
}

// SessionLimitAttributes lists the attribute names sessiond reads, sorted, with the prefix.
func SessionLimitAttributes() []string {
	out := make([]string, 0, len(sessionLimitAttrs))
	for _, n := range slices.Sorted(maps.Keys(sessionLimitAttrs)) {
		out = append(out, AttrSessionLimitsPrefix+n)
	}
	return out
}

// maxSessionLimit bounds a limit: far beyond any realm, far from overflowing anything.
const maxSessionLimit = 1 << 30

// sessionLimits reads the sessionLimits.* attributes of a realm. Like every realm attribute
// they are strict: an unknown name or a bad value is an error that names it; an empty value
// is "not set".
func sessionLimits(attrs map[string]string) (SessionLimits, error) {
	var out SessionLimits
	behavior := map[string]bool{} // attribute name → terminate
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		field, ok := strings.CutPrefix(name, AttrSessionLimitsPrefix)
		if !ok {
			continue
		}
		if _, known := sessionLimitAttrs[field]; !known {
			return out, fmt.Errorf("attributes: unknown attribute %q (session limits are %s)", cutName(name), strings.Join(SessionLimitAttributes(), ", "))
		}
		value := strings.TrimSpace(attrs[name])
		if value == "" {
			continue
		}
		switch field {
		case "userRealmLimit", "userClientLimit", "clientLimit", "realmLimit":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || n > maxSessionLimit {
				return out, fmt.Errorf("attributes: %q: %q is not a whole number from 0 (no limit) to %d", name, cutName(value), maxSessionLimit)
			}
			out.limit(field).Max = n
		case "errorMessage":
			if len(value) > 500 {
				return out, fmt.Errorf("attributes: %q is longer than 500 bytes", name)
			}
			out.ErrorMessage = value
		case "countOffline":
			b, err := strconv.ParseBool(value)
			if err != nil {
				return out, fmt.Errorf("attributes: %q: %q is not true or false", name, cutName(value))
			}
			out.CountOffline = b
		default: // the behaviours
			switch value {
			case DenyNewSession:
				behavior[field] = false
			case TerminateOldestSession:
				behavior[field] = true
			default:
				return out, fmt.Errorf("attributes: %q: %q is not %q or %q", name, cutName(value), DenyNewSession, TerminateOldestSession)
			}
		}
	}
	for _, f := range []string{"userRealm", "userClient", "client", "realm"} {
		if t, ok := behavior[f+"Behavior"]; ok {
			out.limit(f + "Limit").Terminate = t
		} else {
			out.limit(f + "Limit").Terminate = behavior["behavior"]
		}
	}
	return out, nil
}

func (l *SessionLimits) limit(attr string) *Limit {
	switch attr {
	case "userRealmLimit":
		return &l.UserRealm
	case "userClientLimit":
		return &l.UserClient
	case "clientLimit":
		return &l.Client
	default:
		return &l.Realm
	}
}
