package session

// Idempotent opens. A session create whose commit got no answer (usersessions.ErrOutcomeUnknown)
// may be stored; the caller is told 503 and retries. Without more, the retry opens a second
// session that no one holds tokens for, and that counts toward the session limits until it
// idles out. With an idempotency key, the session's id derives from the key, so the store's
// uniqueness of ids makes every attempt land on one row, on any node: a retry that finds the
// session answers with new tokens for it, as the first attempt would have.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// NoteOpenRequest is the user-session note of a session opened with an idempotency key: the
// SHA-256 of the open request, which tells a retry from another request under the same key.
const NoteOpenRequest = "sessiond.open_request"

// SessionIDKeyKind is the record kind of the realms' session-id keys: one record per realm,
// keyed by its name, created on first use and never rotated (a rotation would give a retry
// another id than its first attempt). It is stored in plain text: it keeps ids from being
// guessed from idempotency keys, and whoever reads the store reads the ids themselves.
const SessionIDKeyKind = "session-id-key"

// ErrIdempotencyKeyReused is returned (wrapped) when an idempotency key that opened a session
// comes with another request: another user, client options or notes. The HTTP layer answers
// 422, as the IETF httpapi Idempotency-Key draft says.
var ErrIdempotencyKeyReused = errors.New("the idempotency key was used for another request")

// ErrIdempotentSessionEnded is returned (wrapped) when the session an idempotency key opened
// has ended (logged out, expired): the key has been used, and a new login needs a new one.
// It wraps spi.ErrConflict (HTTP 409).
var ErrIdempotentSessionEnded = fmt.Errorf("the session this idempotency key opened has ended; a new login needs a new key: %w", spi.ErrConflict)

// Records is the record part of the user-sessions store, where the session-id keys live.
type Records interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	// PutRecord writes when r.Version equals the stored version (0: must not exist) and
	// fails with spi.ErrConflict otherwise.
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
}

// idKeys holds the realms' session-id keys, read or created once per realm and node.
type idKeys struct {
	records Records
	mu      sync.Mutex
	keys    map[string][]byte
}

// idKeyRecord is a session-id key as stored.
type idKeyRecord struct {
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// key returns realm's session-id key, creating it when no node has yet.
func (k *idKeys) key(ctx context.Context, realmName string, now time.Time) ([]byte, error) {
	k.mu.Lock()
	key, ok := k.keys[realmName]
	k.mu.Unlock()
	if ok {
		return key, nil
	}
	for range 2 { // a conflict means another node created it first: read that one
		got, err := k.records.GetRecords(ctx, SessionIDKeyKind, []string{realmName})
		if err != nil {
			return nil, fmt.Errorf("read the realm's session-id key: %w", err)
		}
		if len(got) == 1 && got[0] != nil {
			var rec idKeyRecord
			if err := json.Unmarshal(got[0].Value, &rec); err != nil || len(rec.Key) < sha256.Size {
				return nil, fmt.Errorf("realm %q: the session-id key record is not valid: %w", realmName, spi.ErrInvalid)
			}
			key = rec.Key
			break
		}
		rec := idKeyRecord{Key: make([]byte, sha256.Size), Created: now}
		rand.Read(rec.Key)
		v, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		_, err = k.records.PutRecord(ctx, &usersessions.Record{Kind: SessionIDKeyKind, Key: realmName, Value: v})
		if errors.Is(err, spi.ErrConflict) || errors.Is(err, spi.ErrExists) {
			continue
		}
		if err != nil {
			// Unknown outcome included: the next open reads what was stored, if anything.
			return nil, fmt.Errorf("store the realm's session-id key: %w", err)
		}
		key = rec.Key
		break
	}
	if key == nil {
		return nil, fmt.Errorf("realm %q: the session-id key was created and then not found: %w", realmName, spi.ErrUnavailable)
	}
	k.mu.Lock()
	k.keys[realmName] = key
	k.mu.Unlock()
	return key, nil
}

// idEncoding writes derived ids as newID writes random ones: lower-case base32, no padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// sessionID derives the id of the session opened with idempotency key ik by client c of
// realm r: an HMAC under the realm's session-id key, 130 bits as newID's.
func (s *Service) sessionID(ctx context.Context, r *realm.Realm, c *realm.Client, ik string, now time.Time) (string, error) {
	if s.idKeys == nil {
		// A wiring mistake, refused rather than ignored: the key would do nothing.
		return "", fmt.Errorf("an idempotency key was given and this session service has no records store (Deps.Records): %w", spi.ErrUnavailable)
	}
	key, err := s.idKeys.key(ctx, r.Name, now)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("sessiond session id\x00" + r.Name + "\x00" + c.ClientID + "\x00" + ik))
	return idEncoding.EncodeToString(mac.Sum(nil))[:26], nil
}

// fingerprint is the SHA-256 of what an open request asks for, save what may differ between
// attempts of one login (the DPoP proof's key, the idempotency key itself).
func fingerprint(req OpenRequest) string {
	v := struct {
		ClientID, UserID, Username, IPAddress, UserAgent, AuthMethod, Scope string
		BrokerSessionID, BrokerUserID                                       string
		RememberMe, OfflineAccess, Implicit                                 bool
		Notes                                                               map[string]string
	}{req.ClientID, req.UserID, req.Username, req.IPAddress, req.UserAgent, orDefault(req.AuthMethod, "openid-connect"),
		strings.Join(strings.Fields(req.Scope), " "), req.BrokerSessionID, req.BrokerUserID,
		req.RememberMe, req.OfflineAccess, req.Implicit, maps.Clone(req.Notes)}
	b, _ := json.Marshal(v) // maps marshal with sorted keys: the same request, the same bytes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// reopen answers a retried open whose session already exists: the session with id, if it
// is there and was opened by the same request, gets new tokens for the client, as an attach
// of a client it already has (no session-limit admission, a new refresh-token lineage: the
// first attempt's tokens never reached anyone). found is false when there is no such session.
func (s *Service) reopen(ctx context.Context, r *realm.Realm, c *realm.Client, req OpenRequest, id, fp string) (g *Grant, found bool, err error) {
	k := usersessions.Key{RealmID: r.Name, ID: id}
	us, fresh, err := s.reload(ctx, k) // past the cache: another node may have stored it
	if err == nil && !fresh {
		us, err = s.getSession(ctx, k)
	}
	if err != nil {
		return nil, false, err
	}
	if us == nil {
		return nil, false, nil
	}
	if us.UserID != req.UserID || us.Notes[NoteOpenRequest] != fp {
		return nil, true, fmt.Errorf("open a session of client %q: %w (it opened session %s with a different request)", c.ClientID, ErrIdempotencyKeyReused, id)
	}
	if checkUserSession(s.rules(r), us, false, s.clock()) != nil {
		return nil, true, fmt.Errorf("open session %s: %w", id, ErrIdempotentSessionEnded)
	}
	g, err = s.attach(ctx, r, c, us, AttachRequest{Realm: r.Name, SessionID: id, ClientID: c.ClientID,
		Scope: req.Scope, Implicit: req.Implicit, JKT: req.JKT}, EventLogin)
	return g, true, err
}
