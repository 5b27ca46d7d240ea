package token

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Passive is how long a realm's retired keys keep verifying after a rotation, by kind: the
// longest a token signed by that kind of key just before the rotation can still be valid.
// The caller works it out from the realm's settings (core/runtime: the longest access token
// lifespan plus leeway for the published key, the longest refresh or offline token lifetime
// for the secret).
type Passive struct {
	Published time.Duration
	Secret    time.Duration
}

// defaultPassive is used without KeyOptions.Passive: Keycloak's default lifespans (a 15
// minute implicit-flow access token; a 30 day offline idle timeout), doubled.
var defaultPassive = Passive{Published: 30 * time.Minute, Secret: 60 * 24 * time.Hour}

// Key statuses, as Keycloak's admin API names them.
const (
	StatusActive   = "ACTIVE"   // signs new tokens
	StatusPassive  = "PASSIVE"  // only verifies, until VerifiesUntil
	StatusDisabled = "DISABLED" // past VerifiesUntil: verifies nothing, removed at the next rotation
)

// KeyInfo describes one realm key without its private material.
type KeyInfo struct {
	KeyID     string
	Algorithm Algorithm
	Type      string // EC, RSA or OCT, as JWK's kty
	Status    string
	Created   time.Time
	// VerifiesUntil is when a retired key stops verifying; zero for an active key.
	VerifiesUntil time.Time
	// PublicKey is the DER SubjectPublicKeyInfo of a published key; nil for a secret.
	PublicKey []byte
}

// Keys lists the realm's keys as stored, newest first. It reads the store (an operator
// asking wants the cluster's view, not this node's cache) and creates nothing.
func (m *KeyManager) Keys(ctx context.Context, realm string) ([]KeyInfo, error) {
	set, err := m.read(ctx, realm)
	if err != nil {
		return nil, err
	}
	return set.info(m.now())
}

func (set *keySet) info(now time.Time) ([]KeyInfo, error) {
	out := make([]KeyInfo, 0, len(set.keys))
	for _, k := range set.keys {
		ki := KeyInfo{KeyID: k.id, Algorithm: k.alg, Created: k.created, VerifiesUntil: k.verifyUntil, Status: StatusActive}
		switch {
		case set.active[k.alg.family()] == k:
		case k.usable(now):
			ki.Status = StatusPassive
		default:
			ki.Status = StatusDisabled
		}
		switch k.alg {
		case ES256:
			ki.Type = "EC"
		case RS256:
			ki.Type = "RSA"
		case HS512:
			ki.Type = "OCT"
		}
		if k.public != nil {
			der, err := x509.MarshalPKIXPublicKey(k.public)
			if err != nil {
				return nil, err
			}
			ki.PublicKey = der
		}
		out = append(out, ki)
	}
	return out, nil
}

// Rotate gives the realm new active keys, a published key and a secret, now: the keys they
// replace verify on for their passive period (KeyOptions.Passive) and then stop, and leave
// the JWKS. A realm without keys gets its first ones. If another node rotates the realm at
// the same moment, the first write wins and its keys count as this rotation.
func (m *KeyManager) Rotate(ctx context.Context, realm string) ([]KeyInfo, error) {
	asked := m.now()
	_, _, err := m.rotate(ctx, realm, true, func(k *key) bool { return !k.created.After(asked) })
	if err != nil {
		return nil, err
	}
	return m.Keys(ctx, realm)
}

