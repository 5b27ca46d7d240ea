package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
)

// The failed-authentication guard as the HTTP API uses it: which refusals reach it, with
// what, and how a caller that keeps failing is answered.

// from makes c come from addr.
func from(c call, addr string) call {
	h := c.header.Clone()
	h.Set(testAddrHeader, addr)
	c.header = h
	return c
}

// clientEndpoints are the endpoints that authenticate a client, each with what it needs
// beside the client's credentials.
var clientEndpoints = []struct {
	name   string
	path   string
	params []string
}{
	{"token", tokenPath(realmName), []string{"grant_type", "refresh_token", "refresh_token", "x"}},
	{"introspection", introspectPath(realmName), []string{"token", "x"}},
	{"revocation", revokePath(realmName), []string{"token", "x"}},
	{"logout", logoutPath(realmName), []string{"refresh_token", "x"}},
}

// Every failed client authentication, on every endpoint that authenticates clients, is
// handed to the guard with the realm, the client id as presented, the caller's address and
// why; never the secret.
func TestFailedClientAuthenticationIsAudited(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const secret = "guess-1234"
	cases := []struct {
		name   string
		auth   auth
		client string
		reason string
		status int
	}{
		{"wrong secret (basic)", basic(confidential, secret), confidential, authfail.ReasonInvalidSecret, http.StatusUnauthorized},
		{"wrong secret (post)", post(confidential, secret), confidential, authfail.ReasonInvalidSecret, http.StatusUnauthorized},
		{"no secret", public(confidential), confidential, authfail.ReasonInvalidSecret, http.StatusUnauthorized},
		{"unknown client", basic("no-such-client", secret), "no-such-client", authfail.ReasonUnknownClient, http.StatusUnauthorized},
		{"client id with odd characters", basic("a b/c%d", secret), "a b/c%d", authfail.ReasonUnknownClient, http.StatusUnauthorized},
		{"no client id", noAuth, "", authfail.ReasonMissing, http.StatusUnauthorized},
		{"disabled client", basic(disabled, otherSecret), disabled, authfail.ReasonDisabled, http.StatusBadRequest},
		{"malformed basic", func(h http.Header, _ url.Values) {
			(&http.Request{Header: h}).SetBasicAuth("%zz", secret)
		}, "%zz", authfail.ReasonMalformed, http.StatusUnauthorized},
	}
	for _, ep := range clientEndpoints {
		for _, tc := range cases {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				n := len(s.guard.all())
				r := s.do(t, from(form(ep.path, tc.auth, ep.params...), "203.0.113.7"))
				if r.status != tc.status {
					t.Fatalf("%s = %d %s, want %d", ep.path, r.status, r.body, tc.status)
				}
				all := s.guard.all()
				if len(all) != n+1 {
					t.Fatalf("%d refusals handed to the guard, want 1", len(all)-n)
				}
				got := all[n]
				if got.Kind != authfail.KindClient || got.Realm != realmName || got.ClientID != tc.client || got.Addr != "203.0.113.7" ||
					got.Reason != tc.reason || got.Status != tc.status || got.Detail == "" {
					t.Errorf("refusal %+v, want client %q from 203.0.113.7, reason %s, status %d", got, tc.client, tc.reason, tc.status)
				}
				if strings.Contains(fmt.Sprintf("%+v", got), secret) {
					t.Errorf("refusal %+v carries the secret", got)
				}
			})
		}
	}
	t.Run("a client that authenticates is not audited", func(t *testing.T) {
		n := len(s.guard.all())
		s.introspect(t, "not-a-token")
		if got := len(s.guard.all()); got != n {
			t.Errorf("%d refusals for an authenticated client", got-n)
		}
	})
}

