package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
)

// signedNoticeLifespan is the longest life of what core/push signs with the published key
// besides access tokens: back-channel logout tokens live 2 minutes, adapter actions 30 s.
const signedNoticeLifespan = 2 * time.Minute

// keyPassive returns how long a realm's keys verify once rotated: the longest a token
// signed just before the rotation can live.
//
//   - The published key signs access tokens: the longest of the realm's access token
//     lifespan, its implicit-flow lifespan and every client's access.token.lifespan, plus
//     the verifier's leeway; and logout tokens and adapter actions, shorter still.
//   - The secret signs refresh and offline tokens, whose exp is at most their issue plus
//     the idle timeout of their user session (core/expiry Rules.RefreshToken): the longest of
//     SSO Session Idle, its remember-me value and Offline Session Idle, and, as a bound that
//     costs nothing to add, the client session and client attribute idle values. It also
//     signs action tokens: the realm's action lifespans (user- and admin-initiated and every
//     per-action override) count too. An administrator's own lifespan beyond those is not
//     covered: such a token stops verifying once its key's passive period ends
//     (docs/action-tokens.md).
//
// A realm that no longer exists keeps the longest values any realm has.
func keyPassive(realms *realm.Realms, leeway time.Duration) func(string) token.Passive {
	of := func(r *realm.Realm) token.Passive {
		t := r.Timeouts.Effective()
		p := token.Passive{
			Published: max(t.AccessTokenLifespan, t.AccessTokenLifespanImplicit, signedNoticeLifespan),
			Secret: max(t.SSOSessionIdle, t.SSOSessionIdleRememberMe, t.OfflineSessionIdle, t.ClientSessionIdle, t.ClientOfflineSessionIdle,
				t.UserActionLifespan, t.AdminActionLifespan),
		}
		for _, d := range r.ActionLifespans {
			p.Secret = max(p.Secret, d)
		}
		for _, c := range r.Clients {
			p.Published = max(p.Published, c.AccessTokenLifespan)
			p.Secret = max(p.Secret, c.SessionIdle, c.OfflineSessionIdle)
		}
		p.Published += leeway
		return p
	}
	return func(name string) token.Passive {
		if r, ok := realms.Realm(name); ok {
			return of(r)
		}
		var p token.Passive
		for _, r := range realms.List() {
			q := of(r)
			p.Published, p.Secret = max(p.Published, q.Published), max(p.Secret, q.Secret)
		}
		return p
	}
}

// rotateKeys rotates every realm's keys once its active keys are older than interval, until
// ctx ends. It looks every interval/24 (at most hourly, at least every second); the look
// reads this node's cache, and the nodes sharing a store race for the write, which one wins.
func (rt *Runtime) rotateKeys(ctx context.Context, keys *token.KeyManager, interval time.Duration) {
	tick := time.NewTicker(min(max(interval/24, time.Second), time.Hour))
	defer tick.Stop()
	for {
		for _, r := range rt.realms.List() {
			if _, err := keys.RotateDue(ctx, r.Name, interval); err != nil && ctx.Err() == nil {
				rt.log.Warn("cannot rotate the realm's keys; retrying later", "realm", r.Name, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// keyEncryptionKey returns the key-encryption key the operator supplied, nil without one
// (start-dev only: Start refuses `start` without one).
func (rt *Runtime) keyEncryptionKey() (*token.KEK, error) {
	b, err := rt.settings.KeyEncryptionKeyBytes()
	if err != nil || b == nil {
		if err == nil {
			rt.log.Warn("no key-encryption key: realm keys are stored in plain text, fine for start-dev only; set key-encryption-key-file to encrypt them")
		}
		return nil, err
	}
	kek, err := token.NewKEK(b)
	if err != nil {
		return nil, err
	}
	rt.log.Info("realm keys are stored encrypted", "kek", kek.ID())
	return kek, nil
}

// checkKeyTimeout bounds the start-up read of each realm's keys.
const checkKeyTimeout = 5 * time.Second

// checkKeys refuses to start when a realm's stored keys cannot be decrypted (no or another
// key-encryption key), saying so; it also encrypts keys stored in plain text when a KEK is
// set. A store that cannot be read is left to readiness to report.
func (rt *Runtime) checkKeys(keys *token.KeyManager) error {
	for _, r := range rt.realms.List() {
		ctx, cancel := context.WithTimeout(rt.bg, checkKeyTimeout)
		err := keys.Check(ctx, r.Name)
		cancel()
		switch {
		case errors.Is(err, token.ErrKeyEncryption):
			return fmt.Errorf("the keys of realm %q: %w", r.Name, err)
		case err != nil:
			rt.log.Warn("cannot read the realm's keys at start-up", "realm", r.Name, "error", err)
		}
	}
	return nil
}
