package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/tcpproxy"
	"github.com/sessiond/sessiond/internal/testpg"
)

// These tests run sessiond on throwaway PostgreSQL clusters of their own (a primary and a
// streaming standby, made with pg_createcluster) and do to them what a failover does.

// haSetup is a primary, its standby, and sessiond on the primary through a proxy the test
// can repoint, as an operator's TCP proxy or VIP is.
type haSetup struct {
	primary, standby *testpg.Cluster
	proxy            *tcpproxy.Proxy
	d                *daemon
	c                *apiClient
}

func newHASetup(t *testing.T, extra ...string) *haSetup {
	t.Helper()
	sessiondBinary(t) // built before the clusters, which the clock of no test runs on
	h := &haSetup{primary: testpg.NewCluster(t)}
	h.standby = h.primary.NewStandby(t)
	p, err := tcpproxy.New(h.primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	h.proxy = p
	through, err := p.URL(h.primary.URL())
	if err != nil {
		t.Fatal(err)
	}
	args := append(persistArgs(writeRealm(t)),
		"--spi-user-sessions-provider=postgres",
		"--spi-user-sessions-postgres-url="+through,
		"--log-level=info")
	h.d = startDaemonIn(t, t.TempDir(), append(args, extra...)...)
	h.c = newAPIClient(h.d.base, 10*time.Second)
	t.Cleanup(h.c.close)
	return h
}

// TestStandbyRefusesWritesWith503 points sessiond at a hot standby, as a proxy left on the
// old side of a failover does: every write is refused by PostgreSQL ("cannot set
// transaction read-write mode during recovery"), and every answer must be 503 with
// Retry-After, never 500; once the proxy leads to the primary again sessiond serves, and
// the session opened before is refreshed with the token it last got.
func TestStandbyRefusesWritesWith503(t *testing.T) {
	const serveWithin = 5 * time.Second
	h := newHASetup(t)
	s := mustOpen(t, h.c, "before", false)
	r, err := h.c.refresh(s.RefreshToken)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("refresh on the primary = %s %v, want 200", r.summary(), err)
	}
	token := r.RefreshToken
	h.primary.WaitReplayed(t, h.standby)

	h.proxy.Repoint(h.standby.Addr())
	repointed := time.Now()
	var first503 time.Duration
	for i := range 20 {
		for _, call := range []struct {
			name string
			do   func() (*apiResult, error)
		}{
			{"open", func() (*apiResult, error) { return h.c.open("during", false) }},
			{"refresh", func() (*apiResult, error) { return h.c.refresh(token) }},
		} {
			r, err := call.do()
			if err != nil {
				t.Fatalf("%s %d on the standby: %v", call.name, i, err)
			}
			if r.status != http.StatusServiceUnavailable || r.retryAfter == "" {
				t.Fatalf("%s %d on the standby = %s (Retry-After %q), want 503 with Retry-After", call.name, i, r.summary(), r.retryAfter)
			}
			if first503 == 0 {
				first503 = time.Since(repointed)
			}
		}
	}
	if code, body, err := h.c.readiness(); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot write") {
		t.Errorf("readiness on the standby = %d %s %v, want 503 saying the store cannot write", code, body, err)
	}
	if !strings.Contains(h.d.log(), "during recovery") {
		t.Errorf("the log does not say why the writes were refused (PostgreSQL's \"during recovery\")")
	}

	h.proxy.Repoint(h.primary.Addr())
	back := time.Now()
	for {
		r, err := h.c.refresh(token)
		if err == nil && r.status == http.StatusOK {
			break
		}
		if err == nil && r.status != http.StatusServiceUnavailable {
			t.Fatalf("refresh after the primary is back = %s, want 200 (or 503 until it serves)", r.summary())
		}
		if time.Since(back) > serveWithin {
			t.Fatalf("sessiond does not serve %v after the proxy leads to the primary again: %s %v", serveWithin, r.summary(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	servedAfter := time.Since(back)
	deadline := time.Now().Add(3 * time.Second) // the readiness result lives a second
	for {
		code, body, err := h.c.readiness()
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness on the primary again = %d %s %v, want 200", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The change feeds come back by themselves, within their backoff's cap (1s) of the
	// primary being reachable, and say so.
	var feedBack time.Duration
	for _, line := range []string{"session change feed is back", "not-before policies: change feed is back"} {
		if !h.d.waitLog(regexp.QuoteMeta(line), 3*time.Second) {
			t.Errorf("no %q in the log 3 s after the repoint to the primary", line)
		}
		feedBack = max(feedBack, time.Since(back))
	}
	t.Logf("feeds back within %v of the repoint to the primary", feedBack)
	t.Logf("first 503 %v after the repoint to the standby; served again %v after the repoint to the primary", first503, servedAfter)
}
