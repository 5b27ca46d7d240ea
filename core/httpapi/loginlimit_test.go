package httpapi_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
	loginflow "github.com/sessiond/sessiond/core/login"
)

// The budget of logins an address may start at the authorization endpoint, as the
// endpoint applies it: each start writes a pending login to the store, which no
// authentication guards.

// start sends one authorization request from addr without following the answer, as a
// flooding script would, and returns the status and Retry-After.
func (s *loginStack) start(t *testing.T, addr string, kv ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.authURL(spa, spaCallback, kv...), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(testAddrHeader, addr)
	c := &http.Client{Transport: s.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type")
}

func (s *loginStack) pendingLogins(t *testing.T) int {
	t.Helper()
	recs, err := s.store.ListRecords(s.ctx, loginflow.RequestKind)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func TestLoginRequestLimit(t *testing.T) {
	t.Parallel()
	const limit, flood = 5, 200
	const attacker, other = "203.0.113.7", "198.51.100.9"
	cases := []struct {
		name     string
		limit    int
		written  int // pending logins the flood leaves
		refusals int // refusals handed to the guard
	}{
		{"limited", limit, limit, flood - limit},
		{"off", 0, flood, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newLoginStack(t, withGuard(authfail.Options{LoginLimit: tc.limit, LoginWindow: time.Minute}))
			for i := range flood {
				status, retry, ctype := s.start(t, attacker)
				switch {
				case i < tc.written && status != http.StatusFound:
					t.Fatalf("start %d: %d, want a redirect to the front-end", i, status)
				case i >= tc.written && (status != http.StatusTooManyRequests || retry != "12" || !strings.HasPrefix(ctype, "text/html")):
					t.Fatalf("start %d: %d, Retry-After %q, %s; want an HTML page, 429, Retry-After 12 (a minute / 5)", i, status, retry, ctype)
				}
			}
			if n := s.pendingLogins(t); n != tc.written {
				t.Fatalf("%d pending logins after a flood of %d from one address; want %d", n, flood, tc.written)
			}
			refusals := s.guard.all()
			if len(refusals) != tc.refusals {
				t.Fatalf("%d refusals handed to the guard, want %d", len(refusals), tc.refusals)
			}
			for _, r := range refusals {
				if r.Kind != authfail.KindLogin || r.Reason != authfail.ReasonThrottled || r.Addr != attacker ||
					r.ClientID != spa || r.Realm != realmName || r.Status != http.StatusTooManyRequests {
					t.Fatalf("refusal %+v", r)
				}
			}
			// The audit: the first refusal at once, the rest in one summary per window.
			s.guard.Flush(true)
			lines := s.guard.lines.all()
			counted := 0
			for _, l := range lines {
				counted += max(l.Count, 1)
			}
			if counted != tc.refusals || len(lines) > 2 {
				t.Errorf("%d audit lines counting %d refusals; want at most 2 counting %d", len(lines), counted, tc.refusals)
			}

			// Another address is unaffected.
			if status, _, _ := s.start(t, other); status != http.StatusFound {
				t.Fatalf("another address: %d, want a redirect to the front-end", status)
			}
			// prompt=none writes nothing and is not counted: the attacker's address still
			// gets its login_required answer.
			if status, _, _ := s.start(t, attacker, "prompt", "none"); status != http.StatusFound {
				t.Fatalf("prompt=none from the limited address: %d, want the client's login_required redirect", status)
			}
			if n := s.pendingLogins(t); n != tc.written+1 {
				t.Fatalf("%d pending logins, want %d", n, tc.written+1)
			}
			// A start's worth later, the address may start one login again.
			s.clock.Advance(12 * time.Second)
			if status, _, _ := s.start(t, attacker); status != http.StatusFound {
				t.Fatalf("after Retry-After: %d, want a redirect to the front-end", status)
			}
		})
	}
}

// A person's browser, refused, sees a page that says when to retry.
func TestLoginRequestLimit_pageSaysWhenToRetry(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t, withGuard(authfail.Options{LoginLimit: 1, LoginWindow: time.Minute}))
	s.start(t, "127.0.0.1")
	resp, err := s.client.Get(s.authURL(spa, spaCallback))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := new(strings.Builder)
	if _, err := io.Copy(body, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != strconv.Itoa(60) ||
		!strings.Contains(body.String(), "too many logins started from this address; retry in 60 s") {
		t.Fatalf("%d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
