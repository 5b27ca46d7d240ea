package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// LogoutRequest names the session to end: by a refresh token (the logout endpoint) or by
// its id (the admin API). With a token, Client, when set, must be the token's client.
type LogoutRequest struct {
	Realm        string
	Client       string
	RefreshToken string
	SessionID    string
}

// Logout ends an online user session and its client sessions; the offline session with
// the same id stays (seed 000: offline tokens are "valid after a user logout"). Presenting
// an offline token instead ends that offline session, as Keycloak's logout endpoint does.
// Outstanding access tokens are not revoked: they expire, and Introspect reports them
// inactive from now on.
//
// A refresh token must be one refresh would still accept (issue 15): refresh's own checks
// refuse, with its invalid_grant and description, a token of another client, one a realm or
// client not-before policy revoked, one of another user or issued before the session
// started, one whose client session has ended (revoked), and one the rotation lineage no
// longer accepts. For that last, refresh's own rule applies: a token rotated out is still
// accepted within the grace window or Refresh Token Max Reuse; beyond them it is refused
// (the session is not ended), and when the realm ends client sessions on reuse
// (EndClientSessionOnRefreshTokenReuse) the client session ends, as on a refresh. Only
// the refresh-only rules (offline access, scope) do not apply.
//
// By token, a session that has already ended (gone, logged out or expired) is not an error
// (logging out twice is harmless); by id, an unknown session wraps spi.ErrNotFound, for the
// admin API's 404.
func (s *Service) Logout(ctx context.Context, req LogoutRequest) error {
	r, err := s.realm(req.Realm)
	if err != nil {
		return err
	}
	key := usersessions.Key{RealmID: r.Name, ID: req.SessionID}
	var userID, clientID string
	if req.RefreshToken != "" {
		t, err := s.verify(ctx, r, req.RefreshToken, "refresh token", asRefreshToken)
		if err != nil {
			return s.logoutRefused(r, req.Client, nil, err)
		}
		key.ID, key.Offline, userID, clientID = t.SessionID, t.Type == token.Offline, t.Subject, t.ClientID
		if err := s.checkLogoutToken(ctx, r, req.Client, t, key); err != nil {
			return s.logoutRefused(r, req.Client, t, err)
		}
	}
	if key.ID == "" {
		return errorf(InvalidRequest, "A refresh token or a session id is required")
	}
	n, err := s.store.Delete(ctx, []usersessions.Key{key})
	if err != nil {
		return fmt.Errorf("log out session %s: %w", key.ID, err)
	}
	if n == 0 {
		if req.RefreshToken != "" {
			return nil
		}
		return fmt.Errorf("session %s of realm %q: %w", key.ID, r.Name, spi.ErrNotFound)
	}
	s.emit(Event{Type: EventLogout, Realm: r.Name, ClientID: clientID, SessionID: key.ID, UserID: userID, Offline: key.Offline})
	initiator, reason := InitiatorUser, "logout"
	if req.RefreshToken == "" {
		initiator, reason = InitiatorAdmin, "logout by session id"
	}
	s.ended(ctx, Ended{Realm: r.Name, SessionID: key.ID, UserID: userID, Offline: key.Offline, Initiator: initiator, Reason: reason})
	return nil
}

// logoutRefused records a refused logout by refresh token in the event log, as refused
// does a refused refresh, and returns err. client is the authenticated client, "" for the
// token's own; errors that are not refusals (an unavailable store) pass through unrecorded.
func (s *Service) logoutRefused(r *realm.Realm, client string, t *token.Token, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	if client == "" && t != nil {
		client = t.ClientID
	}
	s.emitRefusal(EventLogoutRefused, r, client, t, e)
	return err
}

// checkLogoutToken runs refresh's checks on a verified refresh token presented to log out
// the session key: checkRefreshToken, then, on a session still live, checkHolder and the
// lineage (classify). client is the authenticated client, "" for the token's own.
func (s *Service) checkLogoutToken(ctx context.Context, r *realm.Realm, client string, t *token.Token, key usersessions.Key) error {
	if client == "" {
		client = t.ClientID
	}
	c, ok := r.Client(client)
	if !ok {
		return refuse(RefusedInvalidToken, "Invalid refresh token: client %q not found in realm %q", client, r.Name)
	}
	if e := s.checkRefreshToken(r, c, t); e != nil {
		return e
	}
	us, err := s.getSession(ctx, key)
	if err != nil {
		return err
	}
	now := s.clock()
	rules := s.rules(r)
	if us == nil || checkUserSession(rules, us, key.Offline, now) != nil {
		return nil // already over: ending it again is harmless
	}
	e := checkHolder(rules, c, t, us, now)
	if e == nil {
		_, _, e = classify(r, us.Clients[c.ClientID], t, now)
	}
	if e == nil {
		return nil
	}
	if e.Reuse != "" {
		e = s.endOnReuse(ctx, r, us, c, e)
		s.log.Warn("logout with a refresh token that rotation retired refused", "realm", r.Name, "client", c.ClientID,
			"session", us.ID, "reuse", e.Reuse, "client_session_ended", e.Ended)
	}
	return e
}

// Explanation explains both sessions with one id; either may be nil.
type Explanation struct {
	Online  *expiry.Explanation `json:"online,omitempty"`
	Offline *expiry.Explanation `json:"offline,omitempty"`
}

// Explain says, for the online and the offline session with that id and each of their
// client sessions, which timeout governs it, when it ends and why. Neither existing wraps
// spi.ErrNotFound.
func (s *Service) Explain(ctx context.Context, realmName, sessionID string) (*Explanation, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	keys := []usersessions.Key{{RealmID: r.Name, ID: sessionID}, {RealmID: r.Name, ID: sessionID, Offline: true}}
	got, err := s.store.Get(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("read session %s: %w", sessionID, err)
	}
	rules, now := s.rules(r), s.clock()
	var out Explanation
	for i, us := range got {
		if us == nil || i >= len(keys) {
			continue
		}
		e := rules.Explain(us, now)
		if keys[i].Offline {
			out.Offline = &e
		} else {
			out.Online = &e
		}
	}
	if out.Online == nil && out.Offline == nil {
		return nil, fmt.Errorf("session %s of realm %q: %w", sessionID, r.Name, spi.ErrNotFound)
	}
	return &out, nil
}
