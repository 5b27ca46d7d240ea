package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// NoteOfflineAccess is the user-session note that records that the user held the realm's
// offline_access role at login, so that a client attached later may get an offline token.
const NoteOfflineAccess = "sessiond.offline_access"

// Client-session actions, as Keycloak writes them.
const actionAuthenticate = "AUTHENTICATE"

// OpenRequest is what the login front-end sends after it has authenticated a person.
type OpenRequest struct {
	Realm    string
	ClientID string
	UserID   string
	Username string // the login username
	IPAddress,
	UserAgent string
	AuthMethod string // "" means "openid-connect"
	RememberMe bool
	// Scope is the requested scope, space separated; offline_access asks for an offline token.
	Scope string
	// OfflineAccess: the user holds the realm's offline_access role.
	OfflineAccess bool
	// Transient asks for a session that is never stored: an access token only.
	Transient bool
	// Implicit: the implicit flow, an access token only, with the implicit-flow lifespan.
	Implicit        bool
	BrokerSessionID string
	BrokerUserID    string
	Notes           map[string]string
	// JKT is the thumbprint of the key of the request's checked DPoP proof, "" without one:
	// the access token is bound to it, and so is a public client's refresh token
	// (RFC 9449 §5).
	JKT string
	// IdempotencyKey, when set, makes a retry of this open safe when the first attempt's
	// outcome is unknown: the session's id derives from the realm, the client and the key,
	// and a retry that finds the session answers with new tokens for it rather than opening
	// another (ErrIdempotencyKeyReused when it was opened by a different request). Callers
	// prefix their own namespace ("frontend:", "login:"), so that their keys never meet.
	// A transient open stores nothing and ignores it: its retries are safe as they are.
	IdempotencyKey string
}

// AttachRequest adds a client to a live session (single sign-on).
type AttachRequest struct {
	Realm     string
	SessionID string
	ClientID  string
	Scope     string
	Implicit  bool
	JKT       string // as OpenRequest.JKT
}

// Grant is what a login, an attach or a refresh hands back.
type Grant struct {
	SessionID   string
	UserID      string
	TokenType   string // "Bearer", or "DPoP" when the access token is bound to a DPoP key
	AccessToken string
	IssuedAt    time.Time
	ExpiresAt   time.Time // the access token's exp
	// RefreshToken is "" for transient sessions and the implicit flow.
	RefreshToken     string
	RefreshTokenType token.Type // token.Refresh or token.Offline; "" with no refresh token
	RefreshExpiresAt time.Time  // the refresh token's exp
	// Scope is the granted scope; it lacks offline_access when that was asked for but not
	// allowed (OAuth: the client learns what it got from the response).
	Scope     string
	Offline   bool
	Transient bool
	// NotBefore is the realm's not-before policy (Keycloak's "not-before-policy").
	NotBefore time.Time
	// Reuse is set when a refresh was allowed as a reuse of a rotated token.
	Reuse string

	refreshID string // the refresh token's jti, for the lineage
}

// ExpiresIn is the access token's lifetime in seconds (OAuth's expires_in).
func (g *Grant) ExpiresIn() int64 { return seconds(g.ExpiresAt.Sub(g.IssuedAt)) }