// A failed front-end bearer authentication and a failed administrator's one outside the
// admin API are audited with their kind.
func TestFailedBearerAuthenticationIsAudited(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	open := jsonCall(sessionsPath(realmName), "", login{ClientID: confidential, UserID: user})
	cases := []struct {
		name   string
		c      call
		kind   authfail.Kind
		reason string
	}{
		{"front-end, none", open, authfail.KindFrontend, authfail.ReasonMissing},
		{"front-end, wrong", jsonCall(sessionsPath(realmName), "nope", login{ClientID: confidential, UserID: user}), authfail.KindFrontend, authfail.ReasonInvalid},
		{"front-end, admin's", jsonCall(sessionsPath(realmName), adminToken, login{ClientID: confidential, UserID: user}), authfail.KindFrontend, authfail.ReasonInvalid},
		{"attach, wrong", jsonCall(sessionsPath(realmName)+"/abc/clients", "nope", map[string]string{"client_id": spa}), authfail.KindFrontend, authfail.ReasonInvalid},
		{"explain, front-end's", call{method: http.MethodGet, path: sessionsPath(realmName) + "/abc/explain",
			header: http.Header{"Authorization": {"Bearer " + frontendToken}}}, authfail.KindAdmin, authfail.ReasonInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(s.guard.all())
			s.do(t, from(tc.c, "203.0.113.9")).refused(t, http.StatusUnauthorized, "unauthorized", "")
			got := s.guard.last(t)
			if len(s.guard.all()) != n+1 || got.Kind != tc.kind || got.Reason != tc.reason || got.Addr != "203.0.113.9" || got.Realm != realmName || got.Status != http.StatusUnauthorized {
				t.Errorf("refusal %+v, want kind %s, reason %s", got, tc.kind, tc.reason)
			}
			for _, secret := range []string{adminToken, frontendToken, "nope"} {
				if strings.Contains(fmt.Sprintf("%+v", got), secret) {
					t.Errorf("refusal %+v carries a credential", got)
				}
			}
		})
	}
}

// An unauthenticated flood writes one line, however many refusals it is made of; the rest
// are counted into a summary.
func TestUnauthenticatedFloodWritesBoundedLines(t *testing.T) {
	t.Parallel()
	s := newStack(t) // nothing slowed: every refusal reaches the audit
	const flood = 300
	for i := range flood {
		var c call
		switch i % 3 {
		case 0:
			c = form(tokenPath(realmName), basic(confidential, "guess"), "grant_type", "refresh_token", "refresh_token", "x")
		case 1:
			c = jsonCall(sessionsPath(realmName), "guess", login{ClientID: confidential, UserID: user})
		default:
			c = adminCall(http.MethodGet, realmName, "/sessions", "guess", "")
		}
		if r := s.do(t, from(c, "203.0.113.7")); r.status != http.StatusUnauthorized {
			t.Fatalf("refusal %d = %d %s", i, r.status, r.body)
		}
	}
	if lines := s.guard.lines.all(); len(lines) != 3 {
		t.Errorf("%d lines for a flood of %d refusals of 3 kinds, want one a kind until the window closes", len(lines), flood)
	}
	s.clock.Advance(authfail.DefaultAuditWindow)
	s.guard.Flush(false)
	lines := s.guard.lines.all()
	counted := 0
	for _, l := range lines {
		counted += max(l.Count, 1)
	}
	if len(lines) != 6 || counted != flood {
		t.Errorf("%d lines accounting for %d refusals after the window, want 6 for %d", len(lines), counted, flood)
	}
}

// throttledAnswer checks a 429: Retry-After in whole seconds, the error code, no 5xx.
func throttledAnswer(t *testing.T, r reply, code string, retryAfter time.Duration) {
	t.Helper()
	r.refused(t, http.StatusTooManyRequests, code, "too many failed authentication attempts")
	got, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || got < 1 || time.Duration(got)*time.Second > retryAfter+time.Second {
		t.Errorf("Retry-After %q, want whole seconds, at least 1 and at most %v", r.header.Get("Retry-After"), retryAfter)
	}
}

// Wrong secrets from one address are answered 401 up to the limit, then 429 with
// Retry-After before the secret is compared, the right one included (the address is
// throttled); a window later the client is accepted again. Other addresses are not held
// up. Nothing answers 5xx.
func TestWrongSecretsAreThrottledPerAddress(t *testing.T) {
	t.Parallel()
	const limit = 5
	window := time.Minute
	for _, ep := range clientEndpoints {
		t.Run(ep.name, func(t *testing.T) {
			s := newStack(t, withGuard(authfail.Options{Limit: limit, Window: window}))
			guess := from(form(ep.path, basic(confidential, "guess"), ep.params...), "203.0.113.7")
			right := from(form(introspectPath(realmName), confidentialAuth, "token", "x"), "203.0.113.7")
			for i := range limit {
				s.do(t, guess).refused(t, http.StatusUnauthorized, "invalid_client", "")
				if i == 0 {
					s.do(t, right).decode(t, http.StatusOK, &introspection{}) // success costs nothing
				}
			}
			for range 50 {
				throttledAnswer(t, s.do(t, guess), "slow_down", window/limit)
			}
			throttledAnswer(t, s.do(t, right), "slow_down", window/limit)
			if got := s.guard.last(t); got.Reason != authfail.ReasonThrottled || got.Status != http.StatusTooManyRequests {
				t.Errorf("a throttled attempt was handed to the guard as %+v", got)
			}
			s.do(t, from(form(introspectPath(realmName), confidentialAuth, "token", "x"), "203.0.113.8")).decode(t, http.StatusOK, &introspection{})
			s.clock.Advance(window)
			s.do(t, right).decode(t, http.StatusOK, &introspection{})
		})
	}
}

