package metrics

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond/core/realm"
)

// SessionCounter counts a realm's sessions per client; usersessions.Provider is one.
type SessionCounter interface {
	CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error)
}

// RealmLister lists the served realms; *realm.Realms is one.
type RealmLister interface {
	List() []*realm.Realm
}

// Defaults of Deps.
const (
	// DefaultCountEvery: counting is a grouped query per realm over the whole sessions
	// table; a scrape every few seconds from several Prometheus servers must not turn into
	// as many queries.
	DefaultCountEvery = 10 * time.Second
	// DefaultCountTimeout bounds one count of every realm, not each realm's: a scrape
	// (Prometheus's default timeout is 10 s) must not wait realms × timeout.
	DefaultCountTimeout = 5 * time.Second
)

// sessionCounts is the collector of the session gauges. It counts at scrape time, at most
// once per CountEvery; concurrent scrapes wait for one count and share it.
type sessionCounts struct {
	store        SessionCounter
	realms       RealmLister
	every, limit time.Duration
	now          func() time.Time
	log          hclog.Logger

	active, offline, failed, failures *prometheus.Desc

	mu        sync.Mutex
	at        time.Time // of the last count; zero before the first
	counts    []realmCount
	failuresN uint64
}

// realmCount is one realm's counts, or why there are none.
type realmCount struct {
	realm           string
	active, offline map[string]int64
	err             error
}

func newSessionCounts(d Deps) (*sessionCounts, error) {
	if d.Sessions == nil || d.Realms == nil {
		return nil, fmt.Errorf("metrics: the session counts need a store and the realms")
	}
	if d.CountEvery < 0 || d.CountTimeout < 0 {
		return nil, fmt.Errorf("metrics: negative count interval %s or timeout %s", d.CountEvery, d.CountTimeout)
	}
	c := &sessionCounts{store: d.Sessions, realms: d.Realms, every: d.CountEvery, limit: d.CountTimeout, now: d.Now, log: d.Log}
	if c.every == 0 {
		c.every = DefaultCountEvery
	}
	if c.limit == 0 {
		c.limit = DefaultCountTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	rc := []string{"realm", "client"}
	c.active = prometheus.NewDesc(namespace+"_sessions_active", "Online user sessions holding a client session of the client, counted in the store (at most every "+c.every.String()+").", rc, nil)
	c.offline = prometheus.NewDesc(namespace+"_sessions_offline", "Offline user sessions holding a client session of the client, counted in the store (at most every "+c.every.String()+").", rc, nil)
	c.failed = prometheus.NewDesc(namespace+"_sessions_count_failed", "1 when the last count of the realm's sessions failed (its session gauges are then absent), else 0.", []string{"realm"}, nil)
	c.failures = prometheus.NewDesc(namespace+"_sessions_count_failures_total", "Counts of a realm's sessions that failed.", nil, nil)
	return c, nil
}

func (c *sessionCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.active
	ch <- c.offline
	ch <- c.failed
	ch <- c.failures
}

func (c *sessionCounts) Collect(ch chan<- prometheus.Metric) {
	counts, failures := c.snapshot()
	for _, rc := range counts {
		failed := 0.0
		if rc.err != nil {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, failed, rc.realm)
		if rc.err != nil {
			continue
		}
		for _, g := range []struct {
			desc   *prometheus.Desc
			counts map[string]int64
		}{{c.active, rc.active}, {c.offline, rc.offline}} {
			for client, n := range g.counts {
				ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n), rc.realm, client)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(failures))
}

// snapshot returns the counts, counting again when the last ones are older than every.
func (c *sessionCounts) snapshot() ([]realmCount, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && c.now().Sub(c.at) < c.every {
		return c.counts, c.failuresN
	}
	c.counts = c.count()
	c.at = c.now()
	for _, rc := range c.counts {
		if rc.err != nil {
			c.failuresN++
		}
	}
	return c.counts, c.failuresN
}

// count asks the store for every realm's counts, all within one deadline (limit): a scrape
// waits for one count, however many realms there are. A configured client with no session is
// reported as 0, so that a dashboard shows it; a realm that fails (or that the deadline left
// no time for) is reported as failed.
func (c *sessionCounts) count() []realmCount {
	ctx, cancel := context.WithTimeout(context.Background(), c.limit)
	defer cancel()
	var out []realmCount
	for _, r := range c.realms.List() {
		rc := c.countRealm(ctx, r)
		if rc.err != nil {
			c.log.Warn("metrics: counting the realm's sessions failed", "realm", r.Name, "error", rc.err)
		}
		out = append(out, rc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].realm < out[j].realm })
	return out
}

// countRealm counts one realm's online and offline sessions per client. The maps it returns
// are its own: the store's answer may be shared, read-only or nil (a plugin answers nil
// for an empty result), so it is copied, never written to.
func (c *sessionCounts) countRealm(ctx context.Context, r *realm.Realm) realmCount {
	rc := realmCount{realm: r.Name}
	if err := ctx.Err(); err != nil {
		rc.err = fmt.Errorf("no time left to count: %w", err)
		return rc
	}
	// Sessions that have ended by their own rules but that cleanup has not yet removed are
	// not active.
	now := c.now()
	active, err := c.store.CountByClient(ctx, r.Name, false, now)
	if err != nil {
		rc.err = err
		return rc
	}
	offline, err := c.store.CountByClient(ctx, r.Name, true, now)
	if err != nil {
		rc.err = err
		return rc
	}
	rc.active, rc.offline = withClients(active, r), withClients(offline, r)
	return rc
}

// withClients is a copy of counts with every configured client of r, 0 when it has none.
func withClients(counts map[string]int64, r *realm.Realm) map[string]int64 {
	m := make(map[string]int64, len(counts)+len(r.Clients))
	for client, n := range counts {
		m[client] = n
	}
	for _, cl := range r.Clients {
		if _, ok := m[cl.ClientID]; !ok {
			m[cl.ClientID] = 0
		}
	}
	return m
}
