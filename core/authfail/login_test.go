package authfail_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
)

// step is one call of a login-start scenario: after advancing the clock by after, a start
// from addr is admitted, or refused with a Retry-After of retry seconds.
type step struct {
	after time.Duration
	addr  string
	n     int // this many starts at once, all with the same outcome; 0 means 1
	retry int // 0: admitted
}

func TestStartLoginBudget(t *testing.T) {
	const a, b = "203.0.113.7", "198.51.100.9"
	cases := []struct {
		name  string
		o     authfail.Options
		steps []step
	}{
		{"the limit is admitted, the next start refused until a start's worth refills",
			authfail.Options{LoginLimit: 3, LoginWindow: time.Minute},
			[]step{{addr: a, n: 3}, {addr: a, retry: 20}, {after: 19 * time.Second, addr: a, retry: 1}, {after: time.Second, addr: a}, {addr: a, retry: 20}}},
		{"a refused start takes nothing: refusals do not lengthen the wait",
			authfail.Options{LoginLimit: 2, LoginWindow: time.Minute},
			[]step{{addr: a, n: 2}, {addr: a, n: 50, retry: 30}, {after: 30 * time.Second, addr: a}}},
		{"another address has a budget of its own",
			authfail.Options{LoginLimit: 2, LoginWindow: time.Minute},
			[]step{{addr: a, n: 2}, {addr: a, retry: 30}, {addr: b, n: 2}, {addr: b, retry: 30}}},
		{"a quiet address refills to the limit and no more",
			authfail.Options{LoginLimit: 2, LoginWindow: time.Minute},
			[]step{{addr: a, n: 2}, {after: time.Hour, addr: a, n: 2}, {addr: a, retry: 30}}},
		{"an IPv6 address counts by its /64",
			authfail.Options{LoginLimit: 2, LoginWindow: time.Minute},
			[]step{{addr: "2001:db8:1:2::1"}, {addr: "2001:db8:1:2:ffff::9"}, {addr: "2001:db8:1:2::77", retry: 30}, {addr: "2001:db8:1:3::1"}}},
		{"an IPv4-mapped address counts by itself",
			authfail.Options{LoginLimit: 1, LoginWindow: time.Minute},
			[]step{{addr: "::ffff:203.0.113.7"}, {addr: "::ffff:203.0.113.8"}, {addr: "::ffff:203.0.113.7", retry: 60}}},
		{"off: every start admitted",
			authfail.Options{LoginLimit: 0},
			[]step{{addr: a, n: 10000}}},
		{"the window defaults to a minute",
			authfail.Options{LoginLimit: 6},
			[]step{{addr: a, n: 6}, {addr: a, retry: 10}}},
		{"failed authentication does not spend the login budget, nor the reverse",
			authfail.Options{LoginLimit: 1, Limit: 1, LoginWindow: time.Minute},
			[]step{{addr: a}, {addr: a, retry: 60}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, _, clock := newGuard(c.o)
			if c.o.Limit > 0 {
				g.Refused(wrongSecret(a, "app")) // the address's failure budget is now empty
				if err := g.Check(authfail.Attempt{Kind: authfail.KindClient, Addr: a}); err == nil {
					t.Fatal("the failure budget is not spent")
				}
			}
			for i, s := range c.steps {
				clock.Advance(s.after)
				for range max(s.n, 1) {
					err := g.StartLogin(authfail.Attempt{Kind: authfail.KindLogin, Realm: "acme", ClientID: "app", Addr: s.addr})
					var te *authfail.ThrottledError
					switch {
					case s.retry == 0 && err != nil:
						t.Fatalf("step %d (%s): refused: %v", i, s.addr, err)
					case s.retry != 0 && !errors.As(err, &te):
						t.Fatalf("step %d (%s): %v, want a *ThrottledError", i, s.addr, err)
					case s.retry != 0 && (te.RetryAfterSeconds() != s.retry || te.Kind != authfail.KindLogin):
						t.Fatalf("step %d (%s): Retry-After %d s kind %s, want %d s kind login", i, s.addr, te.RetryAfterSeconds(), te.Kind, s.retry)
					}
				}
			}
		})
	}
}

// A flood of throttled starts from one address is audited in bounded lines that count
// every refusal, with the kind login.
func TestThrottledLoginsAreAuditedInAggregate(t *testing.T) {
	g, rec, clock := newGuard(authfail.Options{LoginLimit: 5, LoginWindow: time.Minute})
	const flood = 5000
	refused := 0
	for i := range flood {
		a := authfail.Attempt{Kind: authfail.KindLogin, Realm: "acme", ClientID: "app", Addr: "203.0.113.7"}
		if err := g.StartLogin(a); err != nil {
			refused++
			g.Refused(authfail.Refusal{Attempt: a, Reason: authfail.ReasonThrottled, Status: 429, Detail: err.Error()})
		}
		clock.Advance(time.Millisecond)
		if i%100 == 0 {
			g.Flush(false)
		}
	}
	g.Flush(true)
	recs := rec.all()
	if refused < flood-10 {
		t.Fatalf("%d of %d starts refused over 5 s with a limit of 5 a minute", refused, flood)
	}
	if len(recs) > 3 || total(recs) != refused {
		t.Errorf("%d lines accounting for %d refusals; want at most 3 accounting for %d", len(recs), total(recs), refused)
	}
	for _, r := range recs {
		if r.Kind != authfail.KindLogin || r.Reason != authfail.ReasonThrottled {
			t.Errorf("record %+v: want kind login, reason throttled", r)
		}
	}
}
