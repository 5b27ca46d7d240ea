package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/tcpproxy"
	"github.com/sessiond/sessiond/internal/testpg"
)

// failoverLoad keeps opening and refreshing sessions on every node, and records what each
// answer was: a session is acknowledged once a 201 or a 200 handed out its token.
type failoverLoad struct {
	clients []*apiClient
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	acked    map[string]string // session id → a refresh token a 2xx answer handed out
	served   []time.Time       // when each 2xx answer came, per node: the last one
	refusals int
	bad      []string // answers that are neither 2xx nor 503 with Retry-After
	seq      atomic.Int64
}

func startFailoverLoad(clients []*apiClient, workers int) *failoverLoad {
	ctx, stop := context.WithCancel(context.Background())
	l := &failoverLoad{clients: clients, ctx: ctx, stop: stop, acked: map[string]string{}, served: make([]time.Time, len(clients))}
	for w := range workers {
		l.wg.Go(func() { l.work(w) })
	}
	return l
}

func (l *failoverLoad) work(w int) {
	var mine []string
	tokens := map[string]string{}
	for i := 0; l.ctx.Err() == nil; i++ {
		node := (w + i) % len(l.clients)
		c := l.clients[node]
		var r *apiResult
		var err error
		if i%3 == 0 || len(mine) == 0 {
			r, err = c.open(fmt.Sprintf("ha-%d-%d", w, l.seq.Add(1)), false)
			if err == nil && r.status == http.StatusCreated {
				mine = append(mine, r.SessionID)
				tokens[r.SessionID] = r.RefreshToken
				l.ack(node, r.SessionID, r.RefreshToken)
			}
		} else {
			id := mine[i%len(mine)]
			r, err = c.refresh(tokens[id])
			if err == nil && r.status == http.StatusOK {
				tokens[id] = r.RefreshToken
				l.ack(node, id, r.RefreshToken)
			}
		}
		l.record(node, r, err)
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *failoverLoad) ack(node int, id, token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[id] = token
	l.served[node] = time.Now()
}

func (l *failoverLoad) record(node int, r *apiResult, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.bad = append(l.bad, fmt.Sprintf("node %d: %v", node, err))
	case r.status == http.StatusServiceUnavailable && r.retryAfter != "":
		l.refusals++
	case r.status >= 300:
		l.bad = append(l.bad, fmt.Sprintf("node %d: %s (Retry-After %q)", node, r.summary(), r.retryAfter))
	}
}

