package cleanup

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// signalExpired ends, one by one, the user sessions of every realm that have expired by
// cutoff, and tells c.ends of each this node removed (Deps.Ends: the operator asked for
// Shared Signals events on expiry). A session is removed by its own key so that exactly one
// node, the one whose delete removed it, tells of it when several clean at once; that is
// one store call per expired session, the price of the option. DeleteExpired then removes
// what is left (expired client sessions), as without the option.
func (c *Cleaner) signalExpired(ctx context.Context, cutoff time.Time) error {
	for _, name := range c.realms() {
		var expired []*usersessions.UserSession
		req := usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: name, Offline: usersessions.Both}, PageSize: c.opts.BatchSize}
		err := c.store.Stream(ctx, req, func(page []*usersessions.UserSession) error {
			for _, us := range page {
				if !us.ExpiresAt.IsZero() && us.ExpiresAt.Before(cutoff) {
					expired = append(expired, us)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list the expired sessions of realm %q: %w", name, err)
		}
		var ended []session.Ended
		for _, us := range expired {
			n, err := c.store.Delete(ctx, []usersessions.Key{us.Key()})
			if err != nil {
				return fmt.Errorf("remove expired session %s: %w", us.ID, err)
			}
			if n == 1 {
				ended = append(ended, session.Ended{Realm: name, SessionID: us.ID, UserID: us.UserID, Offline: us.Offline,
					At: us.ExpiresAt, Initiator: session.InitiatorSystem, Reason: "expired"})
			}
		}
		if len(ended) == 0 {
			continue
		}
		if err := c.ends.SessionsEnded(ctx, ended); err != nil {
			return fmt.Errorf("signal %d expired sessions of realm %q: %w", len(ended), name, err)
		}
		c.log.Debug("expired sessions removed and signalled", "realm", name, "sessions", len(ended))
	}
	return nil
}
