// Package metrics is sessiond's Prometheus endpoint: sessions per realm and client, refresh
// outcomes, refusals and latency, refused authentication, cleanup, preload, plugin and push
// progress.
//
// It uses github.com/prometheus/client_golang, the Prometheus project's own client and the
// exposition format's reference implementation, with a registry per Metrics, never the
// global one. Occurrences are counted from the session events (Metrics is a session.Events)
// and a middleware on the token endpoint, so the session rules carry no metrics code; states
// are read at scrape time from the component that knows them. Label values come from closed
// sets or the configured realms and clients, never from request text.
package metrics

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/session"
)

var _ authfail.Counter = (*Metrics)(nil)

// namespace prefixes sessiond's own metrics; the Go runtime's and the process's keep their
// standard go_ and process_ names, which dashboards expect.
const namespace = "sessiond"

// Refresh outcomes (the outcome label of sessiond_refreshes_total).
const (
	OutcomeSuccess = "success"
	OutcomeRefused = "refused"
)

// Deps are what New needs; Sessions and Realms feed the session gauges, the rest is added
// with the Watch* methods as the runtime builds the components.
type Deps struct {
	Sessions SessionCounter
	Realms   RealmLister
	// CountEvery is how long one count of the store's sessions serves scrapes; 0 means
	// DefaultCountEvery. CountTimeout bounds one count of every realm's sessions (realms it leaves no time for
	// are reported as failed); 0 means DefaultCountTimeout.
	CountEvery, CountTimeout time.Duration
	// Now is the clock of the count cache; nil means time.Now.
	Now func() time.Time
	Log hclog.Logger
}

// Metrics is the registry and the instruments sessiond updates. Emit and the middleware
// are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log hclog.Logger

	logins, attaches, logouts, revocations *prometheus.CounterVec
	refreshes, refusals                    *prometheus.CounterVec
	authRefusals                           *prometheus.CounterVec
	tokenLatency                           *prometheus.HistogramVec
}

var _ session.Events = (*Metrics)(nil)

// New returns Metrics with the session gauges and the Go runtime and process collectors
// registered.
func New(d Deps) (*Metrics, error) {
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: d.Log}
	rc := []string{"realm", "client"}
	m.logins = counterVec("logins_total", "Sessions opened by a login through the front-end.", rc...)
	m.attaches = counterVec("client_attaches_total", "Clients attached to an existing user session (SSO).", rc...)
	m.logouts = counterVec("logouts_total", "User sessions ended by a logout (client is empty for a logout by session id).", rc...)
	m.revocations = counterVec("token_revocations_total", "Refresh and offline tokens revoked (RFC 7009).", rc...)
	m.refreshes = counterVec("refreshes_total", "Refresh token grants by outcome (success or refused).", "realm", "client", "outcome")
	m.refusals = counterVec("refresh_refusals_total", "Refused refresh token grants by reason (a closed set: "+refusalList()+").", "realm", "client", "reason")
	m.authRefusals = counterVec("auth_refusals_total", "Refused authentication by kind (client, frontend, admin, login) and reason (a closed set: "+
		authReasonList()+"); reason throttled counts the 429 answers to callers that failed too often, and with kind login the logins refused to an address that started too many.", "kind", "reason")
	m.tokenLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "token_request_duration_seconds",
		Help: "Time to answer the token endpoint, by grant_type and HTTP status code.",
		// 1 ms to about 8 s: a cached refresh answers in a few milliseconds, one waiting for
		// a restarting plugin in seconds.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"grant_type", "code"})
	sessions, err := newSessionCounts(d)
	if err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{
		m.logins, m.attaches, m.logouts, m.revocations, m.refreshes, m.refusals, m.authRefusals, m.tokenLatency, sessions,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

// Handler serves the registry in the Prometheus exposition formats. A collector that
// fails does not fail the scrape: the others are served and the error is logged.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{m.log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // counts promhttp's own scrape errors
	})
}

// Gatherer is the registry, for tests and for embedding in another endpoint.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

type promLogger struct{ log hclog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics scrape", "error", v) }

// Emit implements session.Events: it counts the event.
func (m *Metrics) Emit(e session.Event) {
	switch e.Type {
	case session.EventLogin:
		m.logins.WithLabelValues(e.Realm, e.ClientID).Inc()
	case session.EventAttach:
		m.attaches.WithLabelValues(e.Realm, e.ClientID).Inc()
	case session.EventRefresh:
		m.refreshes.WithLabelValues(e.Realm, e.ClientID, OutcomeSuccess).Inc()
	case session.EventRefreshRefused:
		m.refreshes.WithLabelValues(e.Realm, e.ClientID, OutcomeRefused).Inc()
		m.refusals.WithLabelValues(e.Realm, e.ClientID, refusalLabel(e.Refusal)).Inc()
	case session.EventLogout:
		m.logouts.WithLabelValues(e.Realm, e.ClientID).Inc()
	case session.EventRevoke:
		m.revocations.WithLabelValues(e.Realm, e.ClientID).Inc()
	}
}

// refusalLabel keeps the reason label in the closed set whatever a caller put in the event.
func refusalLabel(r string) string { return session.RefusalClass(r) }

func refusalList() string { return strings.Join(session.Refusals(), ", ") }

// AuthRefused implements authfail.Counter: it counts a refused authentication. The guard
// hands over its own closed sets; anything else is counted as "other".
func (m *Metrics) AuthRefused(kind, reason string) {
	if !slices.Contains(authfail.Kinds(), authfail.Kind(kind)) {
		kind = "other"
	}
	if !slices.Contains(authfail.Reasons(), reason) {
		reason = "other"
	}
	m.authRefusals.WithLabelValues(kind, reason).Inc()
}

func authReasonList() string { return strings.Join(authfail.Reasons(), ", ") }
