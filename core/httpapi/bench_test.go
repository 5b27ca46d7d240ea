package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/providers/usersessions/sqlstore/sqlstoretest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The benchmarks of the token endpoints end to end: a client through net/http to the
// httptest server, the handler, the session and token services, and the user-sessions
// store, the memory provider either in-process or as a real plugin process behind the
// go-plugin boundary (gRPC over a unix socket, mTLS), side by side so that the boundary's
// cost shows:
//
//	go test -run '^$' -bench 'RefreshHTTP|IntrospectHTTP' -benchtime 2000x ./core/httpapi
//
// store-calls/op counts the calls that reach the store (each crosses the boundary in the
// plugin runs); allocs/op counts this process only, not the plugin's.

// TestMain lets the test binary double as the memory provider's plugin process: the
// plugin runs of the benchmarks start this binary again, and sqlstoretest.Main then serves
// the provider instead of running tests.
func TestMain(m *testing.M) {
	sqlstoretest.Main(m, func(log hclog.Logger) spi.Provider { return memory.New(log) })
}

// benchStores are the two ways sessiond runs its user-sessions provider.
var benchStores = []struct {
	name  string
	start func(testing.TB) usersessions.Provider
}{
	// As --spi-user-sessions-memory-in-process=true runs it: the host hands the core the
	// provider itself.
	{"in-process", func(tb testing.TB) usersessions.Provider { return memoryStore(tb) }},
	// As sessiond runs it by default: a verified, supervised plugin process.
	{"plugin", func(tb testing.TB) usersessions.Provider {
		return sqlstoretest.StartPlugin(tb, memory.ID, spi.Config{spi.HostNodeID: testNode})
	}},
}

// counting counts the store calls the session and token services make on the paths
// benchmarked here; the other methods pass through uncounted.
type counting struct {
	usersessions.Provider
	calls atomic.Int64
}

func (c *counting) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	c.calls.Add(1)
	return c.Provider.Get(ctx, keys)
}

func (c *counting) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	c.calls.Add(1)
	return c.Provider.Touch(ctx, touches)
}

func (c *counting) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	c.calls.Add(1)
	return c.Provider.PutClientSessions(ctx, clients)
}

func (c *counting) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	c.calls.Add(1)
	return c.Provider.GetRecords(ctx, kind, keys)
}

// benchStack is a stack over each store, with a live session of confidential in acme.
func benchStack(b *testing.B, run func(b *testing.B, s *stack, g tokens)) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			store := &counting{Provider: st.start(b)}
			s := newStack(b, withStore(store))
			g := s.open(b, login{})
			// Warm up outside the timing: the realm's keys cached, the connection open.
			s.refresh(b, confidentialAuth, g.RefreshToken)
			s.introspect(b, g.AccessToken)
			store.calls.Store(0)
			b.ReportAllocs()
			run(b, s, g)
			b.ReportMetric(float64(store.calls.Load())/float64(b.N), "store-calls/op")
		})
	}
}

// BenchmarkRefreshHTTP: grant_type=refresh_token with client_secret_basic. The realm does
// not rotate refresh tokens (the default), so each refresh reads the session and touches
// its idle clocks; the clock moves a millisecond per refresh so that every touch writes.
func BenchmarkRefreshHTTP(b *testing.B) {
	benchStack(b, func(b *testing.B, s *stack, g tokens) {
		c := refreshCall(realmName, confidentialAuth, g.RefreshToken)
		for b.Loop() {
			s.clock.Advance(time.Millisecond)
			if r := s.do(b, c); r.status != http.StatusOK {
				b.Fatalf("refresh: %d %s", r.status, r.body)
			}
		}
	})
}

// BenchmarkIntrospectHTTP: RFC 7662 introspection of the live session's access token by
// its client (client_secret_basic): the signature is checked, then the session is read.
// "hit" finds the session in the runtime's cache, so no call reaches the store and the
// plugin boundary costs nothing; "miss" empties the cache before every call, so each
// introspection reads the session from the store once, across the boundary in the plugin
// runs. The boundary's cost per call is plugin minus in-process of "miss".
func BenchmarkIntrospectHTTP(b *testing.B) {
	active := []byte(`"active":true`)
	for _, miss := range []bool{false, true} {
		name := "hit"
		if miss {
			name = "miss"
		}
		b.Run(name, func(b *testing.B) {
			benchStack(b, func(b *testing.B, s *stack, g tokens) {
				c := form(introspectPath(realmName), confidentialAuth, "token", g.AccessToken)
				for b.Loop() {
					if miss {
						s.cache.Forget()
					}
					if r := s.do(b, c); r.status != http.StatusOK || !bytes.Contains(r.body, active) {
						b.Fatalf("introspect: %d %s", r.status, r.body)
					}
				}
			})
		})
	}
}

// BenchmarkLoginHTTP: one whole login per iteration, in-process over HTTP on the memory
// store. "code flow" is the browser's round (authorization request, the test front-end's
// read and accept over the front-end API, the return that sets the cookie and issues the
// code) and the client's code grant with PKCE and an ID token; "direct open" is the
// front-end API's POST /realms/{realm}/sessions, the one call it replaces. Each iteration
// is a new browser (no SSO).
func BenchmarkLoginHTTP(b *testing.B) {
	b.Run("code flow", func(b *testing.B) {
		s := newLoginStack(b)
		for b.Loop() {
			code := s.code(b, s.newBrowser())
			if r := s.do(b, codeCall(confidentialAuth, code)); r.status != http.StatusOK {
				b.Fatalf("code grant: %d %s", r.status, r.body)
			}
		}
	})
	b.Run("direct open", func(b *testing.B) {
		s := newStack(b)
		for b.Loop() {
			s.open(b, login{})
		}
	})
}
