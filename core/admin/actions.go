package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Result is what an action that ends sessions did.
type Result struct {
	// Removed counts the user sessions ended (client sessions for RevokeOfflineToken).
	Removed int
	// Report is what the clients were told, when a push is wired.
	Report Report
	// PushErr is set when the clients could not all be told (the notices were not queued);
	// the sessions are ended regardless, which is what the action is for.
	PushErr error
}

// LogoutSession ends one user session, online or offline, and sends back-channel logouts to
// its clients (DELETE sessions/{id}?isOffline=). An unknown session is ErrUnknownSession.
func (s *Service) LogoutSession(ctx context.Context, realmName, id string, offline bool) (Result, error) {
	return s.logoutSession(ctx, realmName, id, offline, false, session.Cause{Initiator: session.InitiatorAdmin, Reason: "admin logout-session"})
}

// LogoutSessionBecause ends one user session as LogoutSession does, for another caller
// than the admin API (the account API: a user ending their own session), with its own
// cause.
func (s *Service) LogoutSessionBecause(ctx context.Context, realmName, id string, offline bool, cause session.Cause) (Result, error) {
	return s.logoutSession(ctx, realmName, id, offline, false, cause)
}

// logoutSession ends one session and tells its clients: at once, or with queue only
// through the outbox.
func (s *Service) logoutSession(ctx context.Context, realmName, id string, offline, queue bool, cause session.Cause) (Result, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return Result{}, err
	}
	if id == "" {
		return Result{}, invalidf("a session id is required")
	}
	key := usersessions.Key{RealmID: r.Name, ID: id, Offline: offline}
	got, err := s.sessions.Get(ctx, []usersessions.Key{key})
	if err != nil {
		return Result{}, fmt.Errorf("read session %s: %w", id, err)
	}
	if len(got) != 1 || got[0] == nil {
		return Result{}, fmt.Errorf("%s session %s of realm %q: %w", kindName(offline), id, r.Name, ErrUnknownSession)
	}
	n, err := s.sessions.Delete(ctx, []usersessions.Key{key})
	if err != nil {
		return Result{}, fmt.Errorf("delete session %s: %w", id, err)
	}
	if n == 0 {
		// Ended between the read and the delete: by someone else, so not by this call.
		return Result{}, fmt.Errorf("%s session %s of realm %q: %w", kindName(offline), id, r.Name, ErrUnknownSession)
	}
	res := Result{Removed: n}
	s.notifyLogout(ctx, r.Name, got, queue, cause, &res)
	return res, nil
}

// LogoutUser ends every online session of a user and sends back-channel logouts for them
// (POST users/{id}/logout). Offline sessions stay, as in Keycloak: offline tokens are "valid
// after a user logout" (seed 000); revoke them with RevokeOfflineToken. A user with no
// session at all, online or offline, is ErrNoSessions.
func (s *Service) LogoutUser(ctx context.Context, realmName, userID string) (Result, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return Result{}, err
	}
	if userID == "" {
		return Result{}, invalidf("a user id is required")
	}
	res, err := s.endAll(ctx, usersessions.Filter{RealmID: r.Name, UserID: userID, Offline: usersessions.OnlineOnly}, false, session.Cause{Initiator: session.InitiatorAdmin, Reason: "admin logout-user"})
	if err != nil || res.Removed > 0 {
		return res, err
	}
	n, err := s.store.Count(ctx, usersessions.Filter{RealmID: r.Name, UserID: userID, Offline: usersessions.OfflineOnly})
	if err != nil {
		return res, fmt.Errorf("count offline sessions of user %q: %w", userID, err)
	}
	if n == 0 {
		return res, fmt.Errorf("user %q of realm %q: %w", userID, r.Name, ErrNoSessions)
	}
	return res, nil
}

