package dpop

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Record kinds in the user-sessions store.
const (
	// JTIKind records each accepted proof (key: a hash of realm, key thumbprint and jti)
	// until its iat is too old for it to be accepted anyway; PutRecord's "must not exist"
	// makes the first node to record it the only one to accept it.
	JTIKind = "dpop-jti"
	// NonceKeyKind holds the secret server nonces are MACed with (one record, key
	// nonceKeyName), shared by every node so that a nonce from one is good at another.
	NonceKeyKind = "dpop-nonce-key"
	nonceKeyName = "current"
)

// Defaults of Options.
const (
	// DefaultMaxAge: a proof is accepted for a minute after its iat (§11.1 leaves the
	// window to the server; a minute allows for a slow network, not for storing proofs).
	DefaultMaxAge = time.Minute
	// DefaultSkew: a proof may say it was made this far in the future (clients' clocks).
	DefaultSkew = 30 * time.Second
	// DefaultNonceLifetime: a server nonce is good for five minutes from its issue.
	DefaultNonceLifetime = 5 * time.Minute
)

// Records is the record part of the user-sessions store, shared by every node.
type Records interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
	ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error
}

// Options configure a Checker; zero values take the defaults above.
type Options struct {
	MaxAge        time.Duration
	Skew          time.Duration
	NonceLifetime time.Duration
	Now           func() time.Time
}

// Checker checks proofs against their requests and remembers their jtis. It is safe for
// concurrent use.
type Checker struct {
	store Records
	opts  Options

	mu       sync.Mutex
	nonceKey []byte // loaded (or created) on first use
}

// New returns a Checker remembering jtis in store.
func New(store Records, opts Options) *Checker {
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Skew <= 0 {
		opts.Skew = DefaultSkew
	}
	if opts.NonceLifetime <= 0 {
		opts.NonceLifetime = DefaultNonceLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Checker{store: store, opts: opts}
}

// Request is what a proof must match.
type Request struct {
	Realm  string
	Method string // the HTTP method
	URL    string // the endpoint's URL as the issuer names it (no query)
	// AccessToken is the token presented with the proof at a protected resource, whose
	// hash the proof must carry (ath, §4.3 step 11); "" at the token endpoint.
	AccessToken string
	// NonceRequired: the realm or client asks for a server nonce (§8).
	NonceRequired bool
}

// Check parses raw and checks it against req (RFC 9449 §4.3): htm, htu, iat within the
// window, ath, the server nonce when required, and last its jti, recorded in the store so
// that no node accepts the proof again. A refused proof records nothing. Refusals are
// *Error; any other error is the store's (unavailable) and refuses nothing.
func (c *Checker) Check(ctx context.Context, raw string, req Request) (*Proof, error) {
	p, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	switch {
	case p.Method != req.Method:
		return nil, invalid("the DPoP proof's htm is %s, but the request is a %s", quote(p.Method), req.Method)
	case !SameURL(p.URL, req.URL):
		return nil, invalid("the DPoP proof's htu is %s, but the request is to %s", quote(p.URL), req.URL)
	case p.IssuedAt.Before(now.Add(-c.opts.MaxAge)):
		return nil, invalid("the DPoP proof was issued at %s, more than %s ago", p.IssuedAt.Format(time.RFC3339), c.opts.MaxAge)
	case p.IssuedAt.After(now.Add(c.opts.Skew)):
		return nil, invalid("the DPoP proof was issued at %s, in the future", p.IssuedAt.Format(time.RFC3339))
	}
	if req.AccessToken != "" {
		if p.ATH == "" {
			return nil, invalid("the DPoP proof has no ath (the hash of the access token it comes with)")
		}
		if subtle.ConstantTimeCompare([]byte(p.ATH), []byte(AccessTokenHash(req.AccessToken))) != 1 {
			return nil, invalid("the DPoP proof's ath is not the hash of the access token it comes with")
		}
	}
	if req.NonceRequired {
		if err := c.checkNonce(ctx, req.Realm, p.Nonce, now); err != nil {
			return nil, err
		}
	}
	if err := c.remember(ctx, req.Realm, p); err != nil {
		return nil, err
	}
	return p, nil
}

// jtiRecord is what is kept of an accepted proof.
type jtiRecord struct {
	Ends int64 `json:"ends"` // unix seconds; the record may go after it
}

// remember records p's jti; a jti already recorded, by this node or another, is a replay.
func (c *Checker) remember(ctx context.Context, realmName string, p *Proof) error {
	sum := sha256.Sum256([]byte(realmName + "\x00" + p.JKT + "\x00" + p.ID))
	key := base64.RawURLEncoding.EncodeToString(sum[:])
	// Past iat + MaxAge the proof is refused as stale whatever the record says.
	value, _ := json.Marshal(jtiRecord{Ends: p.IssuedAt.Add(c.opts.MaxAge).Unix() + 1})
	_, err := c.store.PutRecord(ctx, &usersessions.Record{Kind: JTIKind, Key: key, Value: value})
	switch {
	case errors.Is(err, spi.ErrConflict), errors.Is(err, spi.ErrExists):
		return invalid("the DPoP proof's jti has been used before (a replayed proof)")
	case err != nil:
		return fmt.Errorf("record the DPoP proof's jti: %w", err)
	}
	return nil
}

// Cleanup deletes the jti records whose proofs are too old to be accepted anyway, and
// returns how many. Every node may run it: a record another node removed first is skipped.
func (c *Checker) Cleanup(ctx context.Context) (int, error) {
	recs, err := c.store.ListRecords(ctx, JTIKind)
	if err != nil {
		return 0, fmt.Errorf("list %s records: %w", JTIKind, err)
	}
	now, removed := c.opts.Now().Unix(), 0
	for _, rec := range recs {
		var r jtiRecord
		// A record that does not decode is no use to anyone: it goes too.
		if json.Unmarshal(rec.Value, &r) == nil && now <= r.Ends {
			continue
		}
		if err := c.store.DeleteRecord(ctx, JTIKind, rec.Key); err != nil && !errors.Is(err, spi.ErrNotFound) {
			return removed, fmt.Errorf("delete %s record: %w", JTIKind, err)
		}
		removed++
	}
	return removed, nil
}

// Nonce returns a fresh server nonce for realm (the DPoP-Nonce header). Nonces are not
// stored: one is the time it was made and a MAC of it and the realm with a secret all
// nodes share, so any node accepts it until NonceLifetime has passed.
func (c *Checker) Nonce(ctx context.Context, realmName string) (string, error) {
	key, err := c.key(ctx)
	if err != nil {
		return "", err
	}
	return makeNonce(key, realmName, c.opts.Now()), nil
}

const nonceMACSize = 16

func makeNonce(key []byte, realmName string, at time.Time) string {
	b := make([]byte, 8, 8+nonceMACSize)
	binary.BigEndian.PutUint64(b, uint64(at.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b, nonceMAC(key, realmName, b)...))
}

func nonceMAC(key []byte, realmName string, stamp []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(realmName))
	m.Write([]byte{0})
	m.Write(stamp)
	return m.Sum(nil)[:nonceMACSize]
}

