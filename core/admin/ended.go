package admin

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// reasonLimit starts the reason of a session a session limit ended (EndForLimit).
const reasonLimit = "session limit "

// signalEnded tells the Ends of sessions an action ended, with who ended them as cause
// says. Failing to is logged: the sessions are ended regardless.
func (s *Service) signalEnded(ctx context.Context, realmName string, ended []*usersessions.UserSession, at time.Time, cause session.Cause) {
	if s.ends == nil || len(ended) == 0 {
		return
	}
	ends := make([]session.Ended, len(ended))
	for i, us := range ended {
		ends[i] = session.Ended{Realm: realmName, SessionID: us.ID, UserID: us.UserID, Offline: us.Offline,
			At: at, Initiator: cause.Initiator, Reason: cause.Reason}
	}
	if err := s.ends.SessionsEnded(context.WithoutCancel(ctx), ends); err != nil {
		s.log.Warn("ended sessions could not be signalled to Shared Signals receivers", "realm", realmName, "sessions", len(ends), "error", err)
	}
}
