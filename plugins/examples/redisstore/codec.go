package redisstore

import (
	"encoding/json"
	"fmt"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// storedSession is a user session as its JSON value holds it: the key fields (realm, id,
// offline) are in the key, times are unix microseconds.
type storedSession struct {
	UserID          string            `json:"u"`
	LoginUsername   string            `json:"n,omitempty"`
	IPAddress       string            `json:"ip,omitempty"`
	UserAgent       string            `json:"ua,omitempty"`
	AuthMethod      string            `json:"am,omitempty"`
	BrokerSessionID string            `json:"bs,omitempty"`
	BrokerUserID    string            `json:"bu,omitempty"`
	RememberMe      bool              `json:"rm,omitempty"`
	State           string            `json:"st"`
	Started         int64             `json:"t0"`
	LastRefresh     int64             `json:"lr"`
	ExpiresAt       int64             `json:"ex"`
	Notes           map[string]string `json:"no,omitempty"`
	Version         int64             `json:"v"`
}

type storedClient struct {
	Started              int64             `json:"t0"`
	LastRefresh          int64             `json:"lr"`
	ExpiresAt            int64             `json:"ex"`
	AuthMethod           string            `json:"am,omitempty"`
	RedirectURI          string            `json:"ru,omitempty"`
	Action               string            `json:"ac,omitempty"`
	Scope                string            `json:"sc,omitempty"`
	Notes                map[string]string `json:"no,omitempty"`
	CurrentRefreshToken  string            `json:"rt,omitempty"`
	RefreshTokenUseCount int               `json:"rc,omitempty"`
	PreviousRefreshToken string            `json:"pt,omitempty"`
	RotatedAt            int64             `json:"ra,omitempty"`
	Version              int64             `json:"v"`
}

func toStored(s *usersessions.UserSession, version int64) storedSession {
	return storedSession{
		UserID: s.UserID, LoginUsername: s.LoginUsername, IPAddress: s.IPAddress, UserAgent: s.UserAgent,
		AuthMethod: s.AuthMethod, BrokerSessionID: s.BrokerSessionID, BrokerUserID: s.BrokerUserID,
		RememberMe: s.RememberMe, State: string(s.State),
		Started: micros(s.Started), LastRefresh: micros(s.LastRefresh), ExpiresAt: micros(s.ExpiresAt),
		Notes: s.Notes, Version: version,
	}
}

func (st storedSession) session(k usersessions.Key) *usersessions.UserSession {
	return &usersessions.UserSession{
		ID: k.ID, RealmID: k.RealmID, Offline: k.Offline,
		UserID: st.UserID, LoginUsername: st.LoginUsername, IPAddress: st.IPAddress, UserAgent: st.UserAgent,
		AuthMethod: st.AuthMethod, BrokerSessionID: st.BrokerSessionID, BrokerUserID: st.BrokerUserID,
		RememberMe: st.RememberMe, State: usersessions.State(st.State),
		Started: fromMicros(st.Started), LastRefresh: fromMicros(st.LastRefresh), ExpiresAt: fromMicros(st.ExpiresAt),
		Notes: st.Notes, Version: st.Version,
		Clients: map[string]*usersessions.ClientSession{},
	}
}

func toStoredClient(c *usersessions.ClientSession, version int64) storedClient {
	return storedClient{
		Started: micros(c.Started), LastRefresh: micros(c.LastRefresh), ExpiresAt: micros(c.ExpiresAt),
		AuthMethod: c.AuthMethod, RedirectURI: c.RedirectURI, Action: c.Action, Scope: c.Scope, Notes: c.Notes,
		CurrentRefreshToken: c.CurrentRefreshToken, RefreshTokenUseCount: c.CurrentRefreshTokenUseCount,
		PreviousRefreshToken: c.PreviousRefreshToken, RotatedAt: micros(c.RotatedAt), Version: version,
	}
}

func (sc storedClient) client(k usersessions.Key, clientID string) *usersessions.ClientSession {
	return &usersessions.ClientSession{
		UserSessionID: k.ID, RealmID: k.RealmID, ClientID: clientID, Offline: k.Offline,
		Started: fromMicros(sc.Started), LastRefresh: fromMicros(sc.LastRefresh), ExpiresAt: fromMicros(sc.ExpiresAt),
		AuthMethod: sc.AuthMethod, RedirectURI: sc.RedirectURI, Action: sc.Action, Scope: sc.Scope, Notes: sc.Notes,
		CurrentRefreshToken: sc.CurrentRefreshToken, CurrentRefreshTokenUseCount: sc.RefreshTokenUseCount,
		PreviousRefreshToken: sc.PreviousRefreshToken, RotatedAt: fromMicros(sc.RotatedAt), Version: sc.Version,
	}
}

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and string maps: cannot fail
	}
	return string(b)
}