// waitServed waits until every node has served a write after since, and returns how long
// after since the last of them did.
func (l *failoverLoad) waitServed(t *testing.T, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	for {
		l.mu.Lock()
		last := time.Duration(0)
		all := true
		for _, at := range l.served {
			if !at.After(since) {
				all = false
			}
			last = max(last, at.Sub(since))
		}
		l.mu.Unlock()
		if all {
			return last
		}
		if time.Since(since) > within {
			t.Fatalf("not every node serves writes %v after the switch", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReadiness waits until every node's readiness answers want (200 or 503) with a body
// that contains reason, and returns how long after since.
func waitReadiness(t *testing.T, clients []*apiClient, want int, reason string, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	for i, c := range clients {
		for {
			code, body, err := c.readiness()
			if err == nil && code == want && strings.Contains(body, reason) {
				break
			}
			if time.Since(since) > within {
				t.Fatalf("node %d: readiness = %d %s %v, want %d with %q within %v", i, code, body, err, want, reason, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return time.Since(since)
}

// waitFeeds waits until every node's log says its change feeds are back, count times in
// all, and returns how long after since.
func waitFeeds(t *testing.T, nodes []*daemon, count int, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	back := regexp.MustCompile(`session change feed is back|not-before policies: change feed is back`)
	for i, d := range nodes {
		for len(back.FindAllString(d.log(), -1)) < 2*count {
			if time.Since(since) > within {
				t.Fatalf("node %d: the change feeds are not back %v after the switch (want %d lines):\n%s", i, within, 2*count, d.log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return time.Since(since)
}

// syncStandby makes standby the synchronous standby of primary and waits until it is.
func syncStandby(t *testing.T, primary, standby *testpg.Cluster) {
	t.Helper()
	primary.SQL(t, fmt.Sprintf(`ALTER SYSTEM SET synchronous_standby_names = '"%s"'`, standby.AppName()), "SELECT pg_reload_conf()")
	deadline := time.Now().Add(30 * time.Second)
	for primary.SQL(t, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a synchronous standby of %s after 30 s", standby.Name, primary.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailoverUnderLoad runs two sessiond nodes under load, through a proxy, on a primary
// with a synchronous standby, and fails the database over as an operator does: (1) the
// primary fenced read-only while it stays up, the standby promoted, the proxy repointed;
// (2) the new primary, given a synchronous standby of its own, stopped with -m immediate,
// that standby promoted, the proxy repointed; (3) the synchronous standby of the primary
// gone, so that commits wait. Every refusal is 503 with Retry-After; readiness is DOWN
// while writes cannot succeed and UP after; the nodes serve again and their change feeds
// are back within stated bounds; and every session whose opening or refresh was
// acknowledged still refreshes at the end.
func TestFailoverUnderLoad(t *testing.T) {
	const (
		workers     = 4
		warmUp      = time.Second
		serveWithin = 5 * time.Second // after the proxy leads to the new primary
		feedWithin  = 5 * time.Second
		readyWithin = 5 * time.Second
	)
	sessiondBinary(t)
	p1 := testpg.NewCluster(t)
	s1 := p1.NewStandby(t)
	syncStandby(t, p1, s1)
	proxy, err := tcpproxy.New(p1.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	through, err := proxy.URL(p1.URL())
	if err != nil {
		t.Fatal(err)
	}
	realm := writeRealm(t)
	var nodes []*daemon
	var clients []*apiClient
	for i := range 2 {
		d := startDaemonIn(t, t.TempDir(), append(persistArgs(realm),
			"--spi-user-sessions-provider=postgres",
			"--spi-user-sessions-postgres-url="+through,
			"--spi-user-sessions-postgres-statement-timeout=1s",
			fmt.Sprintf("--node-id=ha-%d", i+1),
			"--log-level=info")...)
		c := newAPIClient(d.base, 10*time.Second)
		t.Cleanup(c.close)
		nodes, clients = append(nodes, d), append(clients, c)
	}
	load := startFailoverLoad(clients, workers)
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { load.stop(); load.wg.Wait() }) }
	t.Cleanup(stop)
	time.Sleep(warmUp)
	figures := []string{}

	// (1) The primary fenced while it stays up; its standby promoted.
	p1.SQL(t, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	fenced := time.Now()
	down := waitReadiness(t, clients, http.StatusServiceUnavailable, "read-only", fenced, readyWithin)
	s1.Promote(t)
	proxy.Repoint(s1.Addr())
	switched := time.Now()
	served := load.waitServed(t, switched, serveWithin)
	ready := waitReadiness(t, clients, http.StatusOK, `"status":"UP"`, switched, readyWithin)
	feeds := waitFeeds(t, nodes, 1, switched, feedWithin)
	figures = append(figures, fmt.Sprintf("fenced primary: writes unavailable %v in all (fence to every node serving); readiness DOWN %v after the fence; after the repoint, served in %v, ready in %v, feeds back in %v",
		(switched.Sub(fenced)+served).Round(time.Millisecond), down.Round(time.Millisecond), served.Round(time.Millisecond), ready.Round(time.Millisecond), feeds.Round(time.Millisecond)))

	// (2) The new primary stopped with -m immediate; its synchronous standby promoted.
	s2 := s1.NewStandby(t)
	syncStandby(t, s1, s2)
	time.Sleep(warmUp)
	s1.Stop(t, "immediate")
	stopped := time.Now()
	down = waitReadiness(t, clients, http.StatusServiceUnavailable, `"status":"DOWN"`, stopped, readyWithin)
	s2.Promote(t)
	proxy.Repoint(s2.Addr())
	switched = time.Now()
	served = load.waitServed(t, switched, serveWithin)
	ready = waitReadiness(t, clients, http.StatusOK, `"status":"UP"`, switched, readyWithin)
	feeds = waitFeeds(t, nodes, 2, switched, feedWithin)
	figures = append(figures, fmt.Sprintf("primary stopped: writes unavailable %v in all (stop to every node serving); readiness DOWN %v after the stop, promotion and repoint %v after it; after the repoint, served in %v, ready in %v, feeds back in %v",
		(switched.Sub(stopped)+served).Round(time.Millisecond), down.Round(time.Millisecond), switched.Sub(stopped).Round(time.Millisecond), served.Round(time.Millisecond), ready.Round(time.Millisecond), feeds.Round(time.Millisecond)))

	// (3) The primary's synchronous standby gone: commits wait. Writes end at the
	// statement timeout (1s) as 503 of unknown outcome; readiness says commits hang.
	s2.SQL(t, "ALTER SYSTEM SET synchronous_standby_names = 'gone'", "SELECT pg_reload_conf()")
	hung := time.Now()
	down = waitReadiness(t, clients, http.StatusServiceUnavailable, "did not commit within", hung, readyWithin)
	unknown := false
	for time.Since(hung) < 5*time.Second && !unknown {
		for _, d := range nodes {
			unknown = unknown || strings.Contains(d.log(), "outcome unknown")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Whether a write reaches COMMIT before the readiness probe fences the store depends on
	// timing (on a quiet machine the probe's own commit hangs first and writes are refused
	// before they are sent); that a hung commit is reported as of unknown outcome is proved
	// deterministically in providers/usersessions/postgres (ha_test.go) and core/session.
	figures = append(figures, fmt.Sprintf("synchronous standby gone: a write of unknown outcome logged: %v", unknown))
	s2.SQL(t, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
	released := time.Now()
	served = load.waitServed(t, released, serveWithin)
	ready = waitReadiness(t, clients, http.StatusOK, `"status":"UP"`, released, readyWithin)
	figures = append(figures, fmt.Sprintf("synchronous standby gone: writes unavailable %v in all (standby gone to every node serving); readiness DOWN %v after; once released, served in %v, ready in %v",
		(released.Sub(hung)+served).Round(time.Millisecond), down.Round(time.Millisecond), served.Round(time.Millisecond), ready.Round(time.Millisecond)))

	stop()
	load.mu.Lock()
	defer load.mu.Unlock()
	for _, b := range load.bad {
		t.Errorf("an answer that is neither success nor 503 with Retry-After: %s", b)
	}
	lost := 0
	for id, token := range load.acked {
		r, err := clients[0].refresh(token)
		if err != nil || r.status != http.StatusOK {
			lost++
			t.Errorf("acknowledged session %s does not refresh after the failovers: %s %v", id, r.summary(), err)
		}
	}
	t.Logf("%d sessions acknowledged, %d lost, %d refusals (503 with Retry-After)", len(load.acked), lost, load.refusals)
	for _, f := range figures {
		t.Log(f)
	}
}
