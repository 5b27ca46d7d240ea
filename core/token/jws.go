package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// compactSigner signs compact JWSs with one key under one JWS header type.
//
// The protected header is the same for every token a key signs under a type, so it is
// encoded once, and each token computes only its signature here, as go-jose does (RFC 7515
// §5.1, RFC 7518 §3). A go-jose Signer encodes the header again for every token, through
// reflection over a map, and copies the payload several times over: that was a quarter
// of a refresh's allocations. The header is what go-jose writes, its members in the order
// go-jose sorts them: TestCompactSignerIsGoJose holds the whole JWS to a go-jose Signer's.
type compactSigner struct {
	header string // the protected header, base64url encoded
	k      *key
}

func newCompactSigner(k *key, typ string) (*compactSigner, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{string(k.alg), k.id, typ})
	if err != nil {
		return nil, err
	}
	return &compactSigner{header: base64.RawURLEncoding.EncodeToString(header), k: k}, nil
}

// sign returns payload signed as a compact JWS.
func (s *compactSigner) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	b := make([]byte, 0, len(s.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(s.k.signatureSize()))
	b = append(b, s.header...)
	b = append(b, '.')
	b = enc.AppendEncode(b, payload)
	sig, err := s.k.signature(b)
	if err != nil {
		return "", err
	}
	b = append(b, '.')
	b = enc.AppendEncode(b, sig)
	return string(b), nil
}

// signatureSize is the length of k's JWS signatures.
func (k *key) signatureSize() int {
	switch p := k.private.(type) {
	case *ecdsa.PrivateKey:
		return 2 * ((p.Curve.Params().BitSize + 7) / 8)
	case *rsa.PrivateKey:
		return p.Size()
	}
	return sha512.Size
}

// signature is the JWS signature of input (RFC 7518 §3): HMAC-SHA512 with a realm secret;
// with ES256, R and S of the ECDSA signature of its SHA-256, each left-padded to the
// curve's size; with RS256, its RSASSA-PKCS1-v1_5 SHA-256 signature.
func (k *key) signature(input []byte) ([]byte, error) {
	if k.secret != nil {
		mac := hmac.New(sha512.New, k.secret)
		mac.Write(input)
		return mac.Sum(nil), nil
	}
	digest := sha256.Sum256(input)
	switch p := k.private.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, p, digest[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, k.signatureSize())
		r.FillBytes(sig[:len(sig)/2])
		s.FillBytes(sig[len(sig)/2:])
		return sig, nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, p, crypto.SHA256, digest[:])
	}
	return nil, fmt.Errorf("key %s of algorithm %s cannot sign", k.id, k.alg)
}
