package admin

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// SessionRep is a user session as Keycloak's admin API shows it (UserSessionRepresentation):
// times in milliseconds since the epoch, clients by internal id → clientId.
type SessionRep struct {
	ID         string            `json:"id"`
	Username   string            `json:"username"`
	UserID     string            `json:"userId"`
	IPAddress  string            `json:"ipAddress"`
	Start      int64             `json:"start"`
	LastAccess int64             `json:"lastAccess"`
	RememberMe bool              `json:"rememberMe"`
	Clients    map[string]string `json:"clients"`
	// UserAgent is the browser's at login. It is not in Keycloak's representation, so the
	// JSON API leaves it out; the console shows it as a device.
	UserAgent string `json:"-"`
}

// ClientStat is one row of Keycloak's client-session-stats. The counts are decimal strings,
// as Keycloak answers them.
type ClientStat struct {
	ID       string `json:"id"`
	ClientID string `json:"clientId"`
	Active   string `json:"active"`
	Offline  string `json:"offline"`
}

// ClientRep is the part of Keycloak's ClientRepresentation the admin API shows; never the
// secret.
type ClientRep struct {
	ID           string `json:"id"`
	ClientID     string `json:"clientId"`
	Enabled      bool   `json:"enabled"`
	PublicClient bool   `json:"publicClient"`
	AdminURL     string `json:"adminUrl,omitempty"`
	// NotBefore is the client's own not-before policy in seconds since the epoch, 0 for none.
	NotBefore int64 `json:"notBefore"`
}

// Query pages a listing. First is Keycloak's offset: it is reached by walking keyset pages,
// so it costs reading the sessions before it but never holds them. After, the id of the
// last session of the previous page, starts right there; it is the cheap way through a large
// set. Max is the page size: 0 means DefaultResults, more than MaxResults is refused.
type Query struct {
	First int
	Max   int
	After string
}

func (q Query) normalise() (Query, error) {
	switch {
	case q.First < 0:
		return q, invalidf("first must be 0 or more, not %d", q.First)
	case q.Max < 0:
		return q, invalidf("max must be 1 to %d, not %d", MaxResults, q.Max)
	case q.Max > MaxResults:
		return q, invalidf("max must be at most %d, not %d; page with the next link (after=) instead", MaxResults, q.Max)
	case q.Max == 0:
		q.Max = DefaultResults
	}
	return q, nil
}

// Stats is the realm's sessions overview: per client, its online and offline session counts.
// Clients with no session are left out, as in Keycloak; sessions of a client no longer
// configured are shown under its clientId.
func (s *Service) Stats(ctx context.Context, realmName string) ([]ClientStat, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	counts, err := s.liveByClient(ctx, r.Name, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]ClientStat, 0, len(counts))
	for _, c := range counts {
		out = append(out, ClientStat{
			ID: internalID(r, c.ClientID), ClientID: c.ClientID,
			Active: strconv.FormatInt(c.Online, 10), Offline: strconv.FormatInt(c.Offline, 10),
		})
	}
	return out, nil
}

// internalID is the internal id of a realm's client, or its clientId when the client is no
// longer configured.
func internalID(r *realm.Realm, clientID string) string {
	if c, ok := r.Client(clientID); ok && c.ID != "" {
		return c.ID
	}
	return clientID
}

// Clients lists a realm's clients, or the one with that clientId when it is not "" (Keycloak's
// GET clients?clientId=).
func (s *Service) Clients(ctx context.Context, realmName, clientID string) ([]ClientRep, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	out := []ClientRep{}
	for _, c := range r.Clients {
		if clientID != "" && c.ClientID != clientID {
			continue
		}
		rep := ClientRep{ID: c.ID, ClientID: c.ClientID, Enabled: c.Enabled, PublicClient: c.PublicClient, AdminURL: c.AdminURL}
		if rep.ID == "" {
			rep.ID = c.ClientID
		}
		if s.policies != nil {
			rep.NotBefore = epochSeconds(s.policies.Client(r.Name, c.ClientID))
		}
		out = append(out, rep)
	}
	return out, nil
}

// RealmSessions is one page of a realm's online or offline sessions (a sessiond extension:
// Keycloak's console lists them through its UI endpoints). next is the After of the
// following page, "" when this page was not full.
func (s *Service) RealmSessions(ctx context.Context, realmName string, offline bool, q Query) (page []SessionRep, next string, err error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, "", err
	}
	return s.listPage(ctx, r, usersessions.Filter{RealmID: r.Name, Offline: kind(offline), LiveAt: s.now()}, q, "")
}

// ClientSessions is one page of the sessions that have a client session of the client with
// internal id clientUUID (GET clients/{id}/user-sessions and offline-sessions).
func (s *Service) ClientSessions(ctx context.Context, realmName, clientUUID string, offline bool, q Query) (page []SessionRep, next string, err error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, "", err
	}
	c, err := s.clientByID(r.Name, clientUUID)
	if err != nil {
		return nil, "", err
	}
	return s.listPage(ctx, r, usersessions.Filter{RealmID: r.Name, ClientID: c.ClientID, Offline: kind(offline), LiveAt: s.now()}, q, "")
}