// RotateDue rotates each kind of the realm's keys whose active key is older than interval,
// and reports whether it did; a realm without keys has nothing due. Nodes sharing a store may all call it: the rotation is a
// versioned write, and a node that loses the race re-reads and finds nothing due.
func (m *KeyManager) RotateDue(ctx context.Context, realm string, interval time.Duration) (bool, error) {
	// The cached copy when there is a fresh one; otherwise a read that is not cached: a
	// cached set without keys would make this node refuse, for a moment, the first tokens
	// another node signs with the realm's first keys (verifying re-reads at most once per
	// minReload).
	set := m.entry(realm).set.Load()
	if set == nil || m.now().Sub(set.loaded) >= m.reload {
		var err error
		if set, err = m.read(ctx, realm); err != nil {
			return false, err
		}
	}
	due := func(k *key) bool { return !m.now().Before(k.created.Add(interval)) }
	if !slices.ContainsFunc(set.active[:], func(k *key) bool { return k != nil && due(k) }) {
		return false, nil // the common case, decided on the cache without a store read
	}
	_, rotated, err := m.rotate(ctx, realm, false, due)
	return rotated, err
}

// rotate replaces each active key for which due holds and, with create, makes the missing
// ones, retiring the old keys for their passive period and dropping keys past theirs. It
// returns the realm's keys as stored after it, and whether it wrote.
func (m *KeyManager) rotate(ctx context.Context, realm string, create bool, due func(*key) bool) (*keySet, bool, error) {
	e := m.entry(realm)
	e.load.Lock()
	defer e.load.Unlock()
	for attempt := 1; ; attempt++ {
		set, err := m.read(ctx, realm)
		if err != nil {
			return nil, false, err
		}
		now := m.now()
		sk := set.stored.retain(now)
		var made []stored
		for f, active := range set.active {
			if active == nil && !create || active != nil && !due(active) {
				continue
			}
			if active != nil {
				sk = sk.retire(active.id, now.Add(m.passiveOf(realm, family(f))))
			}
			alg := m.alg
			if family(f) == secret {
				alg = HS512
			}
			s, err := generate(alg, now)
			if err != nil {
				return nil, false, fmt.Errorf("make a key for realm %q: %w", realm, err)
			}
			sk, made = sk.with(s), append(made, s)
		}
		if len(made) == 0 {
			e.set.Store(set)
			return set, false, nil
		}
		next, err := m.write(ctx, realm, set, sk)
		switch {
		case err == nil:
			e.set.Store(next)
			for _, s := range made {
				m.log.Info("new realm key", "realm", realm, "alg", s.Algorithm, "kid", s.ID, "first", len(set.keys) == 0)
			}
			return next, true, nil
		case errors.Is(err, spi.ErrConflict) && attempt < maxPutAttempts:
			m.log.Debug("another node wrote the realm's keys first; re-reading", "realm", realm)
		default:
			return nil, false, fmt.Errorf("store new keys for realm %q: %w", realm, err)
		}
	}
}

// passiveOf is how long a key of family f that stops signing now must go on verifying. Other
// nodes learn of a rotation when they next read the realm's keys, up to the reload interval
// later, and sign with the old key until then: that interval is added to the lifetime.
func (m *KeyManager) passiveOf(realm string, f family) time.Duration {
	p := defaultPassive
	if m.passive != nil {
		p = m.passive(realm)
	}
	d := p.Published
	if f == secret {
		d = p.Secret
	}
	return max(d, 0) + m.reload
}

// retire returns sk with the key id retired until the given time.
func (sk storedKeys) retire(id string, until time.Time) storedKeys {
	set := func(list []stored) []stored {
		list = slices.Clone(list)
		for i := range list {
			if list[i].ID == id {
				list[i].VerifyUntil = until.UTC()
			}
		}
		return list
	}
	return storedKeys{Keys: set(sk.Keys), Secrets: set(sk.Secrets)}
}

// retain returns sk without the keys that stopped verifying before now.
func (sk storedKeys) retain(now time.Time) storedKeys {
	gone := func(s stored) bool { return !s.VerifyUntil.IsZero() && !now.Before(s.VerifyUntil) }
	return storedKeys{
		Keys:    slices.DeleteFunc(slices.Clone(sk.Keys), gone),
		Secrets: slices.DeleteFunc(slices.Clone(sk.Secrets), gone),
	}
}
