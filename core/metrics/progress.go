package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond/core/cleanup"
	"github.com/sessiond/sessiond/core/preload"
	"github.com/sessiond/sessiond/plugins/host"
)

// CleanupStats reports the cleanup's counters; *cleanup.Cleaner is one.
type CleanupStats interface {
	Stats() cleanup.Stats
}

// PreloadStatus reports the offline preload's progress; *preload.Runner is one.
type PreloadStatus interface {
	Status() preload.Status
}

// PluginStatus reports every provider's plugin; *host.Host is one.
type PluginStatus interface {
	Status() []host.Status
}

// PushCounts reports the revocation-push outbox's cumulative delivery outcomes, by
// outcome (a closed set the outbox defines: delivered, failed, retried...).
type PushCounts interface {
	Counts() map[string]int64
}

// DropCounter reports how many events the event log dropped; *eventlog.Log is one.
type DropCounter interface {
	Dropped() uint64
}

// WatchCleanup exposes the cleanup's progress.
func (m *Metrics) WatchCleanup(s CleanupStats) error {
	return m.register("cleanup", &cleanupCollector{src: s,
		passes:     desc("cleanup_passes_total", "Cleanup passes run, successful or not."),
		failed:     desc("cleanup_failed_passes_total", "Cleanup passes that failed."),
		users:      desc("cleanup_deleted_user_sessions_total", "Expired user sessions removed by cleanup."),
		clients:    desc("cleanup_deleted_client_sessions_total", "Expired client sessions removed by cleanup (as the provider counts them)."),
		lastRun:    desc("cleanup_last_run_timestamp_seconds", "Start (cutoff) of the last cleanup pass, Unix time; absent before the first."),
		lastOK:     desc("cleanup_last_success_timestamp_seconds", "Start (cutoff) of the last successful cleanup pass, Unix time; absent before the first."),
		lastTook:   desc("cleanup_last_duration_seconds", "Duration of the last cleanup pass."),
		pending:    desc("cleanup_pending_realms", "Realms whose stored expiries still wait for a successful recompute (cleanup deletes nothing meanwhile)."),
		recomputed: desc("cleanup_recomputed_sessions_total", "User sessions whose stored expiry a recompute rewrote."),
	})
}

type cleanupCollector struct {
	src                                                                            CleanupStats
	passes, failed, users, clients, lastRun, lastOK, lastTook, pending, recomputed *prometheus.Desc
}

func (c *cleanupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.passes, c.failed, c.users, c.clients, c.lastRun, c.lastOK, c.lastTook, c.pending, c.recomputed} {
		ch <- d
	}
}

func (c *cleanupCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.passes, s.Passes)
	counter(c.failed, s.FailedPasses)
	counter(c.users, s.UsersRemoved)
	counter(c.clients, s.ClientsRemoved)
	counter(c.recomputed, s.SessionsRecomputed)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(len(s.PendingRealms)))
	if !s.LastRun.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastRun, prometheus.GaugeValue, unix(s.LastRun))
		ch <- prometheus.MustNewConstMetric(c.lastTook, prometheus.GaugeValue, s.LastDuration.Seconds())
	}
	if !s.LastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastOK, prometheus.GaugeValue, unix(s.LastSuccess))
	}
}

// preloadStates are the values of the state label, each reported 0 or 1, so that a query
// for one state finds a series in every phase.
var preloadStates = []preload.State{preload.Planning, preload.Running, preload.Lazy, preload.Done, preload.FellBack, preload.Stopped}

// WatchPreload exposes the offline preload's progress.
func (m *Metrics) WatchPreload(s PreloadStatus) error {
	return m.register("preload", &preloadCollector{src: s,
		state:  prometheus.NewDesc(namespace+"_preload_state", "1 for the offline preload's current state, 0 for the others.", []string{"state"}, nil),
		loaded: desc("preload_sessions_loaded", "Offline sessions the preload read from the store."),
		cached: desc("preload_sessions_imported", "Offline sessions the preload put into the cache."),
		total:  desc("preload_sessions_total", "Offline sessions the preload plans to read; absent while unknown."),
		ready:  desc("preload_ready", "1 once the preload no longer holds readiness back."),
	})
}