// RefreshExpiresIn is the refresh token's lifetime in seconds (Keycloak's refresh_expires_in),
// 0 with no refresh token.
func (g *Grant) RefreshExpiresIn() int64 {
	if g.RefreshToken == "" {
		return 0
	}
	return seconds(g.RefreshExpiresAt.Sub(g.IssuedAt))
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// Open opens a session for a person the login front-end has authenticated: a user session
// and a client session, with an access token and a refresh token, or an offline token when
// the scope asks for offline_access and both the user and the client are allowed it (then an
// offline user and client session with the same id are stored as well, as Keycloak does).
// A transient session is not stored and gets an access token only.
func (s *Service) Open(ctx context.Context, req OpenRequest) (*Grant, error) {
	r, c, err := s.client(req.Realm, req.ClientID)
	if err != nil {
		return nil, err
	}
	if req.UserID == "" {
		return nil, errorf(InvalidRequest, "A user id is required")
	}
	if req.Transient && !s.transient {
		return nil, errorf(InvalidRequest, "Transient sessions are disabled (feature transient-sessions)")
	}
	now := s.clock()
	id, fp := newID(), ""
	if req.IdempotencyKey != "" && !req.Transient {
		if id, err = s.sessionID(ctx, r, c, req.IdempotencyKey, now); err != nil {
			return nil, err
		}
		fp = fingerprint(req)
		// Before the limits: the session a first attempt stored must not count against (or
		// be ended to make room for) its own retry.
		if g, found, err := s.reopen(ctx, r, c, req, id, fp); found || err != nil {
			return g, err
		}
	}
	scope, offline := grantScope(req.Scope, req.OfflineAccess && c.OfflineAccess && !req.Transient && !req.Implicit)
	us := &usersessions.UserSession{
		ID:              id,
		RealmID:         r.Name,
		UserID:          req.UserID,
		LoginUsername:   req.Username,
		IPAddress:       req.IPAddress,
		UserAgent:       req.UserAgent,
		AuthMethod:      orDefault(req.AuthMethod, "openid-connect"),
		BrokerSessionID: req.BrokerSessionID,
		BrokerUserID:    req.BrokerUserID,
		RememberMe:      req.RememberMe,
		State:           usersessions.LoggedIn,
		Started:         now,
		LastRefresh:     now,
		Notes:           maps.Clone(req.Notes),
	}
	if req.OfflineAccess {
		if us.Notes == nil {
			us.Notes = map[string]string{}
		}
		us.Notes[NoteOfflineAccess] = "true"
	}
	if fp != "" {
		if us.Notes == nil {
			us.Notes = map[string]string{}
		}
		us.Notes[NoteOpenRequest] = fp
	}
	us.Clients = map[string]*usersessions.ClientSession{c.ClientID: newClientSession(us, c.ClientID, scope, now)}
	rules := s.rules(r)
	rules.Stamp(us)
	create := []*usersessions.UserSession{us}
	backing := us
	if offline {
		backing = offlineCopy(us, now)
		rules.Stamp(backing)
		create = append(create, backing)
	}
	if !req.Transient && r.SessionLimits.Any() {
		release, err := s.admit(ctx, r, c, us, now, sessionlimit.Admission{Offline: offline})
		if err != nil {
			return nil, err
		}
		defer release()
	}
	g, err := s.issue(ctx, issue{realm: r, client: c, session: backing, scope: scope,
		refresh: !req.Transient && !req.Implicit, implicit: req.Implicit, jkt: req.JKT})
	if err != nil {
		return nil, err
	}
	g.Transient = req.Transient
	s.recordLineage(r, backing.Clients[c.ClientID], g)
	if !req.Transient {
		if err := s.create(ctx, create); err != nil {
			if fp != "" && errors.Is(err, spi.ErrExists) {
				// Another attempt with the same key stored it in the meantime.
				if g, found, err := s.reopen(ctx, r, c, req, id, fp); found || err != nil {
					return g, err
				}
			}
			return nil, err
		}
	}
	s.emit(Event{Time: now, Type: EventLogin, Realm: r.Name, ClientID: c.ClientID, SessionID: us.ID,
		UserID: us.UserID, Offline: offline, Transient: req.Transient, IP: us.IPAddress})
	return g, nil
}

// admit makes room for a new session of us's user on c under the realm's limits
// (a.Offline and a.Joining as the caller sets them), or refuses it with an event. The limits'
// leases are held until the caller calls the release, once the session is stored: the count
// it was admitted on holds only while no other login of the same user, client or realm runs
// (core/sessionlimit).
func (s *Service) admit(ctx context.Context, r *realm.Realm, c *realm.Client, us *usersessions.UserSession, now time.Time, a sessionlimit.Admission) (sessionlimit.Release, error) {
	if s.limits == nil {
		// A limit the operator set must hold or the login fail; this is a wiring mistake.
		return nil, fmt.Errorf("realm %q sets session limits and this session service has no enforcer (Deps.Limits)", r.Name)
	}
	a.Realm, a.ClientID, a.UserID = r, c.ClientID, us.UserID
	release, err := s.limits.Admit(ctx, a)
	if ex := (*sessionlimit.ExceededError)(nil); errors.As(err, &ex) {
		s.emit(Event{Time: now, Type: EventLoginRefused, Realm: r.Name, ClientID: c.ClientID, SessionID: sessionOf(a, us),
			UserID: us.UserID, Offline: ex.Offline, IP: us.IPAddress, Reason: ex.Error(), Refusal: RefusedSessionLimit})
	}
	return release, err
}

// sessionOf names the session a refused admission would have joined; "" for a new one.
func sessionOf(a sessionlimit.Admission, us *usersessions.UserSession) string {
	if a.Joining {
		return us.ID
	}
	return ""
}

// create stores new sessions; if one of them fails, the others are removed again so that a
// failed login leaves nothing behind.
func (s *Service) create(ctx context.Context, sessions []*usersessions.UserSession) error {
	errs, err := s.store.Create(ctx, sessions)
	if err != nil {
		return fmt.Errorf("store the new session: %w", err)
	}
	var created []usersessions.Key
	var failed []error
	for i, e := range errs {
		if e == nil {
			created = append(created, sessions[i].Key())
		} else {
			failed = append(failed, e)
		}
	}
	if len(failed) == 0 && len(errs) == len(sessions) {
		return nil
	}
	if len(created) > 0 {
		if _, err := s.store.Delete(ctx, created); err != nil {
			s.log.Error("a half-stored login could not be removed", "session", sessions[0].ID, "error", err)
		}
	}
	return fmt.Errorf("store the new session: %w", errors.Join(failed...))
}

// Attach adds a client session for another client to a live session (single sign-on) and
// issues its tokens. An existing client session of that client is replaced, which starts a
// new refresh-token lineage. Authenticating a client moves the user session's idle clock.
func (s *Service) Attach(ctx context.Context, req AttachRequest) (*Grant, error) {
	r, c, err := s.client(req.Realm, req.ClientID)
	if err != nil {
		return nil, err
	}
	us, err := s.getSession(ctx, usersessions.Key{RealmID: r.Name, ID: req.SessionID})
	if err != nil {
		return nil, err
	}
	return s.attach(ctx, r, c, us, req, EventAttach)
}

// attach is Attach of the session us as read, recorded as an event of type typ.
func (s *Service) attach(ctx context.Context, r *realm.Realm, c *realm.Client, us *usersessions.UserSession, req AttachRequest, typ string) (*Grant, error) {
	rules := s.rules(r)
	now := s.clock()
	if e := checkUserSession(rules, us, false, now); e != nil {
		return nil, e
	}
	// A session that began before the realm's not-before is revoked with its tokens, as
	// Keycloak refuses an SSO cookie issued before it: the user logs in again.
	if nb := s.realmNotBefore(r); !nb.IsZero() && us.Started.Unix() < nb.Unix() {
		return nil, errorf(InvalidGrant, "Session not active: started before the realm's not-before policy (%s)", stamp(nb))
	}
	scope, offline := grantScope(req.Scope, us.Notes[NoteOfflineAccess] == "true" && c.OfflineAccess && !req.Implicit)
	_, rejoin := us.Clients[c.ClientID] // the code of a login redeemed: the client is counted already
	cs := attachTo(us, c.ClientID, scope, now)
	rules.Stamp(us)

	backing, newOffline := us, false
	var err error
	if offline {
		if backing, err = s.getSession(ctx, usersessions.Key{RealmID: r.Name, ID: us.ID, Offline: true}); err != nil {
			return nil, err
		}
		if backing == nil || checkUserSession(rules, backing, true, now) != nil {
			// No live offline session yet: one is created from the online session, as at login.
			backing, newOffline = offlineCopy(us, now), true
			backing.Clients = map[string]*usersessions.ClientSession{c.ClientID: backing.Clients[c.ClientID]}
		} else {
			attachTo(backing, c.ClientID, scope, now)
		}
		rules.Stamp(backing)
	}
	if r.SessionLimits.Any() && (!rejoin || newOffline) {
		release, err := s.admit(ctx, r, c, us, now, sessionlimit.Admission{Offline: newOffline, Joining: true})
		if err != nil {
			return nil, err
		}
		defer release()
	}
	g, err := s.issue(ctx, issue{realm: r, client: c, session: backing, scope: scope, refresh: !req.Implicit, implicit: req.Implicit, jkt: req.JKT})
	if err != nil {
		return nil, err
	}
	s.recordLineage(r, backing.Clients[c.ClientID], g)
	if err := s.putAttached(ctx, us, cs); err != nil {
		return nil, err
	}
	if offline {
		if newOffline {
			if _, err := s.store.Delete(ctx, []usersessions.Key{backing.Key()}); err != nil { // an expired leftover
				return nil, fmt.Errorf("replace the expired offline session: %w", err)
			}
			err = s.create(ctx, []*usersessions.UserSession{backing})
		} else {
			err = s.putAttached(ctx, backing, backing.Clients[c.ClientID])
		}
		if err != nil {
			return nil, err
		}
	}
	s.emit(Event{Time: now, Type: typ, Realm: r.Name, ClientID: c.ClientID, SessionID: us.ID, UserID: us.UserID, Offline: offline,
		IP: us.IPAddress})
	return g, nil
}

// attachTo puts a fresh client session into us (keeping the stored Version, so the write
// replaces exactly the client session read) and moves us's idle clock to now.
func attachTo(us *usersessions.UserSession, clientID, scope string, now time.Time) *usersessions.ClientSession {
	cs := newClientSession(us, clientID, scope, now)
	if old, ok := us.Clients[clientID]; ok {
		cs.Version = old.Version
	}
	if us.Clients == nil {
		us.Clients = map[string]*usersessions.ClientSession{}
	}
	us.Clients[clientID] = cs
	us.LastRefresh = now
	return cs
}

// putAttached writes an attached client session and touches its user session. The client
// session goes first: if the touch then fails, the client session is there but unused, and
// ends by its own idle timeout.
func (s *Service) putAttached(ctx context.Context, us *usersessions.UserSession, cs *usersessions.ClientSession) error {
	if err := firstErr(s.store.PutClientSessions(ctx, []*usersessions.ClientSession{cs})); err != nil {
		if errors.Is(err, spi.ErrConflict) || errors.Is(err, spi.ErrExists) {
			return errorf(InvalidRequest, "The session's client %q was changed at the same time; try again", cs.ClientID)
		}
		if errors.Is(err, spi.ErrNotFound) {
			return errorf(InvalidGrant, "Session not active: the user session ended")
		}
		return fmt.Errorf("store the client session: %w", err)
	}
	touch := usersessions.Touch{Session: us.Key(), LastRefresh: us.LastRefresh, ExpiresAt: us.ExpiresAt}
	if err := firstErr(s.store.Touch(ctx, []usersessions.Touch{touch})); err != nil {
		return fmt.Errorf("move the user session's idle clock: %w", err)
	}
	return nil
}

// recordLineage starts a new client session's refresh-token lineage with the token just
// issued, when the realm rotates refresh tokens. Without rotation nothing is tracked, so a
// realm that turns rotation on later starts a lineage at the next refresh.
func (s *Service) recordLineage(r *realm.Realm, cs *usersessions.ClientSession, g *Grant) {
	if r.RevokeRefreshToken && g.refreshID != "" {
		startLineage(cs, g.refreshID, g.IssuedAt)
	}
}

func newClientSession(us *usersessions.UserSession, clientID, scope string, now time.Time) *usersessions.ClientSession {
	return &usersessions.ClientSession{
		UserSessionID: us.ID,
		RealmID:       us.RealmID,
		ClientID:      clientID,
		Offline:       us.Offline,
		Started:       now,
		LastRefresh:   now,
		AuthMethod:    us.AuthMethod,
		Action:        actionAuthenticate,
		Scope:         scope,
	}
}

// offlineCopy returns the offline user session made from an online one at now: same id,
// user and client sessions, its own clocks.
func offlineCopy(us *usersessions.UserSession, now time.Time) *usersessions.UserSession {
	o := *us
	o.Offline = true
	o.Started, o.LastRefresh = now, now
	o.Version = 0
	o.Notes = maps.Clone(us.Notes)
	o.Clients = make(map[string]*usersessions.ClientSession, len(us.Clients))
	for id, cs := range us.Clients {
		oc := newClientSession(&o, id, cs.Scope, now)
		o.Clients[id] = oc
	}
	return &o
}

// grantScope returns the scope to grant: the requested one, without offline_access unless
// an offline token may be issued, and whether one will be.
func grantScope(requested string, offlineAllowed bool) (string, bool) {
	fields := strings.Fields(requested)
	out := fields[:0]
	offline := false
	for _, f := range fields {
		if f == realm.OfflineAccessScope {
			if !offlineAllowed || offline {
				continue
			}
			offline = true
		}
		out = append(out, f)
	}
	return strings.Join(out, " "), offline
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
