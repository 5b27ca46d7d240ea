package authfail_test

import (
	"testing"

	"github.com/sessiond/sessiond/core/authfail"
)

// BenchmarkSuccessfulAuthentication is what the guard adds to an authentication that
// succeeds, with the default limits: a check before the comparison and the known-good
// address remembered after it, from all cores at once.
func BenchmarkSuccessfulAuthentication(b *testing.B) {
	g := authfail.New(&recorder{}, authfail.Options{Limit: authfail.DefaultLimit, ClientLimit: authfail.DefaultClientLimit})
	a := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "198.51.100.1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := g.Check(a); err != nil {
				b.Fatal(err)
			}
			g.Succeeded(a)
		}
	})
}