// LogoutAll signs out every online session of the realm (POST logout-all): page by page, it
// removes the sessions and queues back-channel logouts for the ones it removed in the
// outbox, whose worker attempts them after the call; then it tells every client with an
// admin URL that sessions before now are gone (the adapter's k_logout, Keycloak's notice of
// a realm-wide logout), and Report is what that notice reached. Offline sessions and their
// tokens stay valid; to revoke those too, set the realm's not-before and push it. The whole
// call is bounded by Deps.LogoutAllTimeout: past it, it fails where it is, and what it ended
// stays ended.
//
// Unlike Keycloak, the realm's not-before policy is not moved: sessiond's not-before applies
// to offline tokens as well, so setting it would void the offline sessions the sign-out is
// meant to keep (seed 000: "Sign out all active sessions does not revoke outstanding access
// tokens"; offline tokens are "valid after a user logout"). Without that not-before, a
// client with only a back-channel logout URL learns of the sign-out from its back-channel
// logouts alone, which is why they are still sent, queued rather than attempted in the call.
func (s *Service) LogoutAll(ctx context.Context, realmName string) (Result, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.logoutAllTimeout)
	defer cancel()
	before := s.clock()
	res, err := s.endAll(ctx, usersessions.Filter{RealmID: r.Name, Offline: usersessions.OnlineOnly}, true, session.Cause{Initiator: session.InitiatorAdmin, Reason: "admin logout-all"})
	if err != nil {
		return res, err
	}
	if s.push == nil {
		return res, nil
	}
	rep, err := s.push.LogoutAll(ctx, r.Name, before)
	res.Report = merge(res.Report, rep)
	if err != nil {
		res.PushErr = errors.Join(res.PushErr, fmt.Errorf("logout notice to the clients of realm %q: %w", r.Name, err))
	}
	return res, nil
}

// endAll removes the sessions f selects a page at a time (only one page is held), and sends
// back-channel logouts for the sessions each page removed; with queue, it only stores them
// in the outbox, for its worker to attempt.
//
// Each page is read again by key just before it is removed, and only the sessions still
// there are removed and told: one another caller ended since the listing (another node's
// logout, which sends its own notices) is not this call's. Should a session still go between
// that read and the removal (the store then removes fewer than asked), which of them it was
// cannot be told from the count, and the page's sessions read are all told: a second logout
// for an ended session is harmless, a missing one leaves a client signed in.
func (s *Service) endAll(ctx context.Context, f usersessions.Filter, queue bool, cause session.Cause) (Result, error) {
	var res Result
	err := s.walk(ctx, f, func(page []*usersessions.UserSession) error {
		keys := make([]usersessions.Key, len(page))
		for i, us := range page {
			keys[i] = us.Key()
		}
		now, err := s.sessions.Get(ctx, keys)
		if err != nil {
			return fmt.Errorf("read %d sessions: %w", len(keys), err)
		}
		present := slices.DeleteFunc(now, func(us *usersessions.UserSession) bool { return us == nil })
		if len(present) == 0 {
			return nil
		}
		keys = keys[:0]
		for _, us := range present {
			keys = append(keys, us.Key())
		}
		n, err := s.sessions.Delete(ctx, keys)
		if err != nil {
			return fmt.Errorf("delete %d sessions: %w", len(keys), err)
		}
		res.Removed += n
		if n == 0 {
			return nil
		}
		s.notifyLogout(ctx, f.RealmID, present, queue, cause, &res)
		return nil
	})
	return res, err
}

// notifyLogout writes a logout event for each ended session (cause says what ended it:
// the admin action, a session limit), and sends back-channel logouts for them, into res; with queue it only stores
// them in the outbox (QueueLogout), and as nothing was attempted, nothing is reported but a
// failure to store them.
func (s *Service) notifyLogout(ctx context.Context, realmName string, ended []*usersessions.UserSession, queue bool, cause session.Cause, res *Result) {
	now := s.clock()
	for _, us := range ended {
		s.events.Emit(session.Event{Time: now, Type: session.EventLogout, Realm: realmName, SessionID: us.ID,
			UserID: us.UserID, Offline: us.Offline, Reason: cause.Reason})
	}
	s.signalEnded(ctx, realmName, ended, now, cause)
	if s.push == nil || len(ended) == 0 {
		return
	}
	if queue {
		if _, err := s.push.QueueLogout(ctx, realmName, ended); err != nil {
			res.PushErr = errors.Join(res.PushErr, fmt.Errorf("queue back-channel logouts of %d sessions: %w", len(ended), err))
		}
		return
	}
	rep, err := s.push.Logout(ctx, realmName, ended)
	res.Report = merge(res.Report, rep)
	if err != nil {
		res.PushErr = errors.Join(res.PushErr, fmt.Errorf("back-channel logout of %d sessions: %w", len(ended), err))
	}
}