type preloadCollector struct {
	src                                 PreloadStatus
	state, loaded, cached, total, ready *prometheus.Desc
}

func (c *preloadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.loaded, c.cached, c.total, c.ready} {
		ch <- d
	}
}

func (c *preloadCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Status()
	known := false
	for _, st := range preloadStates {
		known = known || st == s.State
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, bool01(st == s.State), string(st))
	}
	if !known {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, string(s.State))
	}
	ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, float64(s.Loaded))
	ch <- prometheus.MustNewConstMetric(c.cached, prometheus.GaugeValue, float64(s.Imported))
	if s.Total >= 0 {
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.Total))
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, bool01(s.Ready()))
}

// WatchPlugins exposes each provider's plugin state and restarts.
func (m *Metrics) WatchPlugins(s PluginStatus) error {
	l := []string{"spi", "provider"}
	return m.register("plugins", &pluginCollector{src: s,
		restarts: prometheus.NewDesc(namespace+"_plugin_restarts_total", "Restarts of the provider's plugin process since sessiond started.", l, nil),
		up:       prometheus.NewDesc(namespace+"_plugin_up", "1 when the provider serves (its process runs, or it runs in-process).", l, nil),
		state:    prometheus.NewDesc(namespace+"_plugin_state", "1 for the provider's current state (starting, running, restarting, crash-looping, stopped, in-process).", append(l, "state"), nil),
	})
}

type pluginCollector struct {
	src                 PluginStatus
	restarts, up, state *prometheus.Desc
}

func (c *pluginCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.restarts
	ch <- c.up
	ch <- c.state
}

func (c *pluginCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.src.Status() {
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts), s.SPI, s.ID)
		up := s.State == host.StateRunning || s.State == host.StateInProcess
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, bool01(up), s.SPI, s.ID)
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, s.SPI, s.ID, string(s.State))
	}
}

// WatchPush exposes the revocation-push outbox's delivery outcomes.
func (m *Metrics) WatchPush(s PushCounts) error {
	return m.register("push", &pushCollector{src: s,
		outcomes: prometheus.NewDesc(namespace+"_push_deliveries_total", "Revocation push deliveries by outcome.", []string{"outcome"}, nil),
	})
}

type pushCollector struct {
	src      PushCounts
	outcomes *prometheus.Desc
}

func (c *pushCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.outcomes }

func (c *pushCollector) Collect(ch chan<- prometheus.Metric) {
	for outcome, n := range c.src.Counts() {
		ch <- prometheus.MustNewConstMetric(c.outcomes, prometheus.CounterValue, float64(n), outcome)
	}
}

// WatchEventLog exposes the events the event log dropped.
func (m *Metrics) WatchEventLog(s DropCounter) error {
	return m.register("event log", prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Name: "event_log_dropped_total",
		Help: "Events the event log did not write: dropped because its queue was full (the file or pipe did not keep up) or it had stopped, or lost to a failed write.",
	}, func() float64 { return float64(s.Dropped()) }))
}

// LegacyCounter reports how many tokens in a format from before an upgrade were presented;
// *token.Service is one.
type LegacyCounter interface {
	LegacyTokens() uint64
}

// WatchLegacyTokens exposes the tokens presented in the format from before at+jwt and realm
// secrets, so an operator sees when none are left and legacy-tokens=refuse costs nothing.
func (m *Metrics) WatchLegacyTokens(c LegacyCounter) error {
	return m.register("token formats", prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Name: "legacy_tokens_total",
		Help: "Tokens presented in the format from before access tokens carried typ at+jwt and refresh tokens were signed with a realm secret, accepted or refused (legacy-tokens).",
	}, func() float64 { return float64(c.LegacyTokens()) }))
}

func (m *Metrics) register(what string, c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics of the %s: %w", what, err)
	}
	return nil
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, nil, nil)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