// The front-end's and the administrator's bearer credentials are throttled the same way,
// answered in their APIs' own error shape.
func TestWrongBearerCredentialsAreThrottled(t *testing.T) {
	t.Parallel()
	const limit = 3
	window := 30 * time.Second
	for _, tc := range []struct {
		name  string
		wrong call
		right call
	}{
		{"front-end", jsonCall(sessionsPath(realmName), "guess", login{ClientID: confidential, UserID: user}),
			jsonCall(sessionsPath(realmName), frontendToken, login{ClientID: confidential, UserID: user})},
		{"admin API", adminCall(http.MethodGet, realmName, "/sessions", "guess", ""), adminCall(http.MethodGet, realmName, "/sessions", adminToken, "")},
		{"admin API, unknown route", adminCall(http.MethodGet, realmName, "/nope", "guess", ""), adminCall(http.MethodGet, realmName, "/sessions", adminToken, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, withGuard(authfail.Options{Limit: limit, Window: window}))
			for range limit {
				s.do(t, from(tc.wrong, "203.0.113.7")).refused(t, http.StatusUnauthorized, "unauthorized", "")
			}
			throttledAnswer(t, s.do(t, from(tc.wrong, "203.0.113.7")), "too_many_requests", window/limit)
			throttledAnswer(t, s.do(t, from(tc.right, "203.0.113.7")), "too_many_requests", window/limit)
			if r := s.do(t, from(tc.right, "203.0.113.8")); r.status >= 300 {
				t.Errorf("another address = %d %s", r.status, r.body)
			}
			s.clock.Advance(window)
			if r := s.do(t, from(tc.right, "203.0.113.7")); r.status >= 300 {
				t.Errorf("after the window = %d %s", r.status, r.body)
			}
		})
	}
}

// A guessing attack on one client from many addresses is throttled by the client's limit;
// the client's own server, which authenticated before, is not locked out by it.
func TestClientLimitThrottlesSpreadGuessingButNotTheClientsServer(t *testing.T) {
	t.Parallel()
	const clientLimit = 10
	s := newStack(t, withGuard(authfail.Options{Limit: 5, ClientLimit: clientLimit, Window: time.Minute}))
	right := form(introspectPath(realmName), confidentialAuth, "token", "x")
	s.do(t, from(right, "198.51.100.1")).decode(t, http.StatusOK, &introspection{})
	for i := range clientLimit {
		s.do(t, from(form(introspectPath(realmName), basic(confidential, "guess"), "token", "x"), fmt.Sprint("203.0.113.", i))).
			refused(t, http.StatusUnauthorized, "invalid_client", "")
	}
	r := s.do(t, from(form(introspectPath(realmName), basic(confidential, "guess"), "token", "x"), "203.0.113.100"))
	throttledAnswer(t, r, "slow_down", time.Minute/clientLimit)
	if !strings.Contains(string(r.body), "for this client") {
		t.Errorf("429 %s does not say the client's limit holds it", r.body)
	}
	s.do(t, from(right, "198.51.100.1")).decode(t, http.StatusOK, &introspection{})
	// Another client from a new address is not held up.
	s.do(t, from(form(introspectPath(realmName), basic(adminApp, otherSecret), "token", "x"), "203.0.113.100")).decode(t, http.StatusOK, &introspection{})
}

// Both limits off: wrong secrets are answered 401 however many.
func TestThrottlingOffNeverAnswers429(t *testing.T) {
	t.Parallel()
	s := newStack(t, withGuard(authfail.Options{Limit: 0, ClientLimit: 0}))
	for i := range 200 {
		if r := s.do(t, form(introspectPath(realmName), basic(confidential, "guess"), "token", "x")); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d = %d %s, want 401 with the limits off", i, r.status, r.body)
		}
	}
}
