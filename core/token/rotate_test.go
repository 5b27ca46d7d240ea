package token

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// passive is the passive period the rotation tests give their realms.
var passive = Passive{Published: 10 * time.Minute, Secret: 2 * time.Hour}

func newRotatingService(t testing.TB, store Store, c *clock) (*KeyManager, *Service) {
	t.Helper()
	keys, err := NewKeyManager(store, KeyOptions{Now: c.Now, Log: hclog.NewNullLogger(), Passive: func(string) Passive { return passive }})
	if err != nil {
		t.Fatal(err)
	}
	return keys, New(keys, Options{IssuerBase: issuerBase, Now: c.Now})
}

// A rotation leaves the old keys verifying the tokens they signed for the realm's passive
// period (plus the reload interval, in which other nodes may still sign with them), and then
// not; the JWKS shows the old published key beside the new one for as long.
func TestRotationKeepsOldTokensValidUntilTheyExpire(t *testing.T) {
	store, c := newFakeStore(), newClock()
	keys, svc := newRotatingService(t, store, c)
	ctx := context.Background()
	long := func(typ Type) *Token { // outlives the passive period, to see the key stop
		cl := claims(typ, c.Now())
		cl.Expiry = c.Now().Add(24 * time.Hour)
		tok, err := svc.Issue(ctx, "acme", cl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	access, refresh := long(Bearer), long(Refresh)

	infos, err := keys.Rotate(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 4 {
		t.Fatalf("after rotation %d keys, want 2 published and 2 secrets: %+v", len(infos), infos)
	}
	newAccess, newRefresh := long(Bearer), long(Refresh)
	if newAccess.KeyID == access.KeyID || newRefresh.KeyID == refresh.KeyID {
		t.Fatalf("new tokens are still signed with the old keys")
	}
	if set := jwksOf(t, keys, "acme"); len(set.Keys) != 2 || set.Keys[0].KeyID != newAccess.KeyID || set.Keys[1].KeyID != access.KeyID {
		t.Errorf("JWKS after rotation: %+v, want the new key then the old one", set.Keys)
	}
	verify := func(tok *Token) error {
		_, err := svc.Verify(ctx, "acme", tok.Raw, tok.Type)
		return err
	}
	steps := []struct {
		at                time.Duration // after the rotation
		access, refresh   error
		publishedInJWKS   int
		disabledInListing int
	}{
		{at: 0, publishedInJWKS: 2},
		{at: passive.Published + defaultReload - time.Second, publishedInJWKS: 2},
		{at: passive.Published + defaultReload, access: ErrUnknownKey, publishedInJWKS: 1, disabledInListing: 1},
		{at: passive.Secret + defaultReload - time.Second, access: ErrUnknownKey, publishedInJWKS: 1, disabledInListing: 1},
		{at: passive.Secret + defaultReload, access: ErrUnknownKey, refresh: ErrUnknownKey, publishedInJWKS: 1, disabledInListing: 2},
	}
	rotated := c.Now()
	for _, s := range steps {
		c.Set(rotated.Add(s.at))
		if err := verify(access); !errors.Is(err, s.access) || (s.access == nil) != (err == nil) {
			t.Errorf("+%s: old access token: %v, want %v", s.at, err, s.access)
		}
		if err := verify(refresh); !errors.Is(err, s.refresh) || (s.refresh == nil) != (err == nil) {
			t.Errorf("+%s: old refresh token: %v, want %v", s.at, err, s.refresh)
		}
		if err := errors.Join(verify(newAccess), verify(newRefresh)); err != nil {
			t.Errorf("+%s: new tokens: %v", s.at, err)
		}
		if n := len(jwksOf(t, keys, "acme").Keys); n != s.publishedInJWKS {
			t.Errorf("+%s: JWKS has %d keys, want %d", s.at, n, s.publishedInJWKS)
		}
		infos, err := keys.Keys(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		disabled := 0
		for _, ki := range infos {
			if ki.Status == StatusDisabled {
				disabled++
			}
		}
		if disabled != s.disabledInListing {
			t.Errorf("+%s: %d disabled keys listed, want %d: %+v", s.at, disabled, s.disabledInListing, infos)
		}
	}
	// The next rotation drops the keys that verify nothing any more.
	if _, err := keys.Rotate(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if sk := store.storedOf(t, "acme"); len(sk.Keys) != 2 || len(sk.Secrets) != 2 {
		t.Errorf("after a second rotation the record holds %d keys and %d secrets, want 2 and 2", len(sk.Keys), len(sk.Secrets))
	}
}

// The listing names each key's kind, status and dates, and never its private material.
func TestKeysListsActiveAndPassiveWithoutPrivateMaterial(t *testing.T) {
	store, c := newFakeStore(), newClock()
	keys, _ := newRotatingService(t, store, c)
	ctx := context.Background()
	if infos, err := keys.Keys(ctx, "acme"); err != nil || len(infos) != 0 {
		t.Fatalf("keys of a realm that has none: %+v, %v", infos, err)
	}
	if _, err := keys.Rotate(ctx, "acme"); err != nil { // a realm without keys gets its first
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	infos, err := keys.Rotate(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		alg    Algorithm
		kty    string
		status string
		until  time.Time
	}{
		{ES256, "EC", StatusActive, time.Time{}},
		{HS512, "OCT", StatusActive, time.Time{}},
		{ES256, "EC", StatusPassive, c.Now().Add(passive.Published + defaultReload)},
		{HS512, "OCT", StatusPassive, c.Now().Add(passive.Secret + defaultReload)},
	}
	if len(infos) != len(want) {
		t.Fatalf("%d keys listed: %+v", len(infos), infos)
	}
	for i, w := range want {
		ki := infos[i]
		if ki.Algorithm != w.alg || ki.Type != w.kty || ki.Status != w.status || !ki.VerifiesUntil.Equal(w.until) || ki.KeyID == "" {
			t.Errorf("key %d: %+v, want %s %s %s until %s", i, ki, w.alg, w.kty, w.status, w.until)
		}
		if (ki.PublicKey != nil) != (w.alg != HS512) {
			t.Errorf("key %d (%s) public key %x", i, w.alg, ki.PublicKey)
		}
	}
}

// Two nodes sharing a store that find the realm's keys due for rotation at the same moment
// make one new key of each kind: the loser of the versioned write re-reads and finds the
// winner's keys not due.
func TestRotateDueRacingNodesMakeOneKey(t *testing.T) {
	store, c := newFakeStore(), newClock()
	_, svc := newRotatingService(t, store, c)
	old := map[Type]string{}
	for _, typ := range []Type{Bearer, Refresh} {
		tok, err := svc.Issue(context.Background(), "acme", claims(typ, c.Now()))
		if err != nil {
			t.Fatal(err)
		}
		old[typ] = tok.KeyID
	}
	const interval = 30 * 24 * time.Hour
	racing := newRacingStore(store)
	a, _ := newRotatingService(t, racing, c)
	b, _ := newRotatingService(t, racing, c)
	for _, n := range []*KeyManager{a, b} {
		if rotated, err := n.RotateDue(context.Background(), "acme", interval); err != nil || rotated {
			t.Fatalf("RotateDue before the interval: %v, %v", rotated, err)
		}
	}
	c.Advance(interval)
	var wg sync.WaitGroup
	results := make([]bool, 2)
	for i, n := range []*KeyManager{a, b} {
		wg.Go(func() {
			var err error
			if results[i], err = n.RotateDue(context.Background(), "acme", interval); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if results[0] == results[1] {
		t.Errorf("RotateDue answers %v: want exactly one node to rotate", results)
	}
	sk := store.storedOf(t, "acme")
	if len(sk.Keys) != 2 || len(sk.Secrets) != 2 {
		t.Fatalf("stored %d keys and %d secrets, want 2 and 2", len(sk.Keys), len(sk.Secrets))
	}
	if sk.Keys[1].ID != old[Bearer] || sk.Keys[1].VerifyUntil.IsZero() || sk.Secrets[1].ID != old[Refresh] || sk.Secrets[1].VerifyUntil.IsZero() {
		t.Errorf("the old keys are not the retired ones: %+v", sk)
	}
}
