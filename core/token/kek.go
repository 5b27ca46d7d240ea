package token

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/spi"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// ErrKeyEncryption is a realm key that cannot be decrypted: no key-encryption key is
// configured, another one is, or the stored blob was altered or moved. It is also
// spi.ErrUnavailable to errors.Is: nothing can be signed, the token endpoint answers 503,
// and the operator, not the client, must act.
var ErrKeyEncryption = errors.New("realm key cannot be decrypted")

// KEK is the key-encryption key the operator supplies: realm private keys and secrets are
// stored sealed with it (AES-256-GCM), with the realm, kid and algorithm as associated data
// so that a sealed key cannot be moved to another realm or kid. Its ID, stored beside each
// sealed key, tells a wrong KEK from a damaged blob.
type KEK struct {
	aead cipher.AEAD
	id   string
}

// NewKEK returns the KEK of key, which must be KEKSize random bytes.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("key-encryption key has %d bytes, not %d: %w", len(key), KEKSize, spi.ErrInvalid)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// The id is an HMAC of a fixed label under the key: it names the key without telling
	// anything about it.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("sessiond key-encryption-key id"))
	return &KEK{aead: aead, id: base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:12])}, nil
}

// ID names the KEK in the store and in error messages; it reveals nothing of the key.
func (k *KEK) ID() string { return k.id }

func aad(realm string, s stored) []byte {
	return []byte("sessiond realm key\x00" + realm + "\x00" + s.ID + "\x00" + string(s.Algorithm))
}

// seal returns s with its private material encrypted.
func (k *KEK) seal(realm string, s stored) stored {
	plain := s.PKCS8
	if s.Algorithm == HS512 {
		plain = s.Secret
	}
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	s.Sealed = k.aead.Seal(nonce, nonce, plain, aad(realm, s))
	s.KEKID, s.PKCS8, s.Secret = k.id, nil, nil
	return s
}

// open returns s with its private material decrypted, or an ErrKeyEncryption that says what
// to do.
func (k *KEK) open(realm string, s stored) (stored, error) {
	switch {
	case k == nil:
		return s, fmt.Errorf("key %q of realm %q is encrypted with key-encryption key %s and none is configured: set key-encryption-key-file or key-encryption-key (SESSIOND_KEY_ENCRYPTION_KEY) to that key: %w: %w",
			s.ID, realm, s.KEKID, ErrKeyEncryption, spi.ErrUnavailable)
	case s.KEKID != k.id:
		return s, fmt.Errorf("key %q of realm %q is encrypted with key-encryption key %s, but the one configured is %s: configure the key the realm's keys were encrypted with: %w: %w",
			s.ID, realm, s.KEKID, k.id, ErrKeyEncryption, spi.ErrUnavailable)
	}
	n := k.aead.NonceSize()
	if len(s.Sealed) < n {
		return s, fmt.Errorf("key %q of realm %q: sealed key is truncated: %w: %w", s.ID, realm, ErrKeyEncryption, spi.ErrUnavailable)
	}
	plain, err := k.aead.Open(nil, s.Sealed[:n], s.Sealed[n:], aad(realm, s))
	if err != nil {
		return s, fmt.Errorf("key %q of realm %q does not decrypt with key-encryption key %s: the stored key was altered or copied from another realm or kid: %w: %w",
			s.ID, realm, k.id, ErrKeyEncryption, spi.ErrUnavailable)
	}
	if s.Algorithm == HS512 {
		s.Secret = plain
	} else {
		s.PKCS8 = plain
	}
	s.Sealed, s.KEKID = nil, ""
	return s, nil
}

// Check reads the realm's stored keys and decrypts them, without creating any: the runtime
// calls it at start-up, so that a missing or wrong key-encryption key stops the start with
// its reason rather than failing every token request.
func (m *KeyManager) Check(ctx context.Context, realm string) error {
	_, err := m.read(ctx, realm)
	return err
}

// Seal encrypts a secret other than a realm key (the admin console's cookie key) under the
// KEK, bound to aad: what it opens under another aad does not decrypt.
func (k *KEK) Seal(aad, plain []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plain, aad)
}

// Open decrypts what Seal sealed under the same aad; a truncated, altered or moved blob is
// ErrKeyEncryption.
func (k *KEK) Open(aad, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, fmt.Errorf("sealed secret is truncated: %w", ErrKeyEncryption)
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("sealed secret does not decrypt with key-encryption key %s: %w", k.id, ErrKeyEncryption)
	}
	return plain, nil
}
