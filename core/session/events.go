package session

import "time"

// Event types.
const (
	EventLogin = "login"
	// EventLoginRefused is a login a session limit refused (Refusal RefusedSessionLimit).
	EventLoginRefused   = "login_refused"
	EventAttach         = "attach"
	EventRefresh        = "refresh"
	EventRefreshRefused = "refresh_refused"
	EventLogout         = "logout"
	// EventLogoutRefused is a logout by refresh token that refresh's checks refused.
	EventLogoutRefused = "logout_refused"
	EventRevoke        = "revoke"
)

// Event is one entry of the structured event log.
type Event struct {
	Time      time.Time
	Type      string
	Realm     string
	ClientID  string
	SessionID string
	UserID    string
	Offline   bool
	Transient bool
	// IP is the user's address as the login front-end reported it (EventLogin, EventAttach).
	IP string
	// Reason is the refusal's description (EventRefreshRefused, EventLogoutRefused), or
	// what ended (EventLogout).
	Reason string
	// Refusal classifies an EventRefreshRefused or EventLogoutRefused: one of the Refused*
	// values.
	Refusal string
	// Reuse classifies a reused refresh token: allowed (EventRefresh) or refused.
	Reuse string
	// EndedClientSession: the refusal ended the client session (reuse, when configured).
	EndedClientSession bool
}

// Events receives events. Emit must not block for long: it runs on the request path.
type Events interface {
	Emit(Event)
}

type discard struct{}

func (discard) Emit(Event) {}

// emit stamps and sends an event, and logs it at debug level.
func (s *Service) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = s.clock()
	}
	s.events.Emit(e)
	if s.log.IsDebug() {
		s.log.Debug("session event", "type", e.Type, "realm", e.Realm, "client", e.ClientID,
			"session", e.SessionID, "offline", e.Offline, "reason", e.Reason, "reuse", e.Reuse)
	}
}