// checkNonce refuses a missing, forged, foreign or expired nonce with use_dpop_nonce and
// a fresh one (§8).
func (c *Checker) checkNonce(ctx context.Context, realmName, nonce string, now time.Time) error {
	key, err := c.key(ctx)
	if err != nil {
		return err
	}
	refuse := func(why string) error {
		return &Error{Code: UseNonce, Description: why, Nonce: makeNonce(key, realmName, now)}
	}
	if nonce == "" {
		return refuse("a server-provided nonce is required in the DPoP proof: retry with the DPoP-Nonce given")
	}
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 8+nonceMACSize || !hmac.Equal(b[8:], nonceMAC(key, realmName, b[:8])) {
		return refuse("the DPoP proof's nonce is not one this server gave: retry with the DPoP-Nonce given")
	}
	at := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	if now.Sub(at) > c.opts.NonceLifetime || at.Sub(now) > c.opts.Skew {
		return refuse("the DPoP proof's nonce has expired: retry with the DPoP-Nonce given")
	}
	return nil
}

// key returns the nonce secret, reading it from the store, or creating it there when no
// node has, on first use.
func (c *Checker) key(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nonceKey != nil {
		return c.nonceKey, nil
	}
	for range 3 {
		recs, err := c.store.GetRecords(ctx, NonceKeyKind, []string{nonceKeyName})
		if err != nil {
			return nil, fmt.Errorf("read the DPoP nonce key: %w", err)
		}
		if len(recs) == 1 && recs[0] != nil && len(recs[0].Value) >= 32 {
			c.nonceKey = recs[0].Value
			return c.nonceKey, nil
		}
		fresh := make([]byte, 32)
		rand.Read(fresh)
		_, err = c.store.PutRecord(ctx, &usersessions.Record{Kind: NonceKeyKind, Key: nonceKeyName, Value: fresh})
		if err == nil {
			c.nonceKey = fresh
			return fresh, nil
		}
		if !errors.Is(err, spi.ErrConflict) && !errors.Is(err, spi.ErrExists) {
			return nil, fmt.Errorf("create the DPoP nonce key: %w", err)
		}
		// Another node created it first: read theirs.
	}
	return nil, fmt.Errorf("create the DPoP nonce key: %w", spi.ErrConflict)
}

// Challenge is the WWW-Authenticate value of a protected resource refusing a request for
// a DPoP error (§7.1): the error code and the algorithms accepted.
func Challenge(code, description string) string {
	d := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(description)
	return fmt.Sprintf(`DPoP error=%q, error_description="%s", algs="%s"`, code, d, strings.Join(Algorithms(), " "))
}
