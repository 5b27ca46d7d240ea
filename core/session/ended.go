package session

import (
	"context"
	"time"
)

// Who ended a session, as Ended.Initiator says it: CAEP's initiating_entity values.
const (
	InitiatorUser   = "user"   // the person or their client: logout, RP-initiated logout, /revoke
	InitiatorAdmin  = "admin"  // an operator: admin logout, sign out all
	InitiatorPolicy = "policy" // a rule: refresh-token reuse detection, a session limit
	InitiatorSystem = "system" // sessiond itself: expiry
)

// Cause is who ended a session (one of the Initiator* values, for Shared Signals receivers)
// and why (the event log's reason), carried together so that no caller derives one from the
// other.
type Cause struct {
	Initiator string
	Reason    string
}

// Ended is one session that ended, for the parties told of it besides its clients (Shared
// Signals receivers). ClientID is set when only that client's session ended (a /revoke,
// reuse detection); empty, the whole user session ended.
type Ended struct {
	Realm     string
	SessionID string
	UserID    string
	ClientID  string
	Offline   bool
	At        time.Time
	Initiator string // one of the Initiator* values
	Reason    string // what ended it, in the event log's words (e.g. "admin logout-all")
}

// Ends hears of sessions as they end, once each, on the node that ended them; *ssf.Transmitter
// is one. SessionsEnded stores what it must send before it returns (a durable outbox), and
// fails only when it could not: the sessions stay ended, and the caller logs or reports it.
type Ends interface {
	SessionsEnded(ctx context.Context, ends []Ended) error
}

// endsTimeout bounds telling Ends of a session that ended, which goes on when the caller
// has gone: the session is already over.
const endsTimeout = 10 * time.Second

type noEnds struct{}

func (noEnds) SessionsEnded(context.Context, []Ended) error { return nil }

// ended tells s.ends of sessions that ended; a failure is logged, as the sessions are over
// regardless.
func (s *Service) ended(ctx context.Context, ends ...Ended) {
	now := s.clock()
	for i := range ends {
		if ends[i].At.IsZero() {
			ends[i].At = now
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endsTimeout)
	defer cancel()
	if err := s.ends.SessionsEnded(ctx, ends); err != nil {
		s.log.Warn("ended sessions could not be signalled to Shared Signals receivers", "sessions", len(ends), "error", err)
	}
}
