package admin

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/core/token"
)

// Keys are the realms' signing keys; *token.KeyManager implements it.
type Keys interface {
	Keys(ctx context.Context, realm string) ([]token.KeyInfo, error)
	Rotate(ctx context.Context, realm string) ([]token.KeyInfo, error)
}

// KeysRep is Keycloak's KeysMetadataRepresentation as far as it fits: the active key's kid
// by algorithm, and every key's metadata. It never holds private material.
type KeysRep struct {
	Active map[string]string `json:"active"`
	Keys   []KeyRep          `json:"keys"`
}

// KeyRep is one key: Keycloak's KeyMetadataRepresentation members, and sessiond's dates.
type KeyRep struct {
	KID       string `json:"kid"`
	Algorithm string `json:"algorithm"`
	Type      string `json:"type"`   // EC, RSA, OCT
	Use       string `json:"use"`    // SIG
	Status    string `json:"status"` // ACTIVE, PASSIVE, DISABLED
	// PublicKey is the base64 DER SubjectPublicKeyInfo, as Keycloak shows it; none for the
	// refresh token secret.
	PublicKey string    `json:"publicKey,omitempty"`
	Created   time.Time `json:"created"`
	// VerifiesUntil is when a retired key stops verifying tokens; absent for an active key.
	VerifiesUntil *time.Time `json:"verifiesUntil,omitempty"`
}

// Keys lists a realm's keys.
func (s *Service) Keys(ctx context.Context, realmName string) (KeysRep, error) {
	return s.keysOf(ctx, realmName, Keys.Keys)
}

// RotateKeys gives a realm new active keys; the old ones verify on until the tokens they
// signed have expired.
func (s *Service) RotateKeys(ctx context.Context, realmName string) (KeysRep, error) {
	return s.keysOf(ctx, realmName, Keys.Rotate)
}

func (s *Service) keysOf(ctx context.Context, realmName string, op func(Keys, context.Context, string) ([]token.KeyInfo, error)) (KeysRep, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return KeysRep{}, err
	}
	if s.keys == nil {
		return KeysRep{}, fmt.Errorf("realm keys: %w", ErrNotConfigured)
	}
	infos, err := op(s.keys, ctx, r.Name)
	if err != nil {
		return KeysRep{}, fmt.Errorf("keys of realm %q: %w", r.Name, err)
	}
	rep := KeysRep{Active: map[string]string{}, Keys: make([]KeyRep, len(infos))}
	for i, ki := range infos {
		k := KeyRep{KID: ki.KeyID, Algorithm: string(ki.Algorithm), Type: ki.Type, Use: "SIG", Status: ki.Status, Created: ki.Created}
		if ki.PublicKey != nil {
			k.PublicKey = base64.StdEncoding.EncodeToString(ki.PublicKey)
		}
		if !ki.VerifiesUntil.IsZero() {
			until := ki.VerifiesUntil
			k.VerifiesUntil = &until
		}
		if ki.Status == token.StatusActive {
			rep.Active[k.Algorithm] = k.KID
		}
		rep.Keys[i] = k
	}
	return rep, nil
}
