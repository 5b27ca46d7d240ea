// Package expiry computes when sessions and tokens end under a realm's settings: Keycloak's
// expiry maths (SessionExpirationUtils) with the seeds' corrections, as pure functions.
//
// Nothing here reads a clock or does I/O: the current time is always a parameter, so the
// same inputs give the same answer on every node and in every test.
package expiry

import (
	"fmt"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// IdleWindow is the grace Keycloak adds to idle timeouts so that a node which has not yet
// heard of a refresh on another node does not end the session early (seed 000: "when you
// have the timeout set to 30 minutes, it will be 32 minutes"). Seed 004: "only applied if
// persistent user sessions are not active".
const IdleWindow = 120 * time.Second

// Session is what the maths needs to know about a user session.
type Session struct {
	Started     time.Time
	LastRefresh time.Time // zero: Started
	RememberMe  bool
	Offline     bool
}

// ClientSession is what the maths needs to know about a client session.
type ClientSession struct {
	Started     time.Time // zero: the user session's start
	LastRefresh time.Time // zero: Started
}

// SessionOf returns the facts of a stored user session.
func SessionOf(us *usersessions.UserSession) Session {
	return Session{Started: us.Started, LastRefresh: us.LastRefresh, RememberMe: us.RememberMe, Offline: us.Offline}
}

// ClientSessionOf returns the facts of a stored client session.
func ClientSessionOf(cs *usersessions.ClientSession) ClientSession {
	return ClientSession{Started: cs.Started, LastRefresh: cs.LastRefresh}
}

// Rules are the inputs every computation shares.
type Rules struct {
	Realm *realm.Realm
	// PersistentSessions: sessions are stored, not only cached; then there is no idle
	// window (seed 004).
	PersistentSessions bool
}

// What ended, or will end, a session first: Expiry.EndsBy.
const (
	EndsByIdle        = "idle"
	EndsByMax         = "max"
	EndsByUserSession = "user session"
)

// Limit is one limit on a session or token: how long, which setting it came from, and when
// it runs out.
type Limit struct {
	Seconds int64     `json:"seconds,omitempty"` // the timeout; 0 for the user-session limit of a client session
	Source  string    `json:"source"`            // e.g. "realm ssoSessionIdleTimeoutRememberMe"
	From    time.Time `json:"from,omitzero"`     // last refresh (idle) or start (max)
	Ends    time.Time `json:"ends"`              // From + Seconds, or the cap it was cut to
	Note    string    `json:"note,omitempty"`    // e.g. why a value was cut or not used
}

// Duration returns the timeout.
func (l Limit) Duration() time.Duration { return time.Duration(l.Seconds) * time.Second }

// Expiry is when a user or client session ends, and why.
type Expiry struct {
	Idle Limit `json:"idle"`
	// Max is nil when the session has no maximum (offline, Offline Session Max Limited off).
	Max *Limit `json:"max,omitempty"`
	// UserSession is set for client sessions: a client session never outlives its user session.
	UserSession       *Limit `json:"userSession,omitempty"`
	IdleWindowSeconds int64  `json:"idleWindowSeconds"`
	// ExpiresAt is the first instant the session is no longer valid:
	// min(Idle.Ends + window, Max.Ends, UserSession.Ends).
	ExpiresAt time.Time `json:"expiresAt"`
	// StoredExpiresAt is the row's ExpiresAt: the session's own rules without the user
	// session, whose idle clock other clients move (the store removes client sessions of a
	// gone user session itself). Equal to ExpiresAt for a user session.
	StoredExpiresAt time.Time `json:"storedExpiresAt"`
	EndsBy          string    `json:"endsBy"`
	Why             string    `json:"why"`
	// Ignored lists configured settings that do not apply to this session, and why.
	Ignored []string `json:"ignored,omitempty"`
}

// Valid reports whether the session is valid at now. The idle window, when it applies, is
// already in ExpiresAt, so this is Keycloak's "idle > now − window && max > now".
func (e Expiry) Valid(now time.Time) bool { return now.Before(e.ExpiresAt) }

// window is the idle window that applies (seed 004).
func (r Rules) window() time.Duration {
	if r.PersistentSessions {
		return 0
	}
	return IdleWindow
}

// UserSession returns when a user session ends.
//
// Online: min(last refresh + SSO idle, started + SSO max), the remember-me values used for
// remember-me logins when they are > 0 and longer. Offline: last refresh + offline idle,
// and started + offline max only when Offline Session Max Limited is on.
func (r Rules) UserSession(s Session) Expiry { return r.userSession(s, true).expiry() }

// UserSessionEnds is UserSession(s).ExpiresAt without the explanation (Why, Ignored), for
// the checks a token request makes, which need the explanation only when they refuse.
func (r Rules) UserSessionEnds(s Session) time.Time { return r.userSession(s, false).ExpiresAt }

func (r Rules) userSession(s Session, explain bool) computed {
	s = s.normal()
	idle := r.userIdle(s, explain)
	var max *Limit
	var ignored []string
	if m, ok := r.userMax(s, explain); ok {
		l := m.limit(s.Started)
		max = &l
	} else if conf := r.Realm.Timeouts; conf.OfflineSessionMax > 0 && explain {
		ignored = append(ignored, fmt.Sprintf("realm offlineSessionMaxLifespan (%s): offlineSessionMaxLifespanEnabled is off, offline sessions expire only by idle", conf.OfflineSessionMax))
	}
	e := r.combine(idle.limit(s.LastRefresh), max, nil, explain)
	e.Ignored = ignored
	return e
}

// ClientSession returns when a client session ends. c may be nil (no per-client overrides).
//
// Its idle and max come from the client's attributes, else the realm's client session
// settings, else the user session's (remember-me aware); online and offline alike, its max
// is cut at the user session's max, and the whole is cut at the user session's end.
func (r Rules) ClientSession(c *realm.Client, s Session, cs ClientSession) Expiry {
	return r.clientSession(c, s, cs, true).expiry()
}

// ClientSessionEnds is ClientSession(c, s, cs).ExpiresAt without the explanation, as
// UserSessionEnds.
func (r Rules) ClientSessionEnds(c *realm.Client, s Session, cs ClientSession) time.Time {
	return r.clientSession(c, s, cs, false).ExpiresAt
}

func (r Rules) clientSession(c *realm.Client, s Session, cs ClientSession, explain bool) computed {
	s = s.normal()
	cs = cs.normal(s)
	user := r.userSession(s, explain)
	idle := r.clientIdle(c, s, explain)
	var max *Limit
	m, hasMax, ignored := r.clientMax(c, s, cs, user.maxLimit(), explain)
	if hasMax {
		max = &m
	}
	parent := Limit{Source: "user session", Ends: user.ExpiresAt}
	if explain {
		parent.Note = "the user session ends by " + user.EndsBy + ": " + user.Why
	}
	e := r.combine(idle.limit(cs.LastRefresh), max, &parent, explain)
	e.Ignored = ignored
	return e
}

// UserSessionValid reports whether a user session is valid at now.
func (r Rules) UserSessionValid(s Session, now time.Time) bool {
	return now.Before(r.UserSessionEnds(s))
}

// ClientSessionValid reports whether a client session, and so its user session, is valid at now.
func (r Rules) ClientSessionValid(c *realm.Client, s Session, cs ClientSession, now time.Time) bool {
	return now.Before(r.ClientSessionEnds(c, s, cs))
}

// RefreshToken returns the exp of a refresh (or offline) token issued now for that client
// session, i.e. computed with its LastRefresh set to the issue time. It is the session's end
// without the idle window: a refresh token never outlives its client session, nor that its
// user session (seed 002). The window covers cluster lag in the session's view, not the token.
func (r Rules) RefreshToken(c *realm.Client, s Session, cs ClientSession) time.Time {
	e := r.clientSession(c, s, cs, false)
	user := r.userSession(s, false)
	return earliest(e.Idle.Ends, endOf(e.maxLimit()), user.Idle.Ends, endOf(user.maxLimit()))
}

// AccessToken returns the lifespan and exp of an access token issued at issuedAt: the
// client's access.token.lifespan attribute, else the realm's Access Token Lifespan, or for
// the implicit flow the realm's Access Token Lifespan For Implicit Flow (as in Keycloak, the
// client attribute does not apply to it); never past the end of the session, which is
// RefreshToken's bound (seed 002: "Access-token validity is always bounded by the refresh
// token's lifespan").
func (r Rules) AccessToken(c *realm.Client, s Session, cs ClientSession, issuedAt time.Time, implicit bool) Limit {
	return r.accessToken(c, s, cs, issuedAt, implicit, true)
}

// AccessTokenEnds is AccessToken(c, s, cs, issuedAt, implicit).Ends without the
// explanation (Source, Note), for issuing, which needs only the exp.
func (r Rules) AccessTokenEnds(c *realm.Client, s Session, cs ClientSession, issuedAt time.Time, implicit bool) time.Time {
	return r.accessToken(c, s, cs, issuedAt, implicit, false).Ends
}

func (r Rules) accessToken(c *realm.Client, s Session, cs ClientSession, issuedAt time.Time, implicit, explain bool) Limit {
	conf, t := r.Realm.Timeouts, r.Realm.Timeouts.Effective()
	var p pick
	switch {
	case implicit:
		p = setting(explain, "accessTokenLifespanForImplicitFlow", conf.AccessTokenLifespanImplicit, t.AccessTokenLifespanImplicit)
	case c != nil && c.AccessTokenLifespan > 0:
		p = attribute(explain, realm.AttrAccessTokenLifespan, c.AccessTokenLifespan)
	default:
		p = setting(explain, "accessTokenLifespan", conf.AccessTokenLifespan, t.AccessTokenLifespan)
	}
	l := p.limit(issuedAt)
	if end := r.RefreshToken(c, s, cs); end.Before(l.Ends) {
		l.Ends = end
		if explain {
			l.Note = "cut at the session's end"
		}
	}
	return l
}

// computed is an Expiry whose limits are held by value, so that computing one allocates
// nothing: the checks and stamps of every token request read only its times. expiry
// returns it as an Expiry.
type computed struct {
	Expiry            // Max and UserSession are nil: max and parent hold them
	max, parent       Limit
	hasMax, hasParent bool
}

func (c computed) expiry() Expiry {
	e := c.Expiry
	e.Max, e.UserSession = c.maxLimit(), c.parentLimit()
	return e
}

func (c *computed) maxLimit() *Limit {
	if !c.hasMax {
		return nil
	}
	return &c.max
}

func (c *computed) parentLimit() *Limit {
	if !c.hasParent {
		return nil
	}
	return &c.parent
}

// combine combines idle, max and the parent user session (nil for a user session).
// explain: with Why.
func (r Rules) combine(idle Limit, max, parent *Limit, explain bool) computed {
	w := r.window()
	var c computed
	if max != nil {
		c.max, c.hasMax = *max, true
	}
	if parent != nil {
		c.parent, c.hasParent = *parent, true
	}
	e := &c.Expiry
	*e = Expiry{Idle: idle, IdleWindowSeconds: int64(w / time.Second)}
	e.ExpiresAt, e.EndsBy = idle.Ends.Add(w), EndsByIdle
	// On a tie the hard limit is named: it would have ended the session without the idle one.
	if max != nil && !max.Ends.After(e.ExpiresAt) {
		e.ExpiresAt, e.EndsBy = max.Ends, EndsByMax
	}
	e.StoredExpiresAt = e.ExpiresAt
	if parent != nil && parent.Ends.Before(e.ExpiresAt) {
		e.ExpiresAt, e.EndsBy = parent.Ends, EndsByUserSession
	}
	if explain {
		e.Why = c.expiry().why(w)
	}
	return c
}

func (e Expiry) why(w time.Duration) string {
	switch e.EndsBy {
	case EndsByMax:
		return fmt.Sprintf("max: %s after %s (%s)%s", e.Max.Duration(), stamp(e.Max.From), e.Max.Source, suffix(e.Max.Note))
	case EndsByUserSession:
		return e.UserSession.Note
	}
	var b strings.Builder
	fmt.Fprintf(&b, "idle: no refresh for %s after %s (%s)%s", e.Idle.Duration(), stamp(e.Idle.From), e.Idle.Source, suffix(e.Idle.Note))
	if w > 0 {
		fmt.Fprintf(&b, ", plus the %s idle window (persistent sessions off)", w)
	}
	if e.Max == nil {
		b.WriteString("; no max applies")
	}
	return b.String()
}

func suffix(note string) string {
	if note == "" {
		return ""
	}
	return "; " + note
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func endOf(l *Limit) time.Time {
	if l == nil {
		return time.Time{}
	}
	return l.Ends
}

// earliest returns the earliest non-zero time.
func earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}

func (s Session) normal() Session {
	if s.LastRefresh.IsZero() {
		s.LastRefresh = s.Started
	}
	return s
}

func (cs ClientSession) normal(s Session) ClientSession {
	if cs.Started.IsZero() {
		cs.Started = s.Started
	}
	if cs.LastRefresh.IsZero() {
		cs.LastRefresh = cs.Started
	}
	return cs
}
