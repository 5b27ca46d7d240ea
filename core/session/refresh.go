package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// RefreshRequest is grant_type=refresh_token from a client the HTTP layer has authenticated.
type RefreshRequest struct {
	Realm        string
	Client       string // the authenticated client's clientId
	RefreshToken string
	// Scope narrows the access token's scope; "" keeps the granted one (RFC 6749 §6).
	Scope string
	// IPAddress and UserAgent are the caller's, recorded as where the session was last
	// used from (device.go); "" records nothing.
	IPAddress, UserAgent string
	// JKT is the thumbprint of the key of the request's checked DPoP proof, "" without one.
	// A refresh token bound to a key needs a proof of that key; the new tokens are bound
	// as OpenRequest.JKT says.
	JKT string
}

// concurrentWithin is how close to the last use a refused reuse counts as concurrent (two
// requests racing) rather than a replay.
const concurrentWithin = time.Second

// maxAttempts bounds the read-check-write loop of one refresh against a store that reports
// conflicts wrongly: a version conflict after which the client session reads at a newer
// version is another refresh's commit, progress that does not count, so any number of
// concurrent refreshes of one client session get through; only conflicts with nothing
// committed in between do.
const maxAttempts = 32

// maxRaced bounds the conflicts one refresh may lose to others' commits: each costs a read
// and two signatures, so a flood of refreshes of one client session must not cost the
// square of its size. Past it the caller is asked to retry (503), as a reissue past
// maxSecondIDs is; legitimate tabs and nodes come nowhere near.
const maxRaced = maxSecondIDs

// Refresh exchanges a refresh or offline token for new tokens. It checks, in this order,
// and answers the first failure as an *Error (invalid_grant unless OAuth says otherwise)
// that changed nothing: the signature, the realm, the token type and its expiry (core/token
// checks these four, and a token of another realm already fails at its signing key), the
// client, the realm's and the client's not-before, the user session, the client session,
// the offline rules, the scope, and then, with Revoke Refresh Token on, the rotation
// lineage. On success it moves the idle clocks of the user and client session; with rotation
// on, the client session is written with a version check so that two nodes or tabs cannot
// both rotate one token.
func (s *Service) Refresh(ctx context.Context, req RefreshRequest) (*Grant, error) {
	r, c, err := s.client(req.Realm, req.Client)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	t, err := s.verify(ctx, r, req.RefreshToken, "refresh token", asRefreshToken)
	if err != nil {
		return nil, s.refused(r, c, nil, err)
	}
	if e := s.checkRefreshToken(r, c, t); e != nil {
		return nil, s.refused(r, c, t, e)
	}
	if e := checkBinding(t, req.JKT); e != nil {
		return nil, s.refused(r, c, t, e)
	}
	key := usersessions.Key{RealmID: r.Name, ID: t.SessionID, Offline: t.Type == token.Offline}
	lastVersion, stuck := int64(-1), 0
	for attempt := 1; ; attempt++ {
		us, err := s.getSession(ctx, key)
		if err != nil {
			return nil, err
		}
		p, e := s.plan(r, c, t, us, req, now)
		if e != nil && attempt == 1 {
			// The session may be a cached copy behind another node's latest write (a
			// rotation, say): a refusal is decided on a fresh read.
			if fresh, ok, err := s.reload(ctx, key); err != nil {
				return nil, err
			} else if ok {
				us = fresh
				p, e = s.plan(r, c, t, us, req, now)
			}
		}
		if e != nil {
			return nil, s.refused(r, c, t, s.endOnReuse(ctx, r, us, c, e))
		}
		g, err := s.issue(ctx, issue{realm: r, client: c, session: p.session, scope: p.scope, refresh: true, refreshScope: t.Scope, jkt: req.JKT})
		if err != nil {
			return nil, err
		}
		version := p.client.Version
		advance(p.client, p.step, t.ID, g.refreshID, now)
		err = s.commit(ctx, p)
		if errors.Is(err, spi.ErrConflict) {
			if version > lastVersion {
				lastVersion, stuck = version, 0
			}
			if attempt >= maxRaced+maxAttempts {
				return nil, s.refused(r, c, t, errorf(TemporarilyUnavailable,
					"More than %d refreshes of this client session at once; retry in a second", maxRaced))
			}
			if stuck++; stuck < maxAttempts {
				continue
			}
		}
		if err != nil {
			return nil, s.commitFailed(r, c, t, err)
		}
		g.Reuse = p.reuse
		s.emit(Event{Time: now, Type: EventRefresh, Realm: r.Name, ClientID: c.ClientID, SessionID: us.ID,
			UserID: us.UserID, Offline: us.Offline, Reuse: p.reuse})
		return g, nil
	}
}

