// Package consolesession keeps the consoles' sign-in sessions (the admin console's operators,
// the account console's people) in a MACed cookie under a key every node sharing the store
// reads, so that any node serves any signed-in session, a restart signs nobody out, and a
// sign-out on one node holds on all of them. Each console has a key of its own: one's
// cookie opens nothing in the other.
package consolesession

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Records are where the key and the sign-outs are kept: the user-sessions store's records,
// which every node sharing the store reads.
type Records interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
	ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error
}

// Sealer encrypts the stored key; *token.KEK implements it.
type Sealer interface {
	ID() string
	Seal(aad, plain []byte) []byte
	Open(aad, sealed []byte) ([]byte, error)
}

// The records this package keeps.
const (
	// KeyKind holds the cookie keys, one record a console: the admin console's keyed
	// KeyName, another console's by its Options.Name; 32 random bytes, sealed with the
	// key-encryption key when one is configured.
	KeyKind = "console-key"
	KeyName = "cookie"
	// SignOutKind holds one record per signed-out admin console session, keyed by its id,
	// until the session would have reached its max lifetime anyway; another console's are
	// of kind "<Options.Name>-console-signout".
	SignOutKind = "console-signout"
)

// Errors of Open. Each means "not signed in"; ErrUnavailable (the store) does not.
var (
	ErrInvalid   = errors.New("console cookie is not one a node of this store issued")
	ErrExpired   = errors.New("console session expired")
	ErrSignedOut = errors.New("console session was signed out")
	ErrRebound   = errors.New("the credential the console session was opened with has changed")
)

// cookieVersion prefixes every cookie value; a later format gets another.
const cookieVersion = "v1"

// refreshEvery is how stale a cookie's last-seen time may get before Open reissues it: the
// idle timeout is kept to within this.
const refreshEvery = time.Minute

// Options configure a Manager.
type Options struct {
	// Name is the console's: "" for the admin console; another console (the account
	// console's "account") has a key and sign-out records of its own.
	Name    string
	Records Records
	// KEK seals the stored key; nil stores it in plain text (start-dev: start refuses to
	// run without a key-encryption key).
	KEK Sealer
	// Idle ends a session unused that long; Max ends it that long after sign-in.
	Idle, Max time.Duration
	Now       func() time.Time
}

// Manager issues and opens console session cookies.
type Manager struct {
	o Options

	mu  sync.Mutex
	key []byte // loaded once, on first use
}

// New returns a Manager; its key is read (or made) on first use, so that a store that is
// down at start-up delays the console's sign-in, not sessiond's start.
func New(o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{o: o}
}

// Idle and Max are the session's bounds.
func (m *Manager) Idle() time.Duration { return m.o.Idle }
func (m *Manager) Max() time.Duration  { return m.o.Max }

// Session is one signed-in operator or person.
type Session struct {
	ID string `json:"sid"`
	// Actor is who signed in: the admin console's actor, the account console's user id.
	Actor string `json:"act"`
	Role  string `json:"role,omitempty"`
	// Realm, UserSession and Username, for the account console: the realm, the user
	// session the sign-in rests on, and the name the pages show.
	Realm       string `json:"realm,omitempty"`
	UserSession string `json:"us,omitempty"`
	Username    string `json:"name,omitempty"`
	// Bound is a MAC of the credential the operator signed in with: a session outlives
	// no change of that credential.
	Bound   string `json:"cred"`
	Started int64  `json:"iat"`  // Unix seconds
	Seen    int64  `json:"seen"` // Unix seconds of the last use the cookie records
	// CSRF is the session's form token, a MAC of its id: every node computes the same.
	CSRF string `json:"-"`
}

// Ends is when the session reaches its max lifetime.
func (m *Manager) Ends(s *Session) time.Time { return time.Unix(s.Started, 0).Add(m.o.Max) }

