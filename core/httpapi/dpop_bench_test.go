package httpapi_test

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// BenchmarkRefreshDPoPHTTP: BenchmarkRefreshHTTP's refresh, "bearer" without a proof and
// "dpop" with one (ES256), side by side in one run: the proof's parse and signature check,
// and its jti recorded in the store (one PutRecord, across the boundary in the plugin runs).
// The proofs are made before the timer starts: the client's signing is not sessiond's cost.
// cpu-us/op is the CPU time of this process per refresh (processCPU).
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
				cpu := processCPU(b)
				for i := range b.N {
					s.clock.Advance(time.Millisecond)
					if r := s.do(b, calls[i]); r.status != http.StatusOK {
						b.Fatalf("refresh: %d %s", r.status, r.body)
					}
				}
				b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N)/1e3, "cpu-us/op")
			})
		})
	}
}

// processCPU is the CPU time this process has used (user and system). On a machine shared
// with other work, ns/op measures the queue for the CPU as much as the work; cpu-us/op (the
// client's and the server's, not a plugin's) measures the work.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PutRecord is counted too: the DPoP jti records (BenchmarkRefreshDPoPHTTP).
func (c *counting) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	c.calls.Add(1)
	return c.Provider.PutRecord(ctx, r)
}
