package dpop_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/core/dpop"
)

// BenchmarkCheck is the checker's share of a DPoP token request: parse, ES256 signature,
// claims, and the jti recorded in an in-process memory store (BenchmarkRefreshDPoPHTTP in
// core/httpapi has the whole request). The proofs are made before the timer starts.
//
//	go test -run '^$' -bench Check -benchtime 5000x ./core/dpop
func BenchmarkCheck(b *testing.B) {
	s := newSigner(b, jose.ES256)
	now := time.Now()
	c := dpop.New(memoryStore(b, "bench"), dpop.Options{Now: func() time.Time { return now }})
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = s.sign(b, goodClaims(tokenURL, now), nil)
	}
	req := dpop.Request{Realm: realmName, Method: "POST", URL: tokenURL}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := c.Check(context.Background(), proofs[i], req); err != nil {
			b.Fatal(err)
		}
	}
}