// ClientSessionCount counts the online or offline sessions of a client (session-count,
// offline-session-count).
func (s *Service) ClientSessionCount(ctx context.Context, realmName, clientUUID string, offline bool) (int64, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return 0, err
	}
	c, err := s.clientByID(r.Name, clientUUID)
	if err != nil {
		return 0, err
	}
	n, err := s.store.Count(ctx, usersessions.Filter{RealmID: r.Name, ClientID: c.ClientID, Offline: kind(offline), LiveAt: s.now()})
	if err != nil {
		return 0, fmt.Errorf("count sessions of client %q: %w", c.ClientID, err)
	}
	return n, nil
}

// UserSessions hands emit a user's online sessions, a page at a time, however many there
// are (Keycloak answers users/{id}/sessions unpaged). A user with none is not an error:
// sessiond keeps no user directory to tell an unknown user from one who is signed out.
func (s *Service) UserSessions(ctx context.Context, realmName, userID string, emit func([]SessionRep) error) error {
	r, err := s.realm(realmName)
	if err != nil {
		return err
	}
	f := usersessions.Filter{RealmID: r.Name, UserID: userID, Offline: usersessions.OnlineOnly, LiveAt: s.now()}
	return s.walk(ctx, f, func(page []*usersessions.UserSession) error { return emit(reps(r, page, "", f.LiveAt)) })
}

// UserOfflineSessions hands emit, a page at a time, a user's offline sessions that hold an
// offline token of the client with internal id clientUUID; lastAccess is that client
// session's, as in Keycloak.
func (s *Service) UserOfflineSessions(ctx context.Context, realmName, userID, clientUUID string, emit func([]SessionRep) error) error {
	r, err := s.realm(realmName)
	if err != nil {
		return err
	}
	c, err := s.clientByID(r.Name, clientUUID)
	if err != nil {
		return err
	}
	f := usersessions.Filter{RealmID: r.Name, UserID: userID, ClientID: c.ClientID, Offline: usersessions.OfflineOnly, LiveAt: s.now()}
	return s.walk(ctx, f, func(page []*usersessions.UserSession) error { return emit(reps(r, page, c.ClientID, f.LiveAt)) })
}

// listPage reads one page of f, reaching q.First by walking keyset pages of the service's
// page size: only one page is held at a time. f must select one kind of session (online or
// offline), whose ids are unique, so that an id is a cursor.
func (s *Service) listPage(ctx context.Context, r *realm.Realm, f usersessions.Filter, q Query, lastAccessOf string) ([]SessionRep, string, error) {
	q, err := q.normalise()
	if err != nil {
		return nil, "", err
	}
	after := q.After
	for skip := q.First; skip > 0; {
		page, err := s.store.List(ctx, f, usersessions.Page{After: after, Limit: min(skip, s.pageSize)})
		if err != nil {
			return nil, "", fmt.Errorf("list sessions: %w", err)
		}
		if len(page) == 0 {
			return []SessionRep{}, "", nil
		}
		skip -= len(page)
		after = page[len(page)-1].ID
	}
	page, err := s.store.List(ctx, f, usersessions.Page{After: after, Limit: q.Max})
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	next := ""
	if len(page) >= q.Max {
		next = page[len(page)-1].ID
	}
	return reps(r, page, lastAccessOf, f.LiveAt), next, nil
}

// walk calls fn with successive pages of f until the set is exhausted. f must select one
// kind of session. Sessions fn removes do not disturb the walk: it resumes after the last id
// it has seen.
func (s *Service) walk(ctx context.Context, f usersessions.Filter, fn func([]*usersessions.UserSession) error) error {
	after := ""
	for {
		page, err := s.store.List(ctx, f, usersessions.Page{After: after, Limit: s.pageSize})
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < s.pageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

func kind(offline bool) usersessions.OfflineSelector {
	if offline {
		return usersessions.OfflineOnly
	}
	return usersessions.OnlineOnly
}

// reps represents sessions; with lastAccessOf set, lastAccess is that client session's.
// Client sessions that have ended by liveAt (usersessions.Live) are left out: the store
// keeps them until cleanup, but they are over.
func reps(r *realm.Realm, page []*usersessions.UserSession, lastAccessOf string, liveAt time.Time) []SessionRep {
	out := make([]SessionRep, 0, len(page))
	for _, us := range page {
		rep := SessionRep{
			ID: us.ID, Username: us.LoginUsername, UserID: us.UserID, IPAddress: us.IPAddress, UserAgent: us.UserAgent,
			Start: us.Started.UnixMilli(), LastAccess: us.LastRefresh.UnixMilli(), RememberMe: us.RememberMe,
			Clients: make(map[string]string, len(us.Clients)),
		}
		for clientID, cs := range us.Clients {
			if usersessions.Live(cs.ExpiresAt, liveAt) {
				rep.Clients[internalID(r, clientID)] = clientID
			}
		}
		if cs := us.Clients[lastAccessOf]; cs != nil {
			rep.LastAccess = cs.LastRefresh.UnixMilli()
		}
		out = append(out, rep)
	}
	return out
}

// epochSeconds is t in seconds since the epoch, 0 for the zero time (Keycloak's "none").
func epochSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
