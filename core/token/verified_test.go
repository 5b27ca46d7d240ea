package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A token answered from the verified-token cache is refused for every reason a fresh
// verification refuses it for, except the signature, which cannot change: a kind the
// caller does not take, another realm, expiry, a key no longer usable. Each step runs on
// one service, in order, and says whether it must have been a hit.
func TestVerifiedCacheAnswersAsAFreshVerification(t *testing.T) {
	const leeway = 30 * time.Second
	f := newFixture(t, ES256, leeway)
	ctx := context.Background()
	access := f.issue(t, "acme", claims(Bearer, t0)).Raw
	refresh := f.issue(t, "acme", claims(Refresh, t0)).Raw
	forged := access[:len(access)-4] + flipAll(access[len(access)-4:])
	steps := []struct {
		name    string
		raw     string
		realm   string
		expect  []Type
		advance time.Duration
		want    error // nil: verifies
		hit     bool
	}{
		{name: "first verification", raw: access, realm: "acme", want: nil},
		{name: "same token again", raw: access, realm: "acme", want: nil, hit: true},
		{name: "same token as a refresh token", raw: access, realm: "acme", expect: []Type{Refresh, Offline}, want: ErrWrongType, hit: true},
		{name: "refresh token", raw: refresh, realm: "acme", expect: []Type{Refresh}, want: nil},
		{name: "refresh token again", raw: refresh, realm: "acme", expect: []Type{Refresh}, want: nil, hit: true},
		{name: "refresh token as an access token", raw: refresh, realm: "acme", want: ErrWrongType, hit: true},
		{name: "forged signature", raw: forged, realm: "acme", want: ErrSignature},
		{name: "forged signature again: never cached", raw: forged, realm: "acme", want: ErrSignature},
		{name: "same token in another realm", raw: access, realm: "other", want: ErrUnknownKey},
		{name: "refresh token at its exp: no leeway", raw: refresh, realm: "acme", expect: []Type{Refresh}, advance: 5 * time.Minute, want: ErrExpired, hit: true},
		{name: "access token within leeway", raw: access, realm: "acme", want: nil, hit: true},
		{name: "access token past leeway", raw: access, realm: "acme", advance: leeway, want: ErrExpired},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		before := f.svc.verified.hits.Load()
		expect := s.expect
		if expect == nil {
			expect = []Type{Bearer}
		}
		_, err := f.svc.Verify(ctx, s.realm, s.raw, expect...)
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
		if hit := f.svc.verified.hits.Load() > before; hit != s.hit {
			t.Errorf("%s: hit = %v, want %v", s.name, hit, s.hit)
		}
	}
}

// A cached token stops verifying once its key is gone: here another node rewrote the
// realm's keys without it, and this node read them again after its reload interval.
func TestVerifiedCacheFollowsRemovedKey(t *testing.T) {
	f := newFixture(t, ES256, 0)
	ctx := context.Background()
	tok := f.issue(t, "acme", claims(Bearer, t0))
	for range 2 {
		if _, err := f.svc.Verify(ctx, "acme", tok.Raw, Bearer); err != nil {
			t.Fatal(err)
		}
	}
	next, err := generate(ES256, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	sk := f.store.storedOf(t, "acme")
	f.store.put(t, "acme", storedKeys{Keys: []stored{next}, Secrets: sk.Secrets})
	f.clock.Advance(defaultReload)
	if _, err := f.svc.Verify(ctx, "acme", tok.Raw, Bearer); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a removed key: %v, want ErrUnknownKey", err)
	}
	if n := f.svc.verified.len(); n != 0 {
		t.Errorf("%d entries left after the key went, want 0", n)
	}
}

// The cache holds at most its bound, and what a caller does with a verified token does not
// reach the next caller.
func TestVerifiedCacheBoundAndCopies(t *testing.T) {
	store, c := newFakeStore(), newClock()
	keys, err := NewKeyManager(store, KeyOptions{Algorithm: ES256, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc := New(keys, Options{IssuerBase: issuerBase, Now: c.Now, VerifiedTokens: 4})
	ctx := context.Background()
	var raws []string
	for i := range 10 {
		cl := claims(Bearer, t0)
		cl.Subject = fmt.Sprint("user-", i)
		tok, err := svc.Issue(ctx, "acme", cl)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, tok.Raw)
		if _, err := svc.Verify(ctx, "acme", tok.Raw, Bearer); err != nil {
			t.Fatal(err)
		}
		if n := svc.verified.len(); n > 4 {
			t.Fatalf("after %d tokens the cache holds %d, more than its bound 4", i+1, n)
		}
	}
	got, err := svc.Verify(ctx, "acme", raws[9], Bearer)
	if err != nil {
		t.Fatal(err)
	}
	got.Audience[0], got.Subject = "changed", "changed"
	again, err := svc.Verify(ctx, "acme", raws[9], Bearer)
	if err != nil || again.Audience[0] != "account" || again.Subject != "user-9" {
		t.Errorf("after a caller changed its copy: %+v, %v", again, err)
	}
	off := New(keys, Options{IssuerBase: issuerBase, Now: c.Now, VerifiedTokens: -1})
	if _, err := off.Verify(ctx, "acme", raws[0], Bearer); err != nil || off.verified != nil {
		t.Errorf("cache off: %v, cache %v", err, off.verified)
	}
}

// flipAll changes every character of s to another base64url character.
func flipAll(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteString(flip(s[i]))
	}
	return b.String()
}
