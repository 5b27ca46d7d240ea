package sqlstore

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// The columns of the session tables, in the order the batches below carry them. The
// migrations of each provider create tables with these names.
var (
	sessionKey   = batch{{"realm_id", text}, {"id", text}, {"offline", boolean}}
	sessionBatch = append(sessionKey[:len(sessionKey):len(sessionKey)], batch{
		{"id_hash", integer}, {"user_id", text}, {"login_username", text}, {"ip_address", text},
		{"user_agent", text}, {"auth_method", text}, {"broker_session_id", text}, {"broker_user_id", text},
		{"remember_me", boolean}, {"state", text}, {"started", timestamp}, {"last_refresh", timestamp},
		{"expires_at", timestamp}, {"notes", jsonText}, {"version", integer},
	}...)

	clientKey   = batch{{"realm_id", text}, {"user_session_id", text}, {"offline", boolean}, {"client_id", text}}
	clientBatch = append(clientKey[:len(clientKey):len(clientKey)], batch{
		{"started", timestamp}, {"last_refresh", timestamp}, {"expires_at", timestamp},
		{"auth_method", text}, {"redirect_uri", text}, {"action", text}, {"scope", text},
		{"notes", jsonText}, {"current_refresh_token", text}, {"current_refresh_token_use_count", integer},
		{"previous_refresh_token", text}, {"rotated_at", timestamp}, {"version", integer},
	}...)
)

// names lists b's column names, each prefixed with prefix.
func (b batch) names(prefix string) string {
	out := make([]string, len(b))
	for i, c := range b {
		out[i] = prefix + c.name
	}
	return strings.Join(out, ", ")
}

// without returns b less the named columns.
func (b batch) without(names ...string) batch {
	var out batch
	for _, c := range b {
		if !slices.Contains(names, c.name) {
			out = append(out, c)
		}
	}
	return out
}

// idHash is the stream partition of a session id: stored with the row, so that parallel
// preload workers select disjoint parts with the same SQL on both dialects.
func idHash(id string) int64 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int64(h.Sum32() & 0x7fffffff)
}

// micro is the precision the contract promises: microseconds, UTC.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

// dbTime scans a time as either dialect stores it: a time from PostgreSQL, Unix
// microseconds from SQLite.
type dbTime struct{ time.Time }

func (t *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		t.Time = micro(x)
	case int64:
		t.Time = micro(time.UnixMicro(x))
	case nil:
		t.Time = time.Time{}
	default:
		return fmt.Errorf("cannot scan %T into a time", v)
	}
	return nil
}

// notes scans a JSON object of strings.
type notes map[string]string

func (n *notes) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	case nil:
		*n = nil
		return nil
	default:
		return fmt.Errorf("cannot scan %T into notes", v)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("notes: %w", err)
	}
	*n = m
	return nil
}

func encodeNotes(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map of strings always encodes
	return string(b)
}

// sessionRow is one row of user_session as read.
type sessionRow struct {
	RealmID         string `db:"realm_id"`
	ID              string `db:"id"`
	Offline         bool   `db:"offline"`
	UserID          string `db:"user_id"`
	LoginUsername   string `db:"login_username"`
	IPAddress       string `db:"ip_address"`
	UserAgent       string `db:"user_agent"`
	AuthMethod      string `db:"auth_method"`
	BrokerSessionID string `db:"broker_session_id"`
	BrokerUserID    string `db:"broker_user_id"`
	RememberMe      bool   `db:"remember_me"`
	State           string `db:"state"`
	Started         dbTime `db:"started"`
	LastRefresh     dbTime `db:"last_refresh"`
	ExpiresAt       dbTime `db:"expires_at"`
	Notes           notes  `db:"notes"`
	Version         int64  `db:"version"`
}

// sessionSelect is what reads of user_session select, through the alias s.
var sessionSelect = sessionBatch.without("id_hash").names("s.")

func (r *sessionRow) session() *usersessions.UserSession {
	return &usersessions.UserSession{
		ID: r.ID, RealmID: r.RealmID, UserID: r.UserID, LoginUsername: r.LoginUsername,
		IPAddress: r.IPAddress, UserAgent: r.UserAgent, AuthMethod: r.AuthMethod,
		BrokerSessionID: r.BrokerSessionID, BrokerUserID: r.BrokerUserID, RememberMe: r.RememberMe,
		Offline: r.Offline, State: usersessions.State(r.State),
		Started: r.Started.Time, LastRefresh: r.LastRefresh.Time, ExpiresAt: r.ExpiresAt.Time,
		Notes: r.Notes, Version: r.Version,
		Clients: map[string]*usersessions.ClientSession{},
	}
}

