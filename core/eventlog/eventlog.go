// Package eventlog writes sessiond's security events (logins, refreshes, refusals, logouts,
// admin actions, refused authentication) as JSON lines a SIEM ingests, to a file or
// standard output.
//
// Emit and Audit never block the request path: a bounded queue feeds one writer goroutine,
// and when it is full the event is dropped, counted (Dropped) and reported in the log at
// most every dropWarnEvery. Every event that does not reach the file is counted the same
// way: one that comes after the log was stopped, and lines lost to a failed write (the
// writer then starts afresh, so that the next write can succeed). Lines carry identifiers,
// never a token or a credential; what looks like one in a free-text field is redacted all
// the same.
package eventlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/internal/secretfile"
)

// Outcomes of a Line.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// TypeAdmin is the type of every Line written by Audit.
const TypeAdmin = "admin"

// TypeAuthRefused is the type of every Line written by AuthRefused: a refused attempt to
// authenticate, or a summary of repeats of one (Count).
const TypeAuthRefused = "auth_refused"

// Line is one event as written: the stable schema of the log. Fields a kind of event does
// not have are left out, except Outcome and Type, which every line has.
type Line struct {
	Timestamp string `json:"timestamp"` // RFC 3339 with nanoseconds, UTC
	Type      string `json:"type"`      // session.Event* types, or "admin"
	Outcome   string `json:"outcome"`   // success or failure
	Realm     string `json:"realm,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	IP        string `json:"ip,omitempty"`
	// Reason is a closed set (session.Refused* for refused refreshes and logouts); Detail the
	// human-readable description.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Offline is present on every session event, false included.
	Offline            *bool  `json:"offline,omitempty"`
	Transient          bool   `json:"transient,omitempty"`
	Reuse              string `json:"reuse,omitempty"`
	EndedClientSession bool   `json:"ended_client_session,omitempty"`
	// Admin actions.
	Actor  string `json:"actor,omitempty"`
	Action string `json:"action,omitempty"`
	Target string `json:"target,omitempty"`
	// Refused authentication: who failed (client, frontend, admin; login: a login refused to an address that started too many) and the HTTP status
	// answered. A summary line has Count, the refusals it stands for beyond the ones
	// written, since Since (RFC 3339); an overflow summary has only Kind, Count and Since.
	Kind   string `json:"kind,omitempty"`
	Status int    `json:"status,omitempty"`
	Count  int    `json:"count,omitempty"`
	Since  string `json:"since,omitempty"`
}

// AuditEvent is one admin action.
type AuditEvent struct {
	Time time.Time
	// Actor is the role the caller's credential holds (e.g. "admin"); never the credential.
	Actor string
	// Action names what was asked, e.g. "logout-user", "push-revocation".
	Action string
	Realm  string
	// Target is what was acted on: session/<id>, user/<id>, client/<id>, or realm/<name> for
	// a realm-wide action.
	Target string
	// IP is the caller's address, when known.
	IP string
	// Outcome is OutcomeSuccess or OutcomeFailure.
	Outcome string
	// Reason says why it failed.
	Reason string
}

// SessionLine maps a session event onto the log's schema.
func SessionLine(e session.Event) Line {
	offline := e.Offline
	l := Line{
		Timestamp: stamp(e.Time), Type: e.Type, Outcome: OutcomeSuccess,
		Realm: e.Realm, ClientID: e.ClientID, SessionID: e.SessionID, UserID: e.UserID, IP: e.IP,
		Offline: &offline, Transient: e.Transient, Reuse: e.Reuse, EndedClientSession: e.EndedClientSession,
		Detail: redact(e.Reason),
	}
	if e.Type == session.EventRefreshRefused || e.Type == session.EventLogoutRefused || e.Type == session.EventLoginRefused {
		// The same closed set as the metrics' reason label, whatever the emitter put in.
		l.Outcome, l.Reason = OutcomeFailure, session.RefusalClass(e.Refusal)
	}
	return l
}

// AuditLine maps an admin action onto the log's schema.
func AuditLine(a AuditEvent) Line {
	outcome := a.Outcome
	if outcome == "" {
		outcome = OutcomeSuccess
	}
	return Line{
		Timestamp: stamp(a.Time), Type: TypeAdmin, Outcome: outcome, Realm: a.Realm, IP: a.IP,
		Actor: redact(a.Actor), Action: a.Action, Target: redact(a.Target), Reason: redact(a.Reason),
	}
}

// AuthLine maps a refused authentication, or a summary of its repeats, onto the log's
// schema.
func AuthLine(r authfail.Record) Line {
	l := Line{
		Timestamp: stamp(r.Time), Type: TypeAuthRefused, Outcome: OutcomeFailure, Kind: string(r.Kind),
		Realm: r.Realm, ClientID: r.ClientID, IP: r.Addr, Reason: r.Reason, Status: r.Status,
		Actor: r.Actor, Action: r.Action, Target: redact(r.Target), Detail: redact(r.Detail),
	}
	if r.Count > 0 {
		l.Count, l.Since, l.Detail = r.Count, stamp(r.Since), r.Summary()
	}
	return l
}

func stamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// jwtLike matches a compact JWS or JWE (header segments start with "eyJ", base64url of
// `{"`) and a credential quoted after "Bearer" (long enough not to be a word of prose).
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}`)

// redact hides what looks like a token in free text.
func redact(s string) string {
	if s == "" {
		return s
	}
	return jwtLike.ReplaceAllString(s, "[redacted]")
}

// Defaults of Options.
const (
	DefaultQueue  = 4096
	dropWarnEvery = 10 * time.Second
)

// writeErrorEvery spaces the reports of failed writes: a write that fails again after one
// that succeeded is reported, but not more often than this. A variable for the tests.
var writeErrorEvery = 10 * time.Second

// Options tune a Log.
type Options struct {
	// Queue is how many events may wait for the writer; 0 means DefaultQueue.
	Queue int
	Log   hclog.Logger // where drops and write errors are reported; nil discards
}

// Log is the event log. Emit and Audit are safe for concurrent use.
type Log struct {
	out     io.Writer
	closer  io.Closer // nil for standard output
	queue   chan Line
	log     hclog.Logger
	dropped atomic.Uint64
	// lastWarn is the Unix nanoseconds of the last drop warning.
	lastWarn atomic.Int64

	// mu orders enqueues against the end of Run: an enqueue holds it shared while it
	// sends, Run takes it to set closed, so every event is either queued before Run's
	// last drain or counted as dropped.
	mu     sync.RWMutex
	closed bool
}

var (
	_ session.Events = (*Log)(nil)
	_ authfail.Sink  = (*Log)(nil)
)

// Open opens the event log at path, "-" meaning standard output; a file is created if
// missing and appended to. Events name users and sessions: the file is 0600, and one that
// group or others could read is made so, with a warning.
func Open(path string, o Options) (*Log, error) {
	if path == "-" {
		return New(os.Stdout, nil, o), nil
	}
	f, was, err := secretfile.Open(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("event log file: %w", err)
	}
	l := New(f, f, o)
	if was != 0 {
		l.log.Warn("the event log file was readable by others; it is now readable by sessiond's user alone",
			"path", path, "was", was, "now", was&^0o077)
	}
	return l, nil
}

// New returns a Log writing to out; closer, when not nil, is closed once Run has flushed.
func New(out io.Writer, closer io.Closer, o Options) *Log {
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Log == nil {
		o.Log = hclog.NewNullLogger()
	}
	return &Log{out: out, closer: closer, queue: make(chan Line, o.Queue), log: o.Log}
}

// Emit implements session.Events.
func (l *Log) Emit(e session.Event) { l.enqueue(SessionLine(e)) }

// Audit records an admin action.
func (l *Log) Audit(a AuditEvent) { l.enqueue(AuditLine(a)) }

// AuthRefused implements authfail.Sink: it records a refused authentication.
func (l *Log) AuthRefused(r authfail.Record) { l.enqueue(AuthLine(r)) }

// Dropped is the number of events that were not written: dropped because the queue was
// full or the log already stopped, or lost to a failed write.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

func (l *Log) enqueue(line Line) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		l.drop(1, "event log stopped: a late event was dropped (sessiond_event_log_dropped_total)")
		return
	}
	select {
	case l.queue <- line:
		l.mu.RUnlock()
		return
	default:
	}
	l.mu.RUnlock()
	l.drop(1, "event log queue full: events dropped (sessiond_event_log_dropped_total)")
}

// drop counts n events that were not written, and says so at most every dropWarnEvery.
func (l *Log) drop(n uint64, warning string) {
	total := l.dropped.Add(n)
	now, last := time.Now().UnixNano(), l.lastWarn.Load()
	if now-last >= int64(dropWarnEvery) && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn(warning, "dropped_total", total, "queue", cap(l.queue))
	}
}

// Run writes queued events until ctx ends, then writes what is still queued, flushes and
// closes the file; an event that comes later is counted as dropped. The caller owns the
// goroutine; Run returns once the file is closed.
func (l *Log) Run(ctx context.Context) {
	w := l.newWriter()
	for {
		select {
		case line := <-l.queue:
			w.write(line)
			// Flushed whenever the queue is empty: lines reach the file at once under light
			// load, in large writes under heavy load.
			if len(l.queue) == 0 {
				w.flush()
			}
		case <-ctx.Done():
			l.mu.Lock()
			l.closed = true // no enqueue is under way, none will queue again
			l.mu.Unlock()
			// Run is the only receiver: a non-empty queue cannot block it.
			for len(l.queue) > 0 {
				w.write(<-l.queue)
			}
			w.flush()
			if l.closer != nil {
				if err := l.closer.Close(); err != nil {
					l.log.Error("event log: close failed", "error", err)
				}
			}
			return
		}
	}
}

// writer is Run's side of the file: a buffer over it, and the accounting that tells how
// many lines a failed write lost. Only Run uses it.
type writer struct {
	l    *Log
	out  *lineCounter
	buf  *bufio.Writer
	enc  *json.Encoder
	sent uint64 // lines handed to buf, since the start
	// broken: a failed write ended inside a line; the next line starts on a new one.
	broken bool

	failing   bool      // a failure was reported and no write has succeeded since
	lastError time.Time // of the last report
}

func (l *Log) newWriter() *writer {
	w := &writer{l: l, out: &lineCounter{w: l.out}}
	w.buf = bufio.NewWriter(w.out)
	w.enc = json.NewEncoder(w.buf)
	return w
}

func (w *writer) write(line Line) {
	if w.broken {
		// A failed write left part of a line in the file: end it, so that what follows is
		// a line of its own (the partial one was counted as lost).
		if _, err := w.l.out.Write([]byte{'\n'}); err != nil {
			w.failed(err, 1)
			return
		}
		w.broken = false
	}
	w.sent++
	if err := w.enc.Encode(line); err != nil {
		w.failed(err, 0)
	}
}

func (w *writer) flush() {
	if w.buf.Buffered() == 0 {
		return // nothing written: no news of the file
	}
	if err := w.buf.Flush(); err != nil {
		w.failed(err, 0)
		return
	}
	if w.failing {
		w.failing = false
		w.l.log.Info("event log: writing again", "dropped_total", w.l.Dropped())
	}
}

// failed handles a failed write: a bufio.Writer keeps its first error and refuses every
// later write, so it starts afresh; the lines handed to it that did not reach the file,
// and extra events not written at all, are counted as dropped. The failure is reported
// once until a write succeeds again, and at most every writeErrorEvery.
func (w *writer) failed(err error, extra uint64) {
	lost := w.sent - w.out.lines + extra
	w.sent = w.out.lines
	w.broken = w.broken || w.out.midLine
	w.out.midLine = false
	w.buf.Reset(w.out)
	total := w.l.dropped.Add(lost)
	if now := time.Now(); !w.failing && now.Sub(w.lastError) >= writeErrorEvery {
		w.failing, w.lastError = true, now
		w.l.log.Error("event log: write failed; events are being lost (sessiond_event_log_dropped_total)",
			"error", err, "lost", lost, "dropped_total", total)
	}
}

// lineCounter counts the complete lines that reached w, and whether the last write ended
// inside a line (a buffer flushed when full does; a failed write may).
type lineCounter struct {
	w       io.Writer
	lines   uint64
	midLine bool
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.lines += uint64(bytes.Count(p[:n], []byte{'\n'}))
		c.midLine = p[n-1] != '\n'
	}
	return n, err
}
