package token

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
)

func newKEK(t testing.TB) *KEK {
	t.Helper()
	b := make([]byte, KEKSize)
	rand.Read(b)
	k, err := NewKEK(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKEKService(t testing.TB, store Store, c *clock, kek *KEK) (*KeyManager, *Service) {
	t.Helper()
	keys, err := NewKeyManager(store, KeyOptions{Now: c.Now, Log: hclog.NewNullLogger(), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	return keys, New(keys, Options{IssuerBase: issuerBase, Now: c.Now})
}

// issueBoth issues an access and a refresh token, so the realm has a key of each kind.
func issueBoth(t testing.TB, svc *Service, c *clock) []*Token {
	t.Helper()
	var out []*Token
	for _, typ := range []Type{Bearer, Refresh} {
		tok, err := svc.Issue(context.Background(), "acme", claims(typ, c.Now()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tok)
	}
	return out
}

// With a KEK, the store holds no private key or secret in the clear, and another node (or a
// restart) with the same KEK verifies what was signed.
func TestKeysAreEncryptedAtRestWithTheKEK(t *testing.T) {
	store, c, kek := newFakeStore(), newClock(), newKEK(t)
	_, svc := newKEKService(t, store, c, kek)
	tokens := issueBoth(t, svc, c)
	sk := store.storedOf(t, "acme")
	for _, s := range sk.all() {
		if s.PKCS8 != nil || s.Secret != nil || len(s.Sealed) == 0 || s.KEKID != kek.ID() {
			t.Errorf("stored key %s %s: pkcs8 %d bytes, secret %d bytes, sealed %d bytes, kek %q", s.Algorithm, s.ID, len(s.PKCS8), len(s.Secret), len(s.Sealed), s.KEKID)
		}
	}
	_, restarted := newKEKService(t, store, c, kek)
	for _, tok := range tokens {
		if _, err := restarted.Verify(context.Background(), "acme", tok.Raw, tok.Type); err != nil {
			t.Errorf("verify a %s token after restart: %v", tok.Type, err)
		}
	}
}

// A key in the store that cannot be decrypted signs and verifies nothing, and says why and
// what to set; it is spi.ErrUnavailable (503), never a refused token, and nothing in the store
// is replaced.
func TestKeyInTheStoreWithoutTheKEKCannotSign(t *testing.T) {
	store, c, kek := newFakeStore(), newClock(), newKEK(t)
	_, svc := newKEKService(t, store, c, kek)
	tokens := issueBoth(t, svc, c)
	before := store.storedOf(t, "acme")

	moved := newFakeStore()
	moved.put(t, "other", before) // acme's record copied under another realm's name

	tests := []struct {
		name  string
		store *fakeStore
		realm string
		kek   *KEK
		want  []string
	}{
		{"no KEK configured", store, "acme", nil, []string{"encrypted with key-encryption key " + kek.ID(), "none is configured", "key-encryption-key-file"}},
		{"another KEK", store, "acme", newKEK(t), []string{"encrypted with key-encryption key " + kek.ID(), "but the one configured is"}},
		{"sealed key moved to another realm", moved, "other", kek, []string{"does not decrypt", "copied from another realm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, svc := newKEKService(t, tt.store, c, tt.kek)
			ctx := context.Background()
			_, issueErr := svc.Issue(ctx, tt.realm, claims(Refresh, c.Now()))
			_, jwksErr := keys.JWKS(ctx, tt.realm)
			_, rotateErr := keys.Rotate(ctx, tt.realm)
			_, verifyErr := svc.Verify(ctx, tt.realm, tokens[0].Raw, Bearer)
			for what, err := range map[string]error{"issue": issueErr, "JWKS": jwksErr, "rotate": rotateErr, "verify": verifyErr} {
				var refused *Error
				if !errors.Is(err, ErrKeyEncryption) || !errors.Is(err, spi.ErrUnavailable) || errors.As(err, &refused) {
					t.Errorf("%s: %v, want ErrKeyEncryption and spi.ErrUnavailable", what, err)
					continue
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not say %q", what, err, w)
					}
				}
			}
			if after := tt.store.storedOf(t, tt.realm); len(after.Keys) != len(before.Keys) || len(after.Secrets) != len(before.Secrets) {
				t.Errorf("the stored keys changed: %+v", after)
			}
		})
	}
}

// Keys stored in plain text (by start-dev, or a sessiond from before KEKs) are encrypted the
// first time a node with a KEK reads them, and tokens they signed still verify.
func TestPlaintextKeysAreEncryptedOnFirstUse(t *testing.T) {
	store, c, kek := newFakeStore(), newClock(), newKEK(t)
	_, plain := newKEKService(t, store, c, nil)
	tokens := issueBoth(t, plain, c)
	if sk := store.storedOf(t, "acme"); !sk.plain() {
		t.Fatalf("without a KEK the keys are stored sealed: %+v", sk)
	}
	_, svc := newKEKService(t, store, c, kek)
	for _, tok := range tokens {
		if _, err := svc.Verify(context.Background(), "acme", tok.Raw, tok.Type); err != nil {
			t.Errorf("verify a %s token signed before the migration: %v", tok.Type, err)
		}
	}
	sk := store.storedOf(t, "acme")
	for _, s := range sk.all() {
		if s.Sealed == nil || s.KEKID != kek.ID() || s.PKCS8 != nil || s.Secret != nil {
			t.Errorf("key %s %s still in plain text after the migration", s.Algorithm, s.ID)
		}
	}
	if len(sk.Keys) != 1 || len(sk.Secrets) != 1 || sk.Keys[0].ID != tokens[0].KeyID || sk.Secrets[0].ID != tokens[1].KeyID {
		t.Errorf("the migration changed the keys: %+v", sk)
	}
	if bytes.Contains(store.records[RecordKind+"/acme"].Value, []byte("pkcs8")) {
		t.Errorf("the record still has a pkcs8 member")
	}
}

func TestNewKEKRefusesWrongSize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewKEK(make([]byte, n)); !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("NewKEK(%d bytes) = %v, want spi.ErrInvalid", n, err)
		}
	}
}
