package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// BenchmarkRefreshDPoPHTTP: BenchmarkRefreshHTTP's refresh, "bearer" without a proof and
// "dpop" with one (ES256), side by side in one run: the proof's parse and signature check,
// and its jti recorded in the store (one PutRecord, across the boundary in the plugin runs).
// The proofs are made before the timer starts: the client's signing is not sessiond's cost.
//
//	go test -run '^$' -bench 'RefreshDPoPHTTP' -benchtime 2000x ./core/httpapi
func BenchmarkRefreshDPoPHTTP(b *testing.B) {
	for _, withProof := range []bool{false, true} {
		name := "bearer"
		if withProof {
			name = "dpop"
		}
		b.Run(name, func(b *testing.B) {
			benchStack(b, func(b *testing.B, s *stack, g tokens) {
				h := newHolder(b)
				c := refreshCall(realmName, confidentialAuth, g.RefreshToken)
				calls := make([]call, b.N)
				for i := range calls {
					calls[i] = c
					if withProof {
						// iat moves with the clock below: a millisecond per refresh.
						calls[i] = withDPoP(c, h.proof(b, http.MethodPost, s.tokenURL(), s.clock.Now().Add(time.Duration(i)*time.Millisecond), nil))
					}
				}
				b.ResetTimer()
				for i := range b.N {
					s.clock.Advance(time.Millisecond)
					if r := s.do(b, calls[i]); r.status != http.StatusOK {
						b.Fatalf("refresh: %d %s", r.status, r.body)
					}
				}
			})
		})
	}
}

// PutRecord is counted too: the DPoP jti records (BenchmarkRefreshDPoPHTTP).
func (c *counting) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	c.calls.Add(1)
	return c.Provider.PutRecord(ctx, r)
}
