package admin

import (
	"context"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// ReasonEndSession is the logout event's reason for a session ended through EndSession: the
// end-session endpoint (RP-initiated logout) or a reused authorization code.
const ReasonEndSession = "end-session"

// reasonLimit starts the reason of a session a session limit ended (EndForLimit).
const reasonLimit = "session limit "

// signalEnded tells the Ends of sessions an action ended, with who ended them as reason
// says: a session limit is a policy, the end-session endpoint the user, the rest an
// administrator. Failing to is logged: the sessions are ended regardless.
func (s *Service) signalEnded(ctx context.Context, realmName string, ended []*usersessions.UserSession, at time.Time, reason string) {
	if s.ends == nil || len(ended) == 0 {
		return
	}
	initiator := session.InitiatorAdmin
	switch {
	case strings.HasPrefix(reason, reasonLimit):
		initiator = session.InitiatorPolicy
	case reason == ReasonEndSession:
		initiator = session.InitiatorUser
	}
	ends := make([]session.Ended, len(ended))
	for i, us := range ended {
		ends[i] = session.Ended{Realm: realmName, SessionID: us.ID, UserID: us.UserID, Offline: us.Offline,
			At: at, Initiator: initiator, Reason: reason}
	}
	if err := s.ends.SessionsEnded(context.WithoutCancel(ctx), ends); err != nil {
		s.log.Warn("ended sessions could not be signalled to Shared Signals receivers", "realm", realmName, "sessions", len(ends), "error", err)
	}
}
