package cache

import (
	"math"
	"time"
	"unique"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// entry is one cached user session in a compact form: a cache holding a million offline
// sessions must stay well under a kibibyte a session (Keycloak's sizing guide budgets about
// 5 KB). Against a *usersessions.UserSession it saves by
//   - times as int64 Unix nanoseconds instead of 24-byte time.Time values;
//   - notes as a slice of key/value pairs instead of a map (a Go map costs ~200 bytes
//     even with one entry), likewise the client sessions as a slice;
//   - the fields a client session repeats from its user session (realm, session id,
//     offline) not stored twice;
//   - the strings most sessions share (realm, state, auth method, user agent, client id,
//     redirect URI, scope, note keys) interned with package unique, so their bytes are
//     held once however many sessions name them;
//   - the LRU links in the entry itself (no container/list element and boxed value).
//
// An entry is only read and changed under Cache.mu, and never handed out: a hit builds a
// fresh *usersessions.UserSession (materialize), so callers cannot change the cache.
type entry struct {
	prev, next *entry // LRU list; Cache.lru is its sentinel
	until      int64  // Unix ns after which the entry is forgotten (its cache lifespan)

	realm, id string
	userID, loginUsername, ipAddress, userAgent,
	authMethod, brokerSessionID, brokerUserID, state string
	started, lastRefresh, expiresAt int64
	notes                           []string // key, value, key, value, …; nil for a nil map
	version                         int64
	clients                         []client
	offline, rememberMe             bool
}

// client is one client session of an entry.
type client struct {
	clientID, authMethod, redirectURI, action, scope string
	current, previous                                string // refresh token ids
	notes                                            []string
	started, lastRefresh, expiresAt, rotatedAt       int64
	version                                          int64
	useCount                                         int
}

// key is the entry's key, sharing the entry's strings.
func (e *entry) key() usersessions.Key {
	return usersessions.Key{RealmID: e.realm, ID: e.id, Offline: e.offline}
}

// entryOne is an entry allocated with room for one client session and two notes in the
// same allocation: the common offline session (one client, the offline-access note) then
// costs one allocation instead of three, for the same bytes.
type entryOne struct {
	entry
	client [1]client
	notes  [2]string
}

// compact returns s as an entry, without links or lifespan. It needs no lock.
func (in *interner) compact(s *usersessions.UserSession) *entry {
	var e *entry
	if len(s.Clients) == 1 {
		one := &entryOne{}
		e = &one.entry
		e.clients = one.client[:0:1]
		if len(s.Notes) == 1 {
			e.notes = one.notes[:0:2]
		}
	} else {
		e = &entry{}
		if len(s.Clients) > 0 {
			e.clients = make([]client, 0, len(s.Clients))
		}
	}
	e.realm = in.intern(fieldRealm, s.RealmID)
	e.id = s.ID
	e.userID = s.UserID
	e.loginUsername = s.LoginUsername
	e.ipAddress = s.IPAddress
	e.userAgent = in.intern(fieldUserAgent, s.UserAgent)
	e.authMethod = in.intern(fieldAuthMethod, s.AuthMethod)
	e.brokerSessionID = s.BrokerSessionID
	e.brokerUserID = s.BrokerUserID
	e.state = in.intern(fieldState, string(s.State))
	e.started = nanos(s.Started)
	e.lastRefresh = nanos(s.LastRefresh)
	e.expiresAt = nanos(s.ExpiresAt)
	e.notes = in.notes(e.notes, s.Notes)
	e.version = s.Version
	e.offline = s.Offline
	e.rememberMe = s.RememberMe
	for id, cs := range s.Clients {
		if cs != nil {
			e.clients = append(e.clients, in.client(id, cs))
		}
	}
	return e
}

func compactClient(id string, cs *usersessions.ClientSession) client {
	var in interner
	return in.client(id, cs)
}

func (in *interner) client(id string, cs *usersessions.ClientSession) client {
	return client{
		clientID:    in.intern(fieldClientID, id),
		authMethod:  in.intern(fieldAuthMethod, cs.AuthMethod),
		redirectURI: in.intern(fieldRedirectURI, cs.RedirectURI),
		action:      in.intern(fieldAction, cs.Action),
		scope:       in.intern(fieldScope, cs.Scope),
		current:     cs.CurrentRefreshToken,
		previous:    cs.PreviousRefreshToken,
		notes:       in.notes(nil, cs.Notes),
		started:     nanos(cs.Started),
		lastRefresh: nanos(cs.LastRefresh),
		expiresAt:   nanos(cs.ExpiresAt),
		rotatedAt:   nanos(cs.RotatedAt),
		version:     cs.Version,
		useCount:    cs.CurrentRefreshTokenUseCount,
	}
}

// materialize returns the entry as a session the caller owns.
func (e *entry) materialize() *usersessions.UserSession {
	s := &usersessions.UserSession{
		ID:              e.id,
		RealmID:         e.realm,
		UserID:          e.userID,
		LoginUsername:   e.loginUsername,
		IPAddress:       e.ipAddress,
		UserAgent:       e.userAgent,
		AuthMethod:      e.authMethod,
		BrokerSessionID: e.brokerSessionID,
		BrokerUserID:    e.brokerUserID,
		RememberMe:      e.rememberMe,
		Offline:         e.offline,
		State:           usersessions.State(e.state),
		Started:         fromNanos(e.started),
		LastRefresh:     fromNanos(e.lastRefresh),
		ExpiresAt:       fromNanos(e.expiresAt),
		Notes:           notesMap(e.notes),
		Version:         e.version,
		Clients:         make(map[string]*usersessions.ClientSession, len(e.clients)),
	}
	for i := range e.clients {
		c := &e.clients[i]
		s.Clients[c.clientID] = &usersessions.ClientSession{
			UserSessionID:               e.id,
			RealmID:                     e.realm,
			ClientID:                    c.clientID,
			Offline:                     e.offline,
			Started:                     fromNanos(c.started),
			LastRefresh:                 fromNanos(c.lastRefresh),
			ExpiresAt:                   fromNanos(c.expiresAt),
			AuthMethod:                  c.authMethod,
			RedirectURI:                 c.redirectURI,
			Action:                      c.action,
			Scope:                       c.scope,
			Notes:                       notesMap(c.notes),
			CurrentRefreshToken:         c.current,
			CurrentRefreshTokenUseCount: c.useCount,
			PreviousRefreshToken:        c.previous,
			RotatedAt:                   fromNanos(c.rotatedAt),
			Version:                     c.version,
		}
	}
	return s
}

// client returns the entry's client session of that client, or nil.
func (e *entry) client(id string) *client {
	for i := range e.clients {
		if e.clients[i].clientID == id {
			return &e.clients[i]
		}
	}
	return nil
}

// putClient stores cs, replacing the client session of the same client.
func (e *entry) putClient(cs *usersessions.ClientSession) {
	c := compactClient(cs.ClientID, cs)
	if old := e.client(cs.ClientID); old != nil {
		*old = c
		return
	}
	e.clients = append(e.clients, c)
}

// deleteClient removes the client session of that client.
func (e *entry) deleteClient(id string) {
	for i := range e.clients {
		if e.clients[i].clientID == id {
			e.clients = append(e.clients[:i], e.clients[i+1:]...)
			return
		}
	}
}

// intern returns the canonical copy of s, so that the many sessions naming the same realm,
// client or user agent share its bytes. unique drops values no one holds any more, so
// interning a value that is rare costs nothing lasting.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// The fields an interner remembers its last value of.
const (
	fieldRealm = iota
	fieldUserAgent
	fieldAuthMethod
	fieldState
	fieldClientID
	fieldRedirectURI
	fieldAction
	fieldScope
	fieldNoteKey
	fieldNoteValue
	fields
)

// interner is intern with a memo of the last value of each field: the sessions of one
// batch mostly repeat their neighbours' realm, client, scope and state, and a comparison
// with the last value (immediate when a store hands out one copy of a value, as the SQL
// stores do) is cheaper than unique's hash and lookup. Use one per goroutine.
type interner struct {
	last [fields]struct{ in, out string }
}

func (in *interner) intern(field int, s string) string {
	l := &in.last[field]
	if s == l.in {
		return l.out
	}
	l.in, l.out = s, intern(s)
	return l.out
}

// Interned note values are the short ones ("true"): longer values are usually specific to
// one session (token lineages), and interning them would only cost time.
const maxInternedNoteValue = 16

// notes returns m as key/value pairs, appended to into (which may have room for them).
func (in *interner) notes(into []string, m map[string]string) []string {
	if m == nil {
		return nil
	}
	if into == nil || cap(into) < 2*len(m) {
		into = make([]string, 0, 2*len(m))
	}
	for k, v := range m {
		if len(v) <= maxInternedNoteValue {
			v = in.intern(fieldNoteValue, v)
		}
		into = append(into, in.intern(fieldNoteKey, k), v)
	}
	return into
}

func notesMap(pairs []string) map[string]string {
	if pairs == nil {
		return nil
	}
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// Times are kept as Unix nanoseconds, exact from 1678 to 2262; the zero time has its own
// value, and times outside that range are clamped to it (a session ending after 2262 ends
// "never" either way). They come back in UTC.
const zeroTime = math.MinInt64

var (
	minNanos = time.Unix(0, math.MinInt64+1)
	maxNanos = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroTime
	case t.Before(minNanos):
		return math.MinInt64 + 1
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
