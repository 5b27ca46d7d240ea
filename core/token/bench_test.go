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

// BenchmarkVerifyAccessToken verifies the same token again and again, as introspection of
// a live token does: "cache" answers from the verified-token cache after the first, "no
// cache" checks the signature every time (VerifiedTokens: -1, as before the cache).
func BenchmarkVerifyAccessToken(b *testing.B) {
	for _, alg := range []Algorithm{ES256, RS256} {
		for _, cached := range []bool{true, false} {
			name := string(alg) + "/cache"
			if !cached {
				name = string(alg) + "/no cache"
			}
			b.Run(name, func(b *testing.B) {
				f := newFixture(b, alg, 0)
				svc := f.svc
				if !cached {
					svc = New(f.keys, Options{IssuerBase: issuerBase, Now: f.clock.Now, VerifiedTokens: -1})
				}
				raw := f.issue(b, "acme", claims(Bearer, t0)).Raw
				b.ReportAllocs()
				for b.Loop() {
					if _, err := svc.Verify(context.Background(), "acme", raw, Bearer); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
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
