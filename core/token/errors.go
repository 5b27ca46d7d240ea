package token

import "errors"

// What went wrong with a presented token. Verify returns them inside an *Error; test with
// errors.Is. Any other error from Verify means the realm's keys could not be read (the
// store's own error, e.g. spi.ErrUnavailable), not that the token is bad.
var (
	ErrMalformed  = errors.New("malformed token")             // not a compact JWS of sessiond's shape, or too large
	ErrAlgorithm  = errors.New("signature algorithm refused") // none, HS*, or an algorithm the realm's key does not use
	ErrUnknownKey = errors.New("unknown signing key")         // kid names no key this realm verifies with
	ErrSignature  = errors.New("invalid signature")           // the realm's key does not verify it
	ErrWrongRealm = errors.New("issued for another realm")    // iss is not this realm's issuer
	ErrWrongType  = errors.New("wrong token type")            // typ is not what the caller accepts
	ErrExpired    = errors.New("token expired")               // exp has passed
)

// Error is a refused token. Description is precise and safe to return to the client as
// OAuth's error_description: it never quotes attacker-chosen bytes beyond a short kid, alg
// or typ.
type Error struct {
	Kind        error // one of the Err* values above
	Description string
}

func (e *Error) Error() string { return e.Description }
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, description string) *Error {
	return &Error{Kind: kind, Description: description}
}