// checkRefreshToken runs the checks that need only the verified token: the client and the
// realm's and client's not-before.
func (s *Service) checkRefreshToken(r *realm.Realm, c *realm.Client, t *token.Token) *Error {
	if t.ClientID != c.ClientID {
		return refuse(RefusedInvalidToken, "Invalid refresh token. Token client and authorized client don't match")
	}
	return s.checkNotBefore(r, c, t)
}

// checkBinding refuses a DPoP-bound refresh token presented without a proof of its key
// (RFC 9449 §5: invalid_dpop_proof, the proof is what is missing) or with a proof of another
// key (invalid_grant: the grant is not this key holder's).
func checkBinding(t *token.Token, jkt string) *Error {
	switch {
	case t.JKT == "":
		return nil
	case jkt == "":
		e := refuse(RefusedDPoPBinding, "The refresh token is bound to a DPoP key: the request must carry a DPoP proof of that key")
		e.Code = InvalidDPoPProof
		return e
	case jkt != t.JKT:
		return refuse(RefusedDPoPBinding, "The refresh token is bound to another DPoP key than the proof's")
	}
	return nil
}

// checkNotBefore refuses a token issued before the realm's or the client's not-before
// policy. Both sides are compared in whole seconds, as Keycloak does: a token issued in the
// same second as "set to now" stays valid.
func (s *Service) checkNotBefore(r *realm.Realm, c *realm.Client, t *token.Token) *Error {
	realmNB, clientNB := s.policies(r, c)
	iat := t.IssuedAt.Unix()
	if !realmNB.IsZero() && iat < realmNB.Unix() {
		return refuse(RefusedNotBefore, "Stale token: issued before the realm's not-before policy (%s)", stamp(realmNB))
	}
	if !clientNB.IsZero() && iat < clientNB.Unix() {
		return refuse(RefusedNotBefore, "Stale token: issued before the client's not-before policy (%s)", stamp(clientNB))
	}
	return nil
}

// checkUserSession checks that a user session exists, is logged in and has not expired.
func checkUserSession(rules expiry.Rules, us *usersessions.UserSession, offline bool, now time.Time) *Error {
	kind, notFound := "Session", "Session not active: user session not found"
	if offline {
		kind, notFound = "Offline session", "Offline user session not found"
	}
	switch {
	case us == nil:
		return refuse(RefusedUnknownSession, "%s", notFound)
	case us.State != usersessions.LoggedIn:
		return refuse(RefusedLoggedOut, "%s not active: logged out", kind)
	}
	// The explanation is computed only for a refusal: it costs more than the check.
	if ends := rules.UserSessionEnds(expiry.SessionOf(us)); !now.Before(ends) {
		e := rules.UserSession(expiry.SessionOf(us))
		return refuse(RefusedSessionExpired, "%s not active: expired at %s by %s", kind, stamp(e.ExpiresAt), e.Why)
	}
	return nil
}

// checkHolder runs the checks of a refresh token against the live user session it names
// that refresh and logout share (after checkRefreshToken's): the token was issued to the
// session's user, after the session started, and its client session is live. The lineage
// check (classify) comes after; refresh puts its offline and scope rules in between.
func checkHolder(rules expiry.Rules, c *realm.Client, t *token.Token, us *usersessions.UserSession, now time.Time) *Error {
	if t.Subject != us.UserID {
		return refuse(RefusedInvalidToken, "Invalid refresh token: issued to another user than the session's")
	}
	if t.IssuedAt.Unix() < us.Started.Unix() {
		return refuse(RefusedStaleToken, "Stale token: issued before the user session started")
	}
	return checkClientSession(rules, c, us, now)
}