// sessionValues is s as a row of sessionBatch.
func sessionValues(s *usersessions.UserSession, version int64) []any {
	return []any{
		s.RealmID, s.ID, s.Offline, idHash(s.ID), s.UserID, s.LoginUsername, s.IPAddress,
		s.UserAgent, s.AuthMethod, s.BrokerSessionID, s.BrokerUserID, s.RememberMe, string(s.State),
		s.Started, s.LastRefresh, s.ExpiresAt, encodeNotes(s.Notes), version,
	}
}

// clientRow is one row of client_session as read.
type clientRow struct {
	RealmID                     string `db:"realm_id"`
	UserSessionID               string `db:"user_session_id"`
	Offline                     bool   `db:"offline"`
	ClientID                    string `db:"client_id"`
	Started                     dbTime `db:"started"`
	LastRefresh                 dbTime `db:"last_refresh"`
	ExpiresAt                   dbTime `db:"expires_at"`
	AuthMethod                  string `db:"auth_method"`
	RedirectURI                 string `db:"redirect_uri"`
	Action                      string `db:"action"`
	Scope                       string `db:"scope"`
	Notes                       notes  `db:"notes"`
	CurrentRefreshToken         string `db:"current_refresh_token"`
	CurrentRefreshTokenUseCount int    `db:"current_refresh_token_use_count"`
	PreviousRefreshToken        string `db:"previous_refresh_token"`
	RotatedAt                   dbTime `db:"rotated_at"`
	Version                     int64  `db:"version"`
}

var clientSelect = clientBatch.names("c.")

func (r *clientRow) client() *usersessions.ClientSession {
	return &usersessions.ClientSession{
		UserSessionID: r.UserSessionID, RealmID: r.RealmID, ClientID: r.ClientID, Offline: r.Offline,
		Started: r.Started.Time, LastRefresh: r.LastRefresh.Time, ExpiresAt: r.ExpiresAt.Time,
		AuthMethod: r.AuthMethod, RedirectURI: r.RedirectURI, Action: r.Action, Scope: r.Scope,
		Notes: r.Notes, CurrentRefreshToken: r.CurrentRefreshToken,
		CurrentRefreshTokenUseCount: r.CurrentRefreshTokenUseCount,
		PreviousRefreshToken:        r.PreviousRefreshToken, RotatedAt: r.RotatedAt.Time, Version: r.Version,
	}
}

// clientValues is c as a row of clientBatch, under the user session k.
func clientValues(k usersessions.Key, clientID string, c *usersessions.ClientSession, version int64) []any {
	return []any{
		k.RealmID, k.ID, k.Offline, clientID, c.Started, c.LastRefresh, c.ExpiresAt,
		c.AuthMethod, c.RedirectURI, c.Action, c.Scope, encodeNotes(c.Notes), c.CurrentRefreshToken,
		int64(c.CurrentRefreshTokenUseCount), c.PreviousRefreshToken, c.RotatedAt, version,
	}
}

// keyRow is a user-session key as a statement returns it.
type keyRow struct {
	RealmID string `db:"realm_id"`
	ID      string `db:"id"`
	Offline bool   `db:"offline"`
}

func (r keyRow) key() usersessions.Key {
	return usersessions.Key{RealmID: r.RealmID, ID: r.ID, Offline: r.Offline}
}

// clientKeyRow is a client-session key as a statement returns it.
type clientKeyRow struct {
	RealmID       string `db:"realm_id"`
	UserSessionID string `db:"user_session_id"`
	Offline       bool   `db:"offline"`
	ClientID      string `db:"client_id"`
}

func (r clientKeyRow) key() usersessions.ClientKey {
	return usersessions.ClientKey{
		Session:  usersessions.Key{RealmID: r.RealmID, ID: r.UserSessionID, Offline: r.Offline},
		ClientID: r.ClientID,
	}
}

func keyValues(k usersessions.Key) []any { return []any{k.RealmID, k.ID, k.Offline} }

func clientKeyValues(k usersessions.ClientKey) []any {
	return []any{k.Session.RealmID, k.Session.ID, k.Session.Offline, k.ClientID}
}

func keyString(k usersessions.Key) string {
	kind := "online"
	if k.Offline {
		kind = "offline"
	}
	return fmt.Sprintf("%s/%s (%s)", k.RealmID, k.ID, kind)
}

func clientKeyString(k usersessions.ClientKey) string {
	return keyString(k.Session) + " client " + k.ClientID
}

// clone returns a deep copy of s, for a key asked for twice in one Get.
func clone(s *usersessions.UserSession) *usersessions.UserSession {
	c := *s
	c.Notes = maps.Clone(s.Notes)
	c.Clients = make(map[string]*usersessions.ClientSession, len(s.Clients))
	for id, cs := range s.Clients {
		cc := *cs
		cc.Notes = maps.Clone(cs.Notes)
		c.Clients[id] = &cc
	}
	return &c
}
