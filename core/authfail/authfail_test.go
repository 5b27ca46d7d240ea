package authfail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/internal/testclock"
)

// recorder is a Sink that keeps every record.
type recorder struct {
	mu   sync.Mutex
	recs []authfail.Record
}

func (r *recorder) AuthRefused(rec authfail.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

func (r *recorder) all() []authfail.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authfail.Record(nil), r.recs...)
}

// total is how many refusals the records account for: one for each written as it came,
// Count for each summary.
func total(recs []authfail.Record) int {
	n := 0
	for _, r := range recs {
		if r.Count == 0 {
			n++
		}
		n += r.Count
	}
	return n
}

func newGuard(o authfail.Options) (*authfail.Guard, *recorder, *testclock.Clock) {
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	rec := &recorder{}
	o.Now = clock.Now
	return authfail.New(rec, o), rec, clock
}

func wrongSecret(addr, client string) authfail.Refusal {
	return authfail.Refusal{
		Attempt: authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: client, Addr: addr},
		Reason:  authfail.ReasonInvalidSecret, Status: 401,
	}
}

// A flood of 10,000 refusals over a minute, from one address for one client, writes its
// first refusal at once and then one summary per audit window; the counts add up.
func TestFloodOfRefusalsWritesBoundedLinesWhoseCountsAddUp(t *testing.T) {
	g, rec, clock := newGuard(authfail.Options{})
	const flood = 10000
	step := time.Minute / flood // 10,000 refusals over a minute: 167 a second
	for i := range flood {
		g.Refused(wrongSecret("203.0.113.7", "app"))
		clock.Advance(step)
		if i%100 == 0 {
			g.Flush(false) // Run's ticker, ten times a window
		}
	}
	g.Flush(true)
	recs := rec.all()
	// A minute is six audit windows: a first line and about one summary a window.
	if len(recs) > 8 {
		t.Errorf("%d lines for a flood of %d refusals over a minute; want at most 8", len(recs), flood)
	}
	if got := total(recs); got != flood {
		t.Errorf("the lines account for %d refusals, want %d: %+v", got, flood, recs)
	}
	if recs[0].Count != 0 || recs[0].ClientID != "app" || recs[0].Addr != "203.0.113.7" || recs[0].Reason != authfail.ReasonInvalidSecret {
		t.Errorf("first line %+v, want the refusal itself", recs[0])
	}
	for _, r := range recs[1:] {
		if r.Count == 0 || r.Summary() == "" || !strings.Contains(r.Summary(), "more refusals of the same kind") {
			t.Errorf("line %+v is not a summary", r)
		}
	}
}

// Refusals that differ in kind, client id, address or reason are separate keys, each with
// its own first line and summary.
func TestDistinctKeysAreReportedSeparately(t *testing.T) {
	g, rec, clock := newGuard(authfail.Options{})
	refusals := []authfail.Refusal{
		wrongSecret("203.0.113.7", "app"),
		wrongSecret("203.0.113.8", "app"),
		wrongSecret("203.0.113.7", "other"),
		{Attempt: authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "203.0.113.7"}, Reason: authfail.ReasonThrottled},
		{Attempt: authfail.Attempt{Kind: authfail.KindFrontend, Realm: "acme", Addr: "203.0.113.7"}, Reason: authfail.ReasonInvalid},
		{Attempt: authfail.Attempt{Kind: authfail.KindAdmin, Realm: "acme", Addr: "203.0.113.7"}, Reason: authfail.ReasonInvalid, Actor: "anonymous"},
		{Attempt: authfail.Attempt{Kind: authfail.KindAdmin, Realm: "acme", Addr: "203.0.113.7"}, Reason: authfail.ReasonForbidden, Actor: "viewer"},
	}
	const each = 5
	for range each {
		for _, r := range refusals {
			g.Refused(r)
		}
	}
	if got := len(rec.all()); got != len(refusals) {
		t.Fatalf("%d lines written at once, want one for each of the %d keys", got, len(refusals))
	}
	clock.Advance(authfail.DefaultAuditWindow)
	g.Flush(false)
	recs := rec.all()
	if len(recs) != 2*len(refusals) {
		t.Fatalf("%d lines after the window, want a first line and a summary for each of %d keys", len(recs), len(refusals))
	}
	for i, r := range recs[len(refusals):] {
		if r.Count != each-1 {
			t.Errorf("summary %d counts %d, want %d", i, r.Count, each-1)
		}
	}
	// A key quiet for a whole window is forgotten: its next refusal is written at once.
	clock.Advance(authfail.DefaultAuditWindow)
	g.Flush(false)
	if auditKeys, _, _, _ := g.Tracked(); auditKeys != 0 {
		t.Errorf("%d keys held after a quiet window, want 0", auditKeys)
	}
	g.Refused(refusals[0])
	if recs := rec.all(); len(recs) != 2*len(refusals)+1 || recs[len(recs)-1].Count != 0 {
		t.Errorf("a refusal after a quiet window was not written at once")
	}
}

