package usersessionstest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// epoch is the suite's "now". It is fixed and carries microseconds, the precision the
// contract promises; the suite passes every time a provider should use explicitly.
func epoch() time.Time { return time.Date(2030, time.March, 14, 15, 9, 26, 535897000, time.UTC) }

func at(d time.Duration) time.Time { return epoch().Add(d) }

// session returns a user session with every field set, and a client session for each of
// clients. It expires an hour after epoch.
func session(realm, id, user string, offline bool, clients ...string) *usersessions.UserSession {
	s := &usersessions.UserSession{
		ID: id, RealmID: realm, UserID: user,
		LoginUsername: user + "@example.test", IPAddress: "192.0.2.7", UserAgent: "conformance/1.0",
		AuthMethod: "openid-connect", BrokerSessionID: "broker-" + id, BrokerUserID: "broker-" + user,
		RememberMe: true, Offline: offline, State: usersessions.LoggedIn,
		Started: at(-time.Hour), LastRefresh: at(-time.Minute), ExpiresAt: at(time.Hour),
		Notes:   map[string]string{"auth_time": "1900000000", "note with space": "välue ✓"},
		Clients: map[string]*usersessions.ClientSession{},
	}
	for _, c := range clients {
		s.Clients[c] = client(s, c)
	}
	return s
}

// client returns a client session of s for clientID with every field set.
func client(s *usersessions.UserSession, clientID string) *usersessions.ClientSession {
	return &usersessions.ClientSession{
		UserSessionID: s.ID, RealmID: s.RealmID, ClientID: clientID, Offline: s.Offline,
		Started: at(-50 * time.Minute), LastRefresh: at(-2 * time.Minute), ExpiresAt: at(30 * time.Minute),
		AuthMethod: "openid-connect", RedirectURI: "https://" + clientID + ".example.test/cb",
		Action: "AUTHENTICATE", Scope: "openid profile email",
		Notes:               map[string]string{"nonce": "n-" + clientID},
		CurrentRefreshToken: "rt-" + clientID, CurrentRefreshTokenUseCount: 1,
		PreviousRefreshToken: "rt-old-" + clientID, RotatedAt: at(-3 * time.Minute),
	}
}

// stored returns what a provider should hold after creating s: a deep copy with Version 1
// on the session and its client sessions.
func stored(s *usersessions.UserSession) *usersessions.UserSession {
	c := *s
	c.Notes = cloneMap(s.Notes)
	c.Version = 1
	c.Clients = make(map[string]*usersessions.ClientSession, len(s.Clients))
	for id, cs := range s.Clients {
		cc := *cs
		cc.Notes = cloneMap(cs.Notes)
		cc.Version = 1
		c.Clients[id] = &cc
	}
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func keyString(k usersessions.Key) string {
	if k.Offline {
		return k.RealmID + "/" + k.ID + "/offline"
	}
	return k.RealmID + "/" + k.ID + "/online"
}

func keyStrings(ss []*usersessions.UserSession) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if s == nil {
			out[i] = "<nil>"
			continue
		}
		out[i] = keyString(s.Key())
	}
	return out
}

// sortedKeys returns the sorted key strings of ss: for comparing sets.
func sortedKeys(ss []*usersessions.UserSession) []string {
	out := keyStrings(ss)
	slices.Sort(out)
	return out
}

func keysOf(ss ...*usersessions.UserSession) []usersessions.Key {
	out := make([]usersessions.Key, len(ss))
	for i, s := range ss {
		out[i] = s.Key()
	}
	return out
}

// batch checks a batch call: no call-level error and one item error per input.
func batch(t *testing.T, errs []error, err error, n int) []error {
	t.Helper()
	if err != nil {
		t.Fatalf("batch call failed: %v", err)
	}
	if len(errs) != n {
		t.Fatalf("got %d item errors for %d items", len(errs), n)
	}
	return errs
}

// wantErr checks that got is nil when want is nil, and wraps want otherwise.
func wantErr(t *testing.T, what string, got error, want ...error) {
	t.Helper()
	if len(want) == 0 {
		if got != nil {
			t.Errorf("%s: unexpected error %v", what, got)
		}
		return
	}
	for _, w := range want {
		if errors.Is(got, w) {
			return
		}
	}
	t.Errorf("%s: error %v, want one wrapping %v", what, got, want)
}

func create(t *testing.T, p usersessions.Provider, ss ...*usersessions.UserSession) {
	t.Helper()
	errs, err := p.Create(t.Context(), ss)
	for i, err := range batch(t, errs, err, len(ss)) {
		if err != nil {
			t.Fatalf("Create %s: %v", keyString(ss[i].Key()), err)
		}
	}
}

// get returns the stored session with key k, nil when missing.
func get(t *testing.T, p usersessions.Provider, k usersessions.Key) *usersessions.UserSession {
	t.Helper()
	got, err := p.Get(t.Context(), []usersessions.Key{k})
	if err != nil {
		t.Fatalf("Get %s: %v", keyString(k), err)
	}
	if len(got) != 1 {
		t.Fatalf("Get of one key returned %d entries", len(got))
	}
	return got[0]
}

// mustGet is get for a session that must exist.
func mustGet(t *testing.T, p usersessions.Provider, k usersessions.Key) *usersessions.UserSession {
	t.Helper()
	s := get(t, p, k)
	if s == nil {
		t.Fatalf("session %s is missing", keyString(k))
	}
	return s
}

// same reports the differences between the session a provider should hold and the one it
// returned: times compared with Equal, nil and empty maps alike.
func same(t *testing.T, what string, want, got any) {
	t.Helper()
	var d []string
	diff("", reflect.ValueOf(want), reflect.ValueOf(got), &d)
	if len(d) > 0 {
		t.Errorf("%s differs from what was stored:\n  %s", what, strings.Join(d, "\n  "))
	}
}

var timeType = reflect.TypeFor[time.Time]()

func diff(path string, want, got reflect.Value, out *[]string) {
	if want.Type() == timeType {
		w, g := want.Interface().(time.Time), got.Interface().(time.Time)
		if !w.Equal(g) {
			*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, g, w))
		}
		return
	}
	switch want.Kind() {
	case reflect.Pointer:
		if want.IsNil() || got.IsNil() {
			if want.IsNil() != got.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, got, want))
			}
			return
		}
		diff(path, want.Elem(), got.Elem(), out)
	case reflect.Struct:
		for i := range want.NumField() {
			diff(path+"."+want.Type().Field(i).Name, want.Field(i), got.Field(i), out)
		}
	case reflect.Map:
		for _, k := range want.MapKeys() {
			g := got.MapIndex(k)
			if !g.IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: missing", path, k))
				continue
			}
			diff(fmt.Sprintf("%s[%v]", path, k), want.MapIndex(k), g, out)
		}
		for _, k := range got.MapKeys() {
			if !want.MapIndex(k).IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: unexpected entry %v", path, k, got.MapIndex(k)))
			}
		}
	case reflect.Slice:
		if want.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(want.Bytes(), got.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: got %q, want %q", path, got.Bytes(), want.Bytes()))
			}
			return
		}
		if want.Len() != got.Len() {
			*out = append(*out, fmt.Sprintf("%s: got %d entries, want %d", path, got.Len(), want.Len()))
			return
		}
		for i := range want.Len() {
			diff(fmt.Sprintf("%s[%d]", path, i), want.Index(i), got.Index(i), out)
		}
	default:
		if !want.Equal(got) {
			*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, got, want))
		}
	}
}
