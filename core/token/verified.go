package token

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The verified-token cache remembers, for a token whose signature has been checked, what
// the check found: its claims, its JWS header type and the key that verified it. A token
// is immutable, so the same bytes verify the same way until the key that signed them stops
// being usable or the token expires; both are checked again on every hit, as is everything
// after the signature (issuer, kind, expiry), so a hit answers exactly as a fresh
// verification would. What a token says about a session (logged out, revoked by a
// not-before policy, expired by idle) is not the token's to answer: callers check the
// session on every call, as they do after a fresh verification.
//
// An ES256 verification was 38% of sessiond's CPU under introspection load; a hit costs a
// SHA-256 of the token and a map lookup. Only tokens whose signature holds enter, so a
// caller cannot fill the cache with forgeries, and entries are keyed by SHA-256 of the
// token, not by the token, so it holds no bearer credential. It is bounded by two
// generations of at most half its size each: when the newer fills, the older is dropped
// whole and the newer takes its place, and a hit in the older moves the entry to the newer.

// DefaultVerifiedTokens is the bound of the verified-token cache when Options leave it 0.
const DefaultVerifiedTokens = 32768

type verifiedKey struct {
	realm string
	sum   [sha256.Size]byte
}

// verified is what a signature check found.
type verified struct {
	w      wire
	typ    string // JWS header typ
	kid    string
	alg    Algorithm
	expiry time.Time // past this, no check can accept it (exp + the largest leeway)
}

type verifiedCache struct {
	half     int
	mu       sync.Mutex
	cur, old map[verifiedKey]*verified
	hits     atomic.Int64
}

// newVerifiedCache returns a cache of at most n entries; nil (no cache) when n < 0.
func newVerifiedCache(n int) *verifiedCache {
	if n < 0 {
		return nil
	}
	if n == 0 {
		n = DefaultVerifiedTokens
	}
	half := max(n/2, 1)
	return &verifiedCache{half: half, cur: make(map[verifiedKey]*verified)}
}

func (c *verifiedCache) get(k verifiedKey, now time.Time) *verified {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cur[k]
	if !ok {
		if v, ok = c.old[k]; !ok {
			return nil
		}
		delete(c.old, k)
		c.putLocked(k, v)
	}
	if !now.Before(v.expiry) {
		delete(c.cur, k)
		return nil
	}
	return v
}

func (c *verifiedCache) put(k verifiedKey, v *verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v)
}

func (c *verifiedCache) putLocked(k verifiedKey, v *verified) {
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[verifiedKey]*verified, c.half)
	}
	c.cur[k] = v
}

func (c *verifiedCache) drop(k verifiedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, k)
	delete(c.old, k)
}

// len returns the number of entries, for tests.
func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// verifiedToken checks a presented token up to its claims (size, shape, algorithm, key,
// signature, claims JSON, issuer) and returns what it found, from the cache when the same
// token was checked before and the key that verified it is still usable.
func (s *Service) verifiedToken(ctx context.Context, realm, raw string) (*verified, error) {
	if s.verified == nil || len(raw) > MaxSize {
		return s.verify(ctx, realm, raw)
	}
	k := verifiedKey{realm: realm, sum: sha256.Sum256([]byte(raw))}
	if v := s.verified.get(k, s.now()); v != nil {
		set, err := s.keys.verifying(ctx, realm, v.kid)
		if err != nil {
			return nil, err
		}
		if _, err := set.verifier(realm, v.kid, v.alg, s.keys.now()); err != nil {
			s.verified.drop(k)
			return nil, err
		}
		s.verified.hits.Add(1)
		return v, nil
	}
	v, err := s.verify(ctx, realm, raw)
	if err == nil && s.now().Before(v.expiry) {
		s.verified.put(k, v)
	}
	return v, err
}

// verify checks a token up to its claims, without the cache.
func (s *Service) verify(ctx context.Context, realm, raw string) (*verified, error) {
	payload, typ, k, err := s.signed(ctx, realm, raw)
	if err != nil {
		return nil, err
	}
	v := &verified{typ: typ, kid: k.id, alg: k.alg}
	if err := json.Unmarshal(payload, &v.w); err != nil {
		return nil, refuse(ErrMalformed, "token claims are not valid JSON of the expected types")
	}
	if want := s.Issuer(realm); v.w.Iss != want {
		return nil, refuse(ErrWrongRealm, fmt.Sprintf("token was issued by %s, not by realm %q", quote(v.w.Iss), realm))
	}
	v.expiry = time.Unix(v.w.Exp, 0).Add(s.leeway)
	return v, nil
}

// claimsOf returns a copy of the verified claims that the caller may change.
func (v *verified) claimsOf() wire {
	w := v.w
	w.Aud = slices.Clone(w.Aud)
	return w
}