// An attacker rotating addresses cannot grow memory nor the log without bound: past the
// key limit, refusals are counted in one overflow summary per kind and window; the
// limiter forgets the least recently failing addresses.
func TestRotatingAddressesKeepMemoryAndLinesBounded(t *testing.T) {
	const maxKeys, maxAddrs, flood = 100, 500, 20000
	g, rec, clock := newGuard(authfail.Options{Limit: 5, ClientLimit: 50, MaxAuditKeys: maxKeys, MaxAddresses: maxAddrs})
	for i := range flood {
		g.Refused(wrongSecret(fmt.Sprintf("2001:db8::%x", i), "app"))
		if i%1000 == 0 {
			clock.Advance(authfail.DefaultAuditWindow / 10)
			g.Flush(false)
		}
	}
	auditKeys, addrs, clients, good := g.Tracked()
	if auditKeys > maxKeys || addrs > maxAddrs || clients > 1 || good != 0 {
		t.Errorf("held %d audit keys (max %d), %d addresses (max %d), %d clients, %d known good", auditKeys, maxKeys, addrs, maxAddrs, clients, good)
	}
	g.Flush(true)
	recs := rec.all()
	if got := total(recs); got != flood {
		t.Errorf("the lines account for %d refusals, want %d", got, flood)
	}
	// 20,000 keys over two windows: the first lines of at most maxKeys keys per window,
	// and an overflow summary per window.
	if len(recs) > 2*maxKeys+3 {
		t.Errorf("%d lines for %d addresses; want at most %d", len(recs), flood, 2*maxKeys+3)
	}
	overflow := 0
	for _, r := range recs {
		if r.Overflow {
			overflow += r.Count
			if r.Kind != authfail.KindClient || !strings.Contains(r.Summary(), "not tracked one by one") {
				t.Errorf("overflow summary %+v", r)
			}
		}
	}
	if overflow == 0 {
		t.Error("no overflow summary although the keys were full")
	}
	// The client's own limit still holds against the spread attack.
	if err := g.Check(authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "2001:db8::ffff:1"}); err == nil {
		t.Error("a guessing attack from 20,000 addresses left the client's limit open to a new address")
	}
}

