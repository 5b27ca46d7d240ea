package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

// The forgeries an attacker can make of a token without the realm's private key.

// tamper changes one character inside the token's signature.
func tamper(raw string) string {
	i := strings.LastIndex(raw, ".") + 10
	b := []byte(raw)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// truncate drops the signature, leaving "header.payload".
func truncate(raw string) string { return raw[:strings.LastIndex(raw, ".")] }

// header returns a token's decoded JOSE header.
func header(tb testing.TB, raw string) map[string]any {
	tb.Helper()
	return jwtPart(tb, raw, 0)
}

// payload returns a token's decoded claims.
func payload(tb testing.TB, raw string) map[string]any {
	tb.Helper()
	return jwtPart(tb, raw, 1)
}

// jwtPart decodes part i of a compact JWS, a JSON object.
func jwtPart(tb testing.TB, raw string, i int) map[string]any {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[i])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// resign rewrites the header's alg and signs header.payload with sign.
func resign(tb testing.TB, raw, alg string, sign func(signingInput string) []byte) string {
	tb.Helper()
	h := header(tb, raw)
	h["alg"] = alg
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + strings.Split(raw, ".")[1]
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

// algNone claims the token needs no signature.
func algNone(tb testing.TB, raw string) string {
	return resign(tb, raw, "none", func(string) []byte { return nil })
}

// hs256 is the key-confusion attack: an HMAC over the token keyed with the realm's public
// key (published in its JWKS), hoping the verifier takes "the key" for an HMAC secret.
func (s *stack) hs256(tb testing.TB, realmName, raw string) string {
	tb.Helper()
	set, err := s.keys.JWKS(s.ctx, realmName)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(set.Keys[0].Key)
	if err != nil {
		tb.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return resign(tb, raw, "HS256", func(input string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	})
}