// checkClientSession checks that the user session has a live client session for c.
func checkClientSession(rules expiry.Rules, c *realm.Client, us *usersessions.UserSession, now time.Time) *Error {
	cs, ok := us.Clients[c.ClientID]
	if !ok {
		return refuse(RefusedClientSession, "Session doesn't have required client %q", c.ClientID)
	}
	if ends := rules.ClientSessionEnds(c, expiry.SessionOf(us), expiry.ClientSessionOf(cs)); !now.Before(ends) {
		e := rules.ClientSession(c, expiry.SessionOf(us), expiry.ClientSessionOf(cs))
		return refuse(RefusedClientSession, "Client session not active: expired at %s by %s", stamp(e.ExpiresAt), e.Why)
	}
	return nil
}

// plan is one refresh that passed every check: the session as it will be written, with the
// client session's new state, and what to issue.
type plan struct {
	session *usersessions.UserSession // moved to now; Clients holds the refreshed client session only
	client  *usersessions.ClientSession
	step    step // what the presented token does to the lineage; stepNone: only touch
	// seen: the client session's notes of where it was last used from changed, so it is
	// written even when the lineage does not move (device.go).
	seen  bool
	scope string
	reuse string
}

// plan runs the checks that need the stored session, in order, and computes the writes.
func (s *Service) plan(r *realm.Realm, c *realm.Client, t *token.Token, us *usersessions.UserSession, req RefreshRequest, now time.Time) (*plan, *Error) {
	scope := req.Scope
	rules := s.rules(r)
	offline := t.Type == token.Offline
	if e := checkUserSession(rules, us, offline, now); e != nil {
		return nil, e
	}
	if e := checkHolder(rules, c, t, us, now); e != nil {
		return nil, e
	}
	if offline && !c.OfflineAccess {
		return nil, refuse(RefusedNotAllowed, "Offline tokens not allowed for the client %q", c.ClientID)
	}
	cs := *us.Clients[c.ClientID]
	cs.Notes = maps.Clone(cs.Notes)
	granted := orDefault(scope, cs.Scope)
	if extra := missingScopes(granted, cs.Scope); extra != "" {
		return nil, errorf(InvalidScope, "Invalid scopes: %s (not granted to this session)", extra)
	}
	st, reuse, e := classify(r, &cs, t, now)
	if e == nil && st == stepReissue {
		e = roomToReissue(&cs, now)
	}
	if e != nil {
		return nil, e
	}
	seen := recordSeen(us, &cs, req.IPAddress, req.UserAgent)
	next := *us
	next.LastRefresh, cs.LastRefresh = now, now
	next.Clients = map[string]*usersessions.ClientSession{c.ClientID: &cs}
	rules.Stamp(&next)
	return &plan{session: &next, client: &cs, step: st, seen: seen, scope: granted, reuse: reuse}, nil
}

// missingScopes returns the scope values of requested that granted lacks.
func missingScopes(requested, granted string) string {
	var missing []string
	for v := range strings.FieldsSeq(requested) {
		if !hasScope(granted, v) {
			missing = append(missing, v)
		}
	}
	return strings.Join(missing, " ")
}

// commit writes a planned refresh. With rotation, or when where the session is used from
// changed, the client session is written version checked: that write decides who wins.
// The user session's touch goes with it in one store call (usersessions.Rotate), so that a
// refresh waits for one commit: a store that is a usersessions.Rotator writes both in one
// transaction; for one that is not, the two calls go at once (touches commute and need no
// check). Otherwise one touch moves both idle clocks.
func (s *Service) commit(ctx context.Context, p *plan) error {
	us, cs := p.session, p.client
	if p.step == stepNone && !p.seen {
		t := usersessions.Touch{Session: us.Key(), LastRefresh: us.LastRefresh, ExpiresAt: us.ExpiresAt,
			ClientID: cs.ClientID, ClientExpiresAt: cs.ExpiresAt}
		return firstErr(s.store.Touch(ctx, []usersessions.Touch{t}))
	}
	r := usersessions.Rotation{Client: cs, LastRefresh: us.LastRefresh, ExpiresAt: us.ExpiresAt}
	err := firstErr(usersessions.Rotate(ctx, s.store, []usersessions.Rotation{r}))
	if errors.Is(err, usersessions.ErrNotTouched) {
		// The rotation is committed: the new token is the only one that will work, so it
		// must reach the client. The user session's idle clock moves at the next refresh.
		s.log.Warn("refresh: the user session's idle clock was not moved", "session", us.ID, "error", err)
		return nil
	}
	return err
}