// Run writes the summaries still open when it stops, and the refusals that come after one
// by one.
func TestRunFlushesOnStop(t *testing.T) {
	rec := &recorder{}
	g := authfail.New(rec, authfail.Options{AuditWindow: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	for range 3 {
		g.Refused(wrongSecret("203.0.113.7", "app"))
	}
	cancel()
	<-done
	recs := rec.all()
	if len(recs) != 2 || recs[1].Count != 2 {
		t.Fatalf("records at stop %+v, want the first refusal and a summary of 2", recs)
	}
	g.Refused(wrongSecret("203.0.113.7", "app"))
	if len(rec.all()) != 3 {
		t.Error("a refusal after Run ended was not written")
	}
}

// What a caller wrote as its client id is bounded and reduced to safe characters before it
// is written.
func TestClientIDIsSanitised(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "my-app_1.0", "my-app_1.0"},
		{"url", "https://app.example.com/saml", "https://app.example.com/saml"},
		{"newline and quote", "app\n{\"x\":1}", "app???x?:1?"},
		{"nul and invalid UTF-8", "a\x00b\xffc", "a?b?c"},
		{"long", strings.Repeat("a", 1000), strings.Repeat("a", 128) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, rec, _ := newGuard(authfail.Options{})
			g.Refused(wrongSecret("203.0.113.7", tc.in))
			if got := rec.all()[0].ClientID; got != tc.want {
				t.Errorf("client id %q written as %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func throttled(t *testing.T, err error) *authfail.ThrottledError {
	t.Helper()
	var th *authfail.ThrottledError
	if !errors.As(err, &th) {
		t.Fatalf("Check = %v, want a *ThrottledError", err)
	}
	return th
}

// An address that fails Limit times is throttled, with the wait until one failure's worth
// has refilled; after the window it is accepted again; success neither charges nor clears.
func TestAddressIsThrottledAfterLimitFailuresAndFreedAfterTheWindow(t *testing.T) {
	const limit = 5
	window := time.Minute
	for _, kind := range authfail.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			g, _, clock := newGuard(authfail.Options{Limit: limit, Window: window})
			a := authfail.Attempt{Kind: kind, Realm: "acme", Addr: "203.0.113.7"}
			for i := range limit {
				if err := g.Check(a); err != nil {
					t.Fatalf("attempt %d refused: %v", i+1, err)
				}
				g.Succeeded(a) // successes in between cost nothing
				g.Refused(authfail.Refusal{Attempt: a, Reason: authfail.ReasonInvalid})
			}
			th := throttled(t, g.Check(a))
			if th.ByClient || th.RetryAfterSeconds() != int(window/limit/time.Second) {
				t.Errorf("throttled %+v, want by address, retry after %v", th, window/limit)
			}
			// Another address is not held up.
			if err := g.Check(authfail.Attempt{Kind: kind, Realm: "acme", Addr: "203.0.113.8"}); err != nil {
				t.Errorf("another address refused: %v", err)
			}
			// A throttled attempt is audited but charges nothing.
			g.Refused(authfail.Refusal{Attempt: a, Reason: authfail.ReasonThrottled})
			clock.Advance(window / limit)
			if err := g.Check(a); err != nil {
				t.Errorf("one failure's worth after the throttle, still refused: %v", err)
			}
			g.Refused(authfail.Refusal{Attempt: a, Reason: authfail.ReasonInvalid})
			throttled(t, g.Check(a))
			clock.Advance(window)
			for i := range limit {
				if err := g.Check(a); err != nil {
					t.Fatalf("after the window, attempt %d refused: %v", i+1, err)
				}
				g.Refused(authfail.Refusal{Attempt: a, Reason: authfail.ReasonInvalid})
			}
		})
	}
}

// The client's limit holds every address that has not authenticated the client, and lets
// through the ones that have; the address limit holds even those.
func TestClientLimitSparesKnownGoodAddresses(t *testing.T) {
	const clientLimit = 10
	g, _, clock := newGuard(authfail.Options{Limit: 3, ClientLimit: clientLimit, Window: time.Minute})
	server := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "198.51.100.1"}
	g.Succeeded(server)
	// A guessing attack from many addresses, each under its own limit.
	for i := range clientLimit {
		a := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: fmt.Sprintf("203.0.113.%d", i)}
		if err := g.Check(a); err != nil {
			t.Fatalf("guess %d refused before the client's limit: %v", i, err)
		}
		g.Refused(wrongSecret(a.Addr, "app"))
	}
	newcomer := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "203.0.113.200"}
	if th := throttled(t, g.Check(newcomer)); !th.ByClient {
		t.Errorf("throttled %+v, want by the client's limit", th)
	}
	if err := g.Check(server); err != nil {
		t.Errorf("the client's own server, which authenticated it before the attack, is refused: %v", err)
	}
	other := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "other-app", Addr: "203.0.113.200"}
	if err := g.Check(other); err != nil {
		t.Errorf("another client is refused: %v", err)
	}
	// Unknown client ids charge the address only (no secret to guess).
	for range 3 {
		g.Refused(authfail.Refusal{Attempt: authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "nope", Addr: server.Addr}, Reason: authfail.ReasonUnknownClient})
	}
	if th := throttled(t, g.Check(server)); th.ByClient {
		t.Errorf("throttled %+v, want by the address", th)
	}
	// A known good address is exempt for an hour after its last success, no longer.
	clock.Advance(time.Hour + time.Second)
	for i := range clientLimit {
		g.Refused(wrongSecret(fmt.Sprintf("192.0.2.%d", i), "app"))
	}
	if th := throttled(t, g.Check(server)); !th.ByClient {
		t.Errorf("an hour after its last success the server is throttled %+v, want by the client's limit", th)
	}
}

// Both limits 0: nothing is ever throttled, and refusals are still audited.
func TestOffSwitchNeverThrottles(t *testing.T) {
	g, rec, _ := newGuard(authfail.Options{Limit: 0, ClientLimit: 0})
	a := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "203.0.113.7"}
	for i := range 10000 {
		if err := g.Check(a); err != nil {
			t.Fatalf("attempt %d throttled with the limits off: %v", i, err)
		}
		g.Refused(wrongSecret(a.Addr, a.ClientID))
	}
	if len(rec.all()) != 1 {
		t.Errorf("%d lines, want the first refusal", len(rec.all()))
	}
	if _, addrs, clients, _ := g.Tracked(); addrs != 0 || clients != 0 {
		t.Errorf("the limits are off, yet %d addresses and %d clients are tracked", addrs, clients)
	}
}

// Check, Refused and Succeeded from many goroutines at once (for -race).
func TestGuardIsSafeForConcurrentUse(t *testing.T) {
	rec := &recorder{}
	g := authfail.New(rec, authfail.Options{Limit: 5, ClientLimit: 20, AuditWindow: 5 * time.Millisecond, MaxAuditKeys: 8, MaxAddresses: 16})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	var wg sync.WaitGroup
	var refused atomic.Int64
	const workers, each = 8, 500
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a := authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: fmt.Sprintf("10.0.%d.%d", w, i%40)}
				if g.Check(a) != nil {
					g.Refused(authfail.Refusal{Attempt: a, Reason: authfail.ReasonThrottled})
					refused.Add(1)
					continue
				}
				if i%7 == 0 {
					g.Succeeded(a)
					continue
				}
				g.Refused(wrongSecret(a.Addr, a.ClientID))
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	cancel()
	<-done
	if got, want := total(rec.all()), int(refused.Load()); got != want {
		t.Errorf("the lines account for %d refusals, want %d", got, want)
	}
}