// RevokeOfflineToken revokes a user's offline tokens of one client (DELETE
// users/{id}/consents/{clientId}): that client's offline client sessions go, and so do the
// user's offline sessions left with no client. Removed counts the client sessions; none is
// ErrNoOfflineToken.
func (s *Service) RevokeOfflineToken(ctx context.Context, realmName, userID, clientID string) (Result, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return Result{}, err
	}
	if userID == "" {
		return Result{}, invalidf("a user id is required")
	}
	c, err := s.clientByClientID(r.Name, clientID)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = s.walk(ctx, usersessions.Filter{RealmID: r.Name, UserID: userID, ClientID: c.ClientID, Offline: usersessions.OfflineOnly},
		func(page []*usersessions.UserSession) error {
			clients := make([]usersessions.ClientKey, len(page))
			keys := make([]usersessions.Key, len(page))
			for i, us := range page {
				keys[i] = us.Key()
				clients[i] = usersessions.ClientKey{Session: keys[i], ClientID: c.ClientID}
			}
			if err := s.sessions.DeleteClientSessions(ctx, clients); err != nil {
				return fmt.Errorf("delete offline client sessions of %q: %w", c.ClientID, err)
			}
			res.Removed += len(clients)
			// Read again rather than trust the page: another client may have joined one of
			// these sessions meanwhile, and then it stays.
			now, err := s.sessions.Get(ctx, keys)
			if err != nil {
				return fmt.Errorf("read offline sessions of user %q: %w", userID, err)
			}
			empty := slices.DeleteFunc(now, func(us *usersessions.UserSession) bool { return us == nil || len(us.Clients) > 0 })
			if len(empty) == 0 {
				return nil
			}
			gone := make([]usersessions.Key, len(empty))
			for i, us := range empty {
				gone[i] = us.Key()
			}
			if _, err := s.sessions.Delete(ctx, gone); err != nil {
				return fmt.Errorf("delete offline sessions left with no client: %w", err)
			}
			return nil
		})
	if err != nil {
		return res, err
	}
	if res.Removed == 0 {
		return res, fmt.Errorf("user %q, client %q of realm %q: %w", userID, c.ClientID, r.Name, ErrNoOfflineToken)
	}
	return res, nil
}

// merge adds b's URLs to a's. A URL that failed anywhere is failed: one page of
// back-channel logouts reaching it does not make up for another that did not.
func merge(a, b Report) Report {
	failed := union(a.Failed, b.Failed)
	ok := slices.DeleteFunc(union(a.Succeeded, b.Succeeded), func(u string) bool { return slices.Contains(failed, u) })
	return Report{Succeeded: ok, Failed: failed}
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, u := range b {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

func kindName(offline bool) string {
	if offline {
		return "offline"
	}
	return "online"
}

// EndSession ends a user session as LogoutSession does, with back-channel logout to its
// clients, for the login flows (RP-initiated logout, a reused code, a login accepted
// twice), each with its own cause: a session already gone is no error there.
func (s *Service) EndSession(ctx context.Context, realmName, id string, offline bool, cause session.Cause) error {
	if _, err := s.logoutSession(ctx, realmName, id, offline, false, cause); err != nil && !errors.Is(err, ErrUnknownSession) {
		return err
	}
	return nil
}

// EndForLimit ends a user session to make room under a session limit (core/sessionlimit):
// removed as LogoutSession removes it, with a logout event whose reason names the limit, and
// back-channel logouts to its clients queued in the outbox rather than attempted in the
// call, so that a slow client does not hold up the login (nor the limit's lock). A session
// already gone is no error; notices that could not be queued are logged, not failed: the
// session is ended, which is what makes room.
func (s *Service) EndForLimit(ctx context.Context, realmName, id string, offline bool, limit string) error {
	res, err := s.logoutSession(ctx, realmName, id, offline, true, session.Cause{Initiator: session.InitiatorPolicy, Reason: reasonLimit + limit})
	if err != nil && !errors.Is(err, ErrUnknownSession) {
		return err
	}
	if res.PushErr != nil {
		s.log.Warn("back-channel logouts of a session ended by a session limit were not queued", "realm", realmName, "session", id, "error", res.PushErr)
	}
	return nil
}