type storedKey struct {
	KEK    string `json:"kek,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
	Key    []byte `json:"key,omitempty"`
}

// cookieKey returns the key, reading or making it on first use. The nodes sharing a store
// race to make it; the loser reads the winner's.
func (m *Manager) cookieKey(ctx context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key != nil {
		return m.key, nil
	}
	for range 3 {
		recs, err := m.o.Records.GetRecords(ctx, KeyKind, []string{m.keyName()})
		if err != nil {
			return nil, fmt.Errorf("read the console's cookie key: %w", err)
		}
		if rec := recs[0]; rec != nil {
			key, err := m.openKey(ctx, rec)
			if errors.Is(err, spi.ErrConflict) {
				continue
			}
			if err != nil {
				return nil, err
			}
			m.key = key
			return key, nil
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		if _, err := m.o.Records.PutRecord(ctx, &usersessions.Record{Kind: KeyKind, Key: m.keyName(), Value: m.sealKey(key)}); err != nil {
			if errors.Is(err, spi.ErrConflict) || errors.Is(err, spi.ErrExists) {
				continue // another node made it first
			}
			return nil, fmt.Errorf("store the console's cookie key: %w", err)
		}
		m.key = key
		return key, nil
	}
	return nil, fmt.Errorf("the console's cookie key kept changing while read: %w", spi.ErrUnavailable)
}

// keyName is the key record's, signOutKind the sign-outs' kind, keyAAD what the sealed
// key is bound to: the admin console's as they always were, another console's its own.
func (m *Manager) keyName() string {
	if m.o.Name == "" {
		return KeyName
	}
	return m.o.Name
}

func (m *Manager) signOutKind() string {
	if m.o.Name == "" {
		return SignOutKind
	}
	return m.o.Name + "-" + SignOutKind
}

func (m *Manager) keyAAD() []byte {
	name := m.o.Name
	if name == "" {
		name = "admin"
	}
	return []byte("sessiond " + name + " console cookie key")
}

func (m *Manager) sealKey(key []byte) []byte {
	sk := storedKey{Key: key}
	if m.o.KEK != nil {
		sk = storedKey{KEK: m.o.KEK.ID(), Sealed: m.o.KEK.Seal(m.keyAAD(), key)}
	}
	b, _ := json.Marshal(sk)
	return b
}

// openKey decrypts the stored key; one stored in plain text is sealed once a KEK is
// configured.
func (m *Manager) openKey(ctx context.Context, rec *usersessions.Record) ([]byte, error) {
	var sk storedKey
	if err := json.Unmarshal(rec.Value, &sk); err != nil {
		return nil, fmt.Errorf("the console's stored cookie key is damaged (delete record %s/%s to make another, which signs every operator out): %w", KeyKind, m.keyName(), spi.ErrUnavailable)
	}
	switch {
	case sk.Sealed == nil && len(sk.Key) == 32:
		if m.o.KEK != nil {
			if _, err := m.o.Records.PutRecord(ctx, &usersessions.Record{Kind: KeyKind, Key: m.keyName(), Value: m.sealKey(sk.Key), Version: rec.Version}); err != nil {
				return nil, fmt.Errorf("seal the console's cookie key: %w", err)
			}
		}
		return sk.Key, nil
	case sk.Sealed == nil:
		return nil, fmt.Errorf("the console's stored cookie key has %d bytes, not 32 (delete record %s/%s to make another): %w", len(sk.Key), KeyKind, m.keyName(), spi.ErrUnavailable)
	case m.o.KEK == nil:
		return nil, fmt.Errorf("the console's cookie key is encrypted with key-encryption key %s and none is configured: %w", sk.KEK, spi.ErrUnavailable)
	case sk.KEK != m.o.KEK.ID():
		return nil, fmt.Errorf("the console's cookie key is encrypted with key-encryption key %s, but the one configured is %s: %w", sk.KEK, m.o.KEK.ID(), spi.ErrUnavailable)
	}
	key, err := m.o.KEK.Open(m.keyAAD(), sk.Sealed)
	if err != nil {
		return nil, fmt.Errorf("the console's cookie key: %w: %w", err, spi.ErrUnavailable)
	}
	return key, nil
}

func mac(key []byte, label string, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("sessiond console " + label))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

var b64 = base64.RawURLEncoding

// Start opens a session for actor with role, bound to the credential presented, and
// returns its cookie value.
func (m *Manager) Start(ctx context.Context, actor, role, credential string) (string, *Session, error) {
	return m.StartSession(ctx, Session{Actor: actor, Role: role}, credential)
}

// StartSession opens a session holding what s says of who signed in (its Actor, Role,
// Realm, UserSession and Username), bound to the credential presented, and returns its
// cookie value.
func (m *Manager) StartSession(ctx context.Context, s Session, credential string) (string, *Session, error) {
	key, err := m.cookieKey(ctx)
	if err != nil {
		return "", nil, err
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	now := m.o.Now().Unix()
	s.ID, s.Bound, s.Started, s.Seen = b64.EncodeToString(id), b64.EncodeToString(mac(key, "credential", credential)[:16]), now, now
	s.CSRF = b64.EncodeToString(mac(key, "csrf", s.ID))
	return m.encode(key, &s), &s, nil
}

func (m *Manager) encode(key []byte, s *Session) string {
	payload, _ := json.Marshal(s)
	p := b64.EncodeToString(payload)
	return cookieVersion + "." + p + "." + b64.EncodeToString(mac(key, "session "+cookieVersion, p))
}

// Open returns the session of a cookie value: its MAC verifies, it is neither idle past
// Idle nor older than Max, credentialOf(actor) is still the credential it was opened with,
// and no node has signed it out. refreshed is the cookie to send back when its last-seen
// time has moved on, "" otherwise. An error other than the ones this package declares is
// the store's: the caller cannot tell whether the session was signed out.
func (m *Manager) Open(ctx context.Context, value string, credentialOf func(actor string) string) (s *Session, refreshed string, err error) {
	key, err := m.cookieKey(ctx)
	if err != nil {
		return nil, "", err
	}
	ver, rest, _ := strings.Cut(value, ".")
	p, sig, ok := strings.Cut(rest, ".")
	if ver != cookieVersion || !ok {
		return nil, "", ErrInvalid
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, "session "+cookieVersion, p)) {
		return nil, "", ErrInvalid
	}
	payload, err := b64.DecodeString(p)
	if err != nil {
		return nil, "", ErrInvalid
	}
	s = &Session{}
	if err := json.Unmarshal(payload, s); err != nil || s.ID == "" {
		return nil, "", ErrInvalid
	}
	now := m.o.Now()
	if !now.Before(time.Unix(s.Seen, 0).Add(m.o.Idle)) || !now.Before(m.Ends(s)) {
		return nil, "", ErrExpired
	}
	bound := b64.EncodeToString(mac(key, "credential", credentialOf(s.Actor))[:16])
	if subtle.ConstantTimeCompare([]byte(bound), []byte(s.Bound)) != 1 {
		return nil, "", ErrRebound
	}
	recs, err := m.o.Records.GetRecords(ctx, m.signOutKind(), []string{s.ID})
	if err != nil {
		return nil, "", fmt.Errorf("read the console's sign-outs: %w", err)
	}
	if recs[0] != nil {
		return nil, "", ErrSignedOut
	}
	s.CSRF = b64.EncodeToString(mac(key, "csrf", s.ID))
	if now.Sub(time.Unix(s.Seen, 0)) >= refreshEvery {
		s.Seen = now.Unix()
		refreshed = m.encode(key, s)
	}
	return s, refreshed, nil
}

// ValidCSRF compares a form's token with the session's, in constant time.
func ValidCSRF(s *Session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) == 1
}

type signOut struct {
	Ends int64 `json:"ends"` // Unix seconds; the record may go after
}

// End signs the session out on every node: its id is recorded until its max lifetime,
// when its cookie no longer opens anyway.
func (m *Manager) End(ctx context.Context, s *Session) error {
	v, _ := json.Marshal(signOut{Ends: m.Ends(s).Unix()})
	if _, err := m.o.Records.PutRecord(ctx, &usersessions.Record{Kind: m.signOutKind(), Key: s.ID, Value: v}); err != nil &&
		!errors.Is(err, spi.ErrConflict) && !errors.Is(err, spi.ErrExists) { // already signed out
		return fmt.Errorf("record the console sign-out: %w", err)
	}
	return nil
}

// Sweep deletes the sign-out records of sessions past their max lifetime. There are as
// many as sign-outs in the last Max (8 hours by default): a few.
func (m *Manager) Sweep(ctx context.Context) error {
	recs, err := m.o.Records.ListRecords(ctx, m.signOutKind())
	if err != nil {
		return fmt.Errorf("list the console's sign-outs: %w", err)
	}
	now := m.o.Now().Unix()
	for _, r := range recs {
		var so signOut
		if json.Unmarshal(r.Value, &so) == nil && so.Ends > now {
			continue
		}
		if err := m.o.Records.DeleteRecord(ctx, m.signOutKind(), r.Key); err != nil && !errors.Is(err, spi.ErrNotFound) {
			return fmt.Errorf("delete a past console sign-out: %w", err)
		}
	}
	return nil
}

// sealedState is a short-lived value MACed under the cookie key.
type sealedState struct {
	Label string          `json:"l"`
	Exp   int64           `json:"exp"`
	V     json.RawMessage `json:"v"`
}

// SealState returns v, JSON, MACed under the cookie key for ttl and for label's use only:
// what a sign-in through OpenID Connect keeps in the browser between its start and its
// callback (state, nonce, PKCE verifier). Any node of the store opens it.
func (m *Manager) SealState(ctx context.Context, label string, v any, ttl time.Duration) (string, error) {
	key, err := m.cookieKey(ctx)
	if err != nil {
		return "", err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(sealedState{Label: label, Exp: m.o.Now().Add(ttl).Unix(), V: raw})
	p := b64.EncodeToString(payload)
	return p + "." + b64.EncodeToString(mac(key, "state", p)), nil
}

// OpenState reads into v what SealState sealed for label; ErrInvalid when it was not, or
// ErrExpired past its ttl.
func (m *Manager) OpenState(ctx context.Context, label, value string, v any) error {
	key, err := m.cookieKey(ctx)
	if err != nil {
		return err
	}
	p, sig, ok := strings.Cut(value, ".")
	got, err := b64.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(got, mac(key, "state", p)) {
		return ErrInvalid
	}
	payload, err := b64.DecodeString(p)
	var st sealedState
	if err != nil || json.Unmarshal(payload, &st) != nil || st.Label != label {
		return ErrInvalid
	}
	if m.o.Now().Unix() >= st.Exp {
		return ErrExpired
	}
	if json.Unmarshal(st.V, v) != nil {
		return ErrInvalid
	}
	return nil
}