func decodeSession(raw string) (storedSession, error) {
	var st storedSession
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, fmt.Errorf("stored session is not valid: %w", err)
	}
	return st, nil
}

func decodeClient(raw string) (storedClient, error) {
	var sc storedClient
	if err := json.Unmarshal([]byte(raw), &sc); err != nil {
		return sc, fmt.Errorf("stored client session is not valid: %w", err)
	}
	return sc, nil
}

// assemble builds the session of key k from its stored value and its client-session hash.
func assemble(k usersessions.Key, raw string, clients map[string]string) (*usersessions.UserSession, error) {
	st, err := decodeSession(raw)
	if err != nil {
		return nil, err
	}
	s := st.session(k)
	for id, rc := range clients {
		sc, err := decodeClient(rc)
		if err != nil {
			return nil, err
		}
		s.Clients[id] = sc.client(k, id)
	}
	return s, nil
}

// change is a usersessions.Change as published on the change channel.
type change struct {
	Kind     usersessions.ChangeKind `json:"k"`
	Realm    string                  `json:"r,omitempty"`
	ID       string                  `json:"i,omitempty"`
	Offline  bool                    `json:"o,omitempty"`
	ClientID string                  `json:"c,omitempty"`
	Filter   *filter                 `json:"f,omitempty"`
	Record   *recordKey              `json:"d,omitempty"`
	Origin   string                  `json:"n,omitempty"`
}

type recordKey struct {
	Kind string `json:"k"`
	Key  string `json:"i"`
}

type filter struct {
	RealmID     string `json:"r"`
	UserID      string `json:"u,omitempty"`
	ClientID    string `json:"c,omitempty"`
	Offline     int    `json:"o,omitempty"`
	ActiveSince int64  `json:"a,omitempty"`
}

func toChange(c usersessions.Change) change {
	out := change{Kind: c.Kind, Realm: c.Session.RealmID, ID: c.Session.ID, Offline: c.Session.Offline, ClientID: c.ClientID, Origin: c.Origin}
	if c.Kind == usersessions.Flushed {
		f := c.Filter
		out.Filter = &filter{RealmID: f.RealmID, UserID: f.UserID, ClientID: f.ClientID, Offline: int(f.Offline), ActiveSince: micros(f.ActiveSince)}
	}
	if c.Kind == usersessions.RecordChanged {
		out.Record = &recordKey{Kind: c.Record.Kind, Key: c.Record.Key}
	}
	return out
}

func (c change) change() usersessions.Change {
	out := usersessions.Change{Kind: c.Kind, Session: usersessions.Key{RealmID: c.Realm, ID: c.ID, Offline: c.Offline}, ClientID: c.ClientID, Origin: c.Origin}
	if f := c.Filter; f != nil {
		out.Filter = usersessions.Filter{RealmID: f.RealmID, UserID: f.UserID, ClientID: f.ClientID,
			Offline: usersessions.OfflineSelector(f.Offline), ActiveSince: fromMicros(f.ActiveSince)}
	}
	if r := c.Record; r != nil {
		out.Record = usersessions.RecordKey{Kind: r.Kind, Key: r.Key}
	}
	return out
}