// commitFailed turns a failed write into the caller's error: a session that went away in
// the meantime is a refusal like any other, everything else (unavailable store) passes.
func (s *Service) commitFailed(r *realm.Realm, c *realm.Client, t *token.Token, err error) error {
	switch {
	case errors.Is(err, spi.ErrNotFound):
		return s.refused(r, c, t, refuse(RefusedUnknownSession, "Session not active: it ended during the refresh"))
	case errors.Is(err, spi.ErrConflict):
		return s.refused(r, c, t, refuse(RefusedConflict, "The client session could not be written: %d version conflicts with no change committed in between; try again", maxAttempts))
	case errors.Is(err, usersessions.ErrOutcomeUnknown):
		// Not a plain refusal: the rotation may be committed. Operators see it as what it
		// is; the caller still gets 503 with Retry-After (the error passes on).
		s.log.Warn("refresh: outcome unknown", "realm", r.Name, "client", c.ClientID, "session", t.SessionID, "error", err)
		s.emit(Event{Type: EventRefreshRefused, Realm: r.Name, ClientID: c.ClientID, SessionID: t.SessionID, UserID: t.Subject,
			Offline: t.Type == token.Offline, Reason: err.Error(), Refusal: RefusedOutcomeUnknown})
	}
	return fmt.Errorf("refresh session %s: %w", t.SessionID, err)
}

// endOnReuse ends the client session when a refused reuse is the realm's sign of a stolen
// token (EndClientSessionOnRefreshTokenReuse).
func (s *Service) endOnReuse(ctx context.Context, r *realm.Realm, us *usersessions.UserSession, c *realm.Client, e *Error) *Error {
	if e.Reuse == "" || !r.EndClientSessionOnRefreshTokenReuse {
		return e
	}
	key := usersessions.ClientKey{Session: us.Key(), ClientID: c.ClientID}
	if err := s.store.DeleteClientSessions(ctx, []usersessions.ClientKey{key}); err != nil {
		s.log.Error("refresh token reuse: the client session could not be ended", "session", us.ID, "client", c.ClientID, "error", err)
		return e
	}
	e.Ended = true
	e.Description += "; the client session was ended"
	s.ended(ctx, Ended{Realm: r.Name, SessionID: us.ID, UserID: us.UserID, ClientID: c.ClientID, Offline: us.Offline,
		Initiator: InitiatorPolicy, Reason: "refresh token reuse"})
	return e
}

// refused records a refusal in the event log and returns it. Errors that are not refusals
// (an unavailable store) pass through unrecorded.
func (s *Service) refused(r *realm.Realm, c *realm.Client, t *token.Token, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	ev := s.emitRefusal(EventRefreshRefused, r, c.ClientID, t, e)
	if e.Reuse != "" {
		// A refused reuse may be a stolen token: operators should see it without debug logs.
		s.log.Warn("refresh token reuse refused", "realm", r.Name, "client", c.ClientID, "session", ev.SessionID,
			"reuse", e.Reuse, "client_session_ended", e.Ended)
	}
	return e
}

// emitRefusal records the refusal e of a refresh or logout (typ) in the event log, with
// what the token t, when verified, says of its session.
func (s *Service) emitRefusal(typ string, r *realm.Realm, clientID string, t *token.Token, e *Error) Event {
	ev := Event{Type: typ, Realm: r.Name, ClientID: clientID, Reason: e.Description, Refusal: e.refusalClass(),
		Reuse: e.Reuse, EndedClientSession: e.Ended}
	if t != nil {
		ev.SessionID, ev.UserID, ev.Offline = t.SessionID, t.Subject, t.Type == token.Offline
	}
	s.emit(ev)
	return ev
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
