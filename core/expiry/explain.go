package expiry

import (
	"maps"
	"slices"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Explanation says, for one user session and each of its client sessions, which limits
// apply, which setting each came from, when each ends, and which ends first. The explain
// endpoint returns it as JSON.
type Explanation struct {
	Realm              string              `json:"realm"`
	SessionID          string              `json:"sessionId"`
	Offline            bool                `json:"offline"`
	RememberMe         bool                `json:"rememberMe"`
	PersistentSessions bool                `json:"persistentSessions"`
	Now                time.Time           `json:"now"`
	Expired            bool                `json:"expired"`
	Session            Expiry              `json:"session"`
	Clients            []ClientExplanation `json:"clients"`
}

// ClientExplanation is the part of an Explanation for one client session.
type ClientExplanation struct {
	ClientID string `json:"clientId"`
	// Known is false when the realm has no such client any more; the realm's values apply.
	Known   bool   `json:"known"`
	Expired bool   `json:"expired"`
	Expiry  Expiry `json:"expiry"`
}

// Explain explains a stored session at now. Client sessions are listed by client id.
func (r Rules) Explain(us *usersessions.UserSession, now time.Time) Explanation {
	s := SessionOf(us)
	e := Explanation{
		Realm:              us.RealmID,
		SessionID:          us.ID,
		Offline:            us.Offline,
		RememberMe:         us.RememberMe,
		PersistentSessions: r.PersistentSessions,
		Now:                now,
		Session:            r.UserSession(s),
		Clients:            []ClientExplanation{},
	}
	e.Expired = !e.Session.Valid(now)
	for _, id := range slices.Sorted(maps.Keys(us.Clients)) {
		c, known := r.client(id)
		x := r.ClientSession(c, s, ClientSessionOf(us.Clients[id]))
		e.Clients = append(e.Clients, ClientExplanation{ClientID: id, Known: known, Expired: !x.Valid(now), Expiry: x})
	}
	return e
}

// Stamp sets ExpiresAt on a session row and on each of its client session rows to their
// StoredExpiresAt, so that cleanup (DeleteExpired with before = now) removes a row at the
// first pass after it stops being valid, and not before: each row by its own rules, so a
// remember-me timeout never keeps an ordinary session (seed 003). Every refresh stamps, so
// the times are computed without the explanation, which they do not depend on.
func (r Rules) Stamp(us *usersessions.UserSession) {
	s := SessionOf(us)
	us.ExpiresAt = r.userSession(s, false).StoredExpiresAt
	for id, cs := range us.Clients {
		c, _ := r.client(id)
		cs.ExpiresAt = r.clientSession(c, s, ClientSessionOf(cs), false).StoredExpiresAt
	}
}

// client finds a client session's client by clientId, or by internal id.
func (r Rules) client(id string) (*realm.Client, bool) {
	if c, ok := r.Realm.Client(id); ok {
		return c, true
	}
	for _, c := range r.Realm.Clients {
		if c.ID == id {
			return c, true
		}
	}
	return nil, false
}
