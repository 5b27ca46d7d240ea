package runtime

import (
	"context"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/eventlog"
	"github.com/sessiond/sessiond/core/metrics"
	"github.com/sessiond/sessiond/core/push"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// observability is what watches the runtime: the metrics (nil unless metrics-enabled) and
// the event sinks every session event and admin action goes to.
type observability struct {
	metrics  *metrics.Metrics
	eventLog *eventlog.Log // nil without event-log-file: events go to the logger
	events   eventSinks
	// eventLogStop ends the event log's writer, which closes eventLogDone once the file is
	// closed; both nil without an event log.
	eventLogStop context.CancelFunc
	eventLogDone <-chan struct{}
}

// auditor records admin actions and refused authentication.
type auditor interface {
	Audit(eventlog.AuditEvent)
	authfail.Sink
}

// eventSinks fans every event out to the event log (file or logger) and the metrics.
type eventSinks struct {
	sinks []session.Events
	audit auditor
}

func (f eventSinks) Emit(e session.Event) {
	for _, s := range f.sinks {
		s.Emit(e)
	}
}

// Audit records an admin action in the event log; core/admin's audit events come here.
func (f eventSinks) Audit(a eventlog.AuditEvent) { f.audit.Audit(a) }

// AuthRefused records a refused authentication, or a summary of its repeats, in the event
// log; the authfail guard's lines come here.
func (f eventSinks) AuthRefused(r authfail.Record) { f.audit.AuthRefused(r) }

// observe opens the event log and builds the metrics over the sessions' store, and returns
// the session service's Events. The event log's writer runs until the runtime stops, after
// everything else that may emit an event, and is flushed and closed then (stopEventLog).
func (rt *Runtime) observe(store usersessions.Provider) (session.Events, error) {
	logger := eventLog{rt.log.Named("events")}
	rt.obs.events = eventSinks{sinks: []session.Events{logger}, audit: logger}
	if path := rt.settings.EventLogFile; path != "" {
		l, err := eventlog.Open(path, eventlog.Options{Log: rt.log.Named("events")})
		if err != nil {
			return nil, err
		}
		// Not background work: that ends first, and may emit events as it does.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Run(ctx)
		}()
		rt.obs.eventLogStop, rt.obs.eventLogDone = cancel, done
		rt.obs.eventLog = l
		rt.obs.events = eventSinks{sinks: []session.Events{l}, audit: l}
		rt.log.Info("event log", "file", path)
	}
	if rt.settings.MetricsEnabled {
		m, err := metrics.New(metrics.Deps{Sessions: store, Realms: rt.realms, Log: rt.log.Named("metrics")})
		if err != nil {
			return nil, err
		}
		rt.obs.metrics = m
		rt.obs.events.sinks = append(rt.obs.events.sinks, m)
	}
	return rt.obs.events, nil
}

// watch exposes the progress of the runtime's components as metrics.
func (rt *Runtime) watch(cleaner metrics.CleanupStats) error {
	m := rt.obs.metrics
	if m == nil {
		return nil
	}
	if err := m.WatchCleanup(cleaner); err != nil {
		return err
	}
	if err := m.WatchPreload(rt.preload); err != nil {
		return err
	}
	if err := m.WatchPlugins(rt.host); err != nil {
		return err
	}
	if rt.obs.eventLog != nil {
		if err := m.WatchEventLog(rt.obs.eventLog); err != nil {
			return err
		}
	}
	return nil
}

// The revocation-push outbox's cumulative outcomes have the shape the metrics read.
var _ metrics.PushCounts = (*push.Outbox)(nil)

// watchPush exposes the revocation-push outbox's delivery outcomes; the wiring that builds
// the outbox calls it.
func (rt *Runtime) watchPush(outbox metrics.PushCounts) error {
	if rt.obs.metrics == nil {
		return nil
	}
	return rt.obs.metrics.WatchPush(outbox)
}

// instrument measures the token endpoint when metrics are enabled.
func (rt *Runtime) instrument(api http.Handler) http.Handler {
	if rt.obs.metrics == nil {
		return api
	}
	return rt.obs.metrics.Instrument(api)
}

// metricsHandler serves GET /metrics; nil when metrics are not enabled.
func (rt *Runtime) metricsHandler() http.Handler {
	if rt.obs.metrics == nil {
		return nil
	}
	return rt.obs.metrics.Handler()
}

// Audit writes an admin action as the event log's "admin" event.
func (e eventLog) Audit(a eventlog.AuditEvent) {
	l := eventlog.AuditLine(a)
	args := []any{"type", l.Type, "realm", l.Realm, "time", l.Timestamp, "actor", l.Actor, "action", l.Action, "outcome", l.Outcome}
	for _, kv := range [][2]string{{"target", l.Target}, {"ip", l.IP}, {"reason", l.Reason}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	e.log.Info("event", args...)
}

// AuthRefused writes a refused authentication as the event log's "auth_refused" event.
func (e eventLog) AuthRefused(r authfail.Record) {
	l := eventlog.AuthLine(r)
	args := []any{"type", l.Type, "kind", l.Kind, "time", l.Timestamp, "outcome", l.Outcome}
	for _, kv := range [][2]string{{"realm", l.Realm}, {"client_id", l.ClientID}, {"ip", l.IP}, {"reason", l.Reason},
		{"actor", l.Actor}, {"action", l.Action}, {"target", l.Target}, {"detail", l.Detail}, {"since", l.Since}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if l.Status != 0 {
		args = append(args, "status", l.Status)
	}
	if l.Count != 0 {
		args = append(args, "count", l.Count)
	}
	e.log.Info("event", args...)
}

// stopEventLog flushes and closes the event log, once nothing else runs that may emit an
// event; an event emitted later still is counted as dropped. It waits at most limit: a
// writer blocked for good (an event-log-file of "-" whose reader stopped reading) must not
// hold sessiond's exit, and what it had not written is lost, which the log says.
func (rt *Runtime) stopEventLog(limit time.Duration) {
	stop, done := rt.obs.eventLogStop, rt.obs.eventLogDone
	if stop == nil {
		return
	}
	rt.obs.eventLogStop, rt.obs.eventLogDone = nil, nil
	stop()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		rt.log.Warn("the event log did not finish writing in time; sessiond stops without it, and the events it had not written are lost",
			"waited", limit)
	}
}

// eventLogDrain is the least time Stop leaves the event log to finish writing, even when
// the shutdown timeout has run out on the rest.
const eventLogDrain = 5 * time.Second
