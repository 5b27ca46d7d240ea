package token

import (
	"context"
	"testing"
)

func BenchmarkIssueAccessToken(b *testing.B) {
	for _, alg := range []Algorithm{ES256, RS256} {
		b.Run(string(alg), func(b *testing.B) {
			f := newFixture(b, alg, 0)
			c := claims(Bearer, t0)
			f.issue(b, "acme", c) // create the key outside the loop
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.svc.Issue(context.Background(), "acme", c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyAccessToken(b *testing.B) {
	for _, alg := range []Algorithm{ES256, RS256} {
		b.Run(string(alg), func(b *testing.B) {
			f := newFixture(b, alg, 0)
			raw := f.issue(b, "acme", claims(Bearer, t0)).Raw
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.svc.Verify(context.Background(), "acme", raw, Bearer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The refresh token benchmarks measure what a refresh grant signs and verifies: with the
// realm's HMAC secret since refresh tokens stopped being signed with the published key.
func BenchmarkIssueRefreshToken(b *testing.B) {
	f := newFixture(b, ES256, 0)
	c := claims(Refresh, t0)
	f.issue(b, "acme", c) // create the key outside the loop
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Issue(context.Background(), "acme", c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRefreshToken(b *testing.B) {
	f := newFixture(b, ES256, 0)
	raw := f.issue(b, "acme", claims(Refresh, t0)).Raw
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Verify(context.Background(), "acme", raw, Refresh); err != nil {
			b.Fatal(err)
		}
	}
}
