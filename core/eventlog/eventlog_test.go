package eventlog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/eventlog"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/internal/testlog"
)

// run starts l's writer and returns a function that stops it and waits until the file is
// flushed and closed.
func run(t *testing.T, l *eventlog.Log) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// readLines decodes every line of the file as one JSON object.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d is not a JSON object: %v: %s", len(out)+1, err, sc.Text())
		}
		if dec.More() {
			t.Fatalf("line %d holds more than one JSON value: %s", len(out)+1, sc.Text())
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEventsAreJSONLinesWithStableFields(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 20, 30, 123456789, time.FixedZone("CET", 3600))
	const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
	tests := []struct {
		name  string
		emit  func(*eventlog.Log)
		want  map[string]any // fields and values the line must have
		unset []string       // fields the line must not have
	}{{
		name: "login",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventLogin, Realm: "acme", ClientID: "app", SessionID: "s1", UserID: "u1", IP: "192.0.2.7"})
		},
		want: map[string]any{"timestamp": "2026-03-01T09:20:30.123456789Z", "type": "login", "outcome": "success",
			"realm": "acme", "client_id": "app", "session_id": "s1", "user_id": "u1", "ip": "192.0.2.7", "offline": false},
		unset: []string{"reason", "actor", "action", "target"},
	}, {
		name: "offline refresh",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventRefresh, Realm: "acme", ClientID: "app", SessionID: "s1", UserID: "u1", Offline: true})
		},
		want:  map[string]any{"type": "refresh", "outcome": "success", "offline": true, "session_id": "s1"},
		unset: []string{"reason", "ip"},
	}, {
		name: "refused refresh",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventRefreshRefused, Realm: "acme", ClientID: "app", SessionID: "s1", UserID: "u1",
				Reason: "Session not active: logged out", Refusal: session.RefusedLoggedOut})
		},
		want: map[string]any{"type": "refresh_refused", "outcome": "failure", "reason": "logged_out", "detail": "Session not active: logged out"},
	}, {
		name: "refused refresh without a class",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventRefreshRefused, Realm: "acme", ClientID: "app", Reason: "something new"})
		},
		want: map[string]any{"outcome": "failure", "reason": "other"},
	}, {
		name: "refused refresh with a class outside the closed set",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventRefreshRefused, Realm: "acme", ClientID: "app", Reason: "new check",
				Refusal: "Some Free Text"})
		},
		want: map[string]any{"outcome": "failure", "reason": "other", "detail": "new check"},
	}, {
		name: "reuse ending the client session",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventRefreshRefused, Realm: "acme", ClientID: "app", Refusal: session.RefusedReuse,
				Reuse: session.ReuseRepeated, EndedClientSession: true})
		},
		want: map[string]any{"reason": "reuse", "reuse": "reuse", "ended_client_session": true},
	}, {
		name: "refused logout",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventLogoutRefused, Realm: "acme", ClientID: "app", SessionID: "s1", UserID: "u1",
				Reason: "Stale token: issued before the realm's not-before policy", Refusal: session.RefusedNotBefore})
		},
		want: map[string]any{"type": "logout_refused", "outcome": "failure", "reason": "not_before", "session_id": "s1",
			"detail": "Stale token: issued before the realm's not-before policy"},
	}, {
		name: "logout",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventLogout, Realm: "acme", SessionID: "s1"})
		},
		want:  map[string]any{"type": "logout", "outcome": "success", "session_id": "s1"},
		unset: []string{"client_id"},
	}, {
		name: "admin action",
		emit: func(l *eventlog.Log) {
			l.Audit(eventlog.AuditEvent{Time: at, Actor: "admin", Action: "logout-user", Realm: "acme", Target: "u1", IP: "198.51.100.1",
				Outcome: eventlog.OutcomeSuccess})
		},
		want: map[string]any{"type": "admin", "actor": "admin", "action": "logout-user", "realm": "acme", "target": "u1",
			"ip": "198.51.100.1", "outcome": "success"},
		unset: []string{"offline", "session_id"},
	}, {
		name: "failed admin action",
		emit: func(l *eventlog.Log) {
			l.Audit(eventlog.AuditEvent{Time: at, Actor: "admin", Action: "push-revocation", Realm: "acme", Outcome: eventlog.OutcomeFailure,
				Reason: "client down"})
		},
		want: map[string]any{"action": "push-revocation", "outcome": "failure", "reason": "client down"},
	}, {
		name: "refused client authentication",
		emit: func(l *eventlog.Log) {
			l.AuthRefused(authfail.Record{Time: at, Refusal: authfail.Refusal{
				Attempt: authfail.Attempt{Kind: authfail.KindClient, Realm: "acme", ClientID: "app", Addr: "203.0.113.7"},
				Reason:  authfail.ReasonInvalidSecret, Status: 401, Detail: "invalid client or invalid client credentials"}})
		},
		want: map[string]any{"type": "auth_refused", "outcome": "failure", "kind": "client", "realm": "acme", "client_id": "app",
			"ip": "203.0.113.7", "reason": "invalid_secret", "status": json.Number("401"), "detail": "invalid client or invalid client credentials"},
		unset: []string{"count", "since", "offline", "session_id"},
	}, {
		name: "refused admin credential, summarised",
		emit: func(l *eventlog.Log) {
			l.AuthRefused(authfail.Record{Time: at, Since: at.Add(-10 * time.Second), Count: 41, Refusal: authfail.Refusal{
				Attempt: authfail.Attempt{Kind: authfail.KindAdmin, Realm: "acme", Addr: "203.0.113.7"},
				Reason:  authfail.ReasonInvalid, Status: 401, Actor: "anonymous", Action: "logout-all"}})
		},
		want: map[string]any{"type": "auth_refused", "kind": "admin", "actor": "anonymous", "action": "logout-all", "count": json.Number("41"),
			"since": "2026-03-01T09:20:20.123456789Z", "detail": "41 more refusals of the same kind in the last 10s"},
	}, {
		name: "overflow summary",
		emit: func(l *eventlog.Log) {
			l.AuthRefused(authfail.Record{Time: at, Since: at.Add(-10 * time.Second), Count: 5000, Overflow: true,
				Refusal: authfail.Refusal{Attempt: authfail.Attempt{Kind: authfail.KindFrontend}}})
		},
		want:  map[string]any{"type": "auth_refused", "kind": "frontend", "count": json.Number("5000")},
		unset: []string{"ip", "client_id", "realm", "reason"},
	}, {
		name: "tokens in free text are redacted",
		emit: func(l *eventlog.Log) {
			l.Emit(session.Event{Time: at, Type: session.EventRefreshRefused, Realm: "acme", Reason: "Invalid refresh token " + jwt})
			l.Audit(eventlog.AuditEvent{Time: at, Actor: "Bearer s3cr3t-credential", Action: "logout", Target: jwt, Reason: "token " + jwt})
		},
		want: map[string]any{"realm": "acme"},
	}, {
		name: "prose about a bearer credential is kept",
		emit: func(l *eventlog.Log) {
			l.Audit(eventlog.AuditEvent{Time: at, Actor: "anonymous", Action: "list-sessions", Outcome: eventlog.OutcomeFailure,
				Reason: "missing bearer credential"})
		},
		want: map[string]any{"reason": "missing bearer credential"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			l, err := eventlog.Open(path, eventlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, l)
			tc.emit(l)
			stop()
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{jwt, "s3cr3t-credential", "eyJ"} {
				if strings.Contains(string(raw), secret) {
					t.Fatalf("the event log holds %q:\n%s", secret, raw)
				}
			}
			lines := readLines(t, path)
			if len(lines) == 0 {
				t.Fatal("no line written")
			}
			for _, line := range lines {
				ts, ok := line["timestamp"].(string)
				if !ok {
					t.Fatalf("no timestamp: %v", line)
				}
				parsed, err := time.Parse(time.RFC3339Nano, ts)
				if err != nil || !strings.HasSuffix(ts, "Z") || !parsed.Equal(at) {
					t.Fatalf("timestamp %q: want %s in UTC, RFC 3339 with nanoseconds (%v)", ts, at, err)
				}
				for _, f := range []string{"type", "outcome"} {
					if line[f] == nil || line[f] == "" {
						t.Fatalf("field %s missing: %v", f, line)
					}
				}
			}
			line := lines[0]
			for k, v := range tc.want {
				if line[k] != v {
					t.Errorf("%s = %#v, want %#v (line %v)", k, line[k], v, line)
				}
			}
			for _, k := range tc.unset {
				if _, ok := line[k]; ok {
					t.Errorf("%s is set: %v", k, line)
				}
			}
		})
	}
}

// gate is a writer whose writes block until it is opened, as a stalled disk or a pipe
// nobody reads.
type gate struct {
	entered chan struct{} // receives once a write is blocked
	open    chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func TestFullQueueDropsAndCountsInsteadOfBlocking(t *testing.T) {
	const queue = 3
	g := &gate{entered: make(chan struct{}, 1), open: make(chan struct{})}
	var logged bytes.Buffer
	var logMu sync.Mutex
	log := hclog.New(&hclog.LoggerOptions{Output: writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logged.Write(p)
	}), Level: hclog.Warn})
	l := eventlog.New(g, nil, eventlog.Options{Queue: queue, Log: log})
	stop := run(t, l)

	ev := session.Event{Type: session.EventRefresh, Realm: "acme", ClientID: "app", SessionID: "s"}
	l.Emit(ev) // taken by the writer, which then blocks in Write
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never wrote")
	}
	const more = 50
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for range more {
			l.Emit(ev)
		}
		l.Audit(eventlog.AuditEvent{Actor: "admin", Action: "logout"})
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	if got, want := l.Dropped(), uint64(more+1-queue); got != want {
		t.Fatalf("Dropped() = %d, want %d (queue %d)", got, want, queue)
	}
	logMu.Lock()
	warned := strings.Count(logged.String(), "event log queue full")
	logMu.Unlock()
	if warned != 1 {
		t.Fatalf("the drop was reported %d times, want once (rate limited):\n%s", warned, logged.String())
	}

	close(g.open) // the disk comes back: what was queued is written, then flushed at stop
	stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := strings.Count(g.buf.String(), "\n"); n != 1+queue {
		t.Fatalf("%d lines written, want %d (the first and the queued ones):\n%s", n, 1+queue, g.buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// closeRecorder is a file whose Close is observed.
type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestStopFlushesQueuedEventsAndClosesTheFile(t *testing.T) {
	out := &closeRecorder{}
	l := eventlog.New(out, out, eventlog.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before it runs: everything queued must still be written
	for i := range 100 {
		l.Emit(session.Event{Type: session.EventLogin, Realm: "acme", SessionID: string(rune('a' + i%26))})
	}
	l.Run(ctx)
	if !out.closed {
		t.Fatal("the file was not closed")
	}
	if n := strings.Count(out.String(), "\n"); n != 100 {
		t.Fatalf("%d lines after stop, want 100", n)
	}
}

func TestOpenRefusesAnUnwritablePath(t *testing.T) {
	_, err := eventlog.Open(filepath.Join(t.TempDir(), "missing", "dir", "events.jsonl"), eventlog.Options{})
	if err == nil || !strings.Contains(err.Error(), "event log file") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func TestEventLogAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	for i := range 2 {
		l, err := eventlog.Open(path, eventlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, l)
		l.Emit(session.Event{Type: session.EventLogin, Realm: "acme", SessionID: string(rune('a' + i))})
		stop()
	}
	if lines := readLines(t, path); len(lines) != 2 || lines[0]["session_id"] != "a" || lines[1]["session_id"] != "b" {
		t.Fatalf("after two runs: %v", lines)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600: events name users", st.Mode().Perm(), err)
	}
}

// TestEventLogFileIs0600: events name users and sessions, so the file is sessiond's
// user's alone however permissive the umask, and one an older sessiond (or an operator's
// touch) left readable by others is made so, with a warning.
func TestEventLogFileIs0600(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, existing := range []os.FileMode{0, 0o644, 0o666} {
		t.Run(fmt.Sprintf("existing %v", existing), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if existing != 0 {
				if err := os.WriteFile(path, nil, existing); err != nil {
					t.Fatal(err)
				}
			}
			logs := &testlog.Buffer{}
			l, err := eventlog.Open(path, eventlog.Options{Log: hclog.New(&hclog.LoggerOptions{Output: logs})})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, l)
			l.Emit(session.Event{Type: session.EventLogin, Realm: "acme", SessionID: "a"})
			stop()
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v (%v), want 0600", st.Mode().Perm(), err)
			}
			if warned := strings.Contains(logs.String(), "readable by sessiond's user alone"); warned != (existing != 0) {
				t.Errorf("warned = %v for a file that was %v; log:\n%s", warned, existing, logs)
			}
		})
	}
}

// flaky is a file whose writes fail while fail is set; with partial set, a failing write
// first writes half of what it was given, as a full disk does.
type flaky struct {
	fail, partial atomic.Bool
	mu            sync.Mutex
	buf           bytes.Buffer
}

var errDiskFull = errors.New("no space left on device")

func (f *flaky) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail.Load() {
		n := 0
		if f.partial.Load() {
			n, _ = f.buf.Write(p[:len(p)/2])
		}
		return n, errDiskFull
	}
	return f.buf.Write(p)
}

func (f *flaky) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func login(id string) session.Event {
	return session.Event{Type: session.EventLogin, Realm: "acme", SessionID: id}
}

// A failed write loses what it held, counted, and no more: the next write goes through.
func TestWriteErrorsAreCountedAndWritingResumes(t *testing.T) {
	defer eventlog.SetWriteErrorEvery(0)() // every new failure is reported
	out := &flaky{}
	logs := &testlog.Buffer{}
	l := eventlog.New(out, nil, eventlog.Options{Log: hclog.New(&hclog.LoggerOptions{Output: logs})})
	stop := run(t, l)

	out.fail.Store(true)
	for i := range 3 {
		l.Emit(login(fmt.Sprint("lost-", i)))
	}
	eventually(t, "three dropped events", func() bool { return l.Dropped() == 3 })
	if n := logs.Count("write failed"); n != 1 {
		t.Errorf("the failure was reported %d times, want once until a write succeeds:\n%s", n, logs.String())
	}

	out.fail.Store(false)
	l.Emit(login("kept-1"))
	eventually(t, "kept-1 written", func() bool { return strings.Contains(out.String(), "kept-1") })
	if n := logs.Count("writing again"); n != 1 {
		t.Errorf("the recovery was reported %d times, want once", n)
	}

	out.fail.Store(true) // fails again after a success: reported again
	l.Emit(login("lost-3"))
	eventually(t, "a fourth dropped event", func() bool { return l.Dropped() == 4 })
	if n := logs.Count("write failed"); n != 2 {
		t.Errorf("the failures were reported %d times, want twice (once per failure after a success)", n)
	}

	out.fail.Store(false)
	l.Emit(login("kept-2"))
	stop()
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %v: %q", err, line)
		}
		ids = append(ids, fmt.Sprint(m["session_id"]))
	}
	if fmt.Sprint(ids) != "[kept-1 kept-2]" {
		t.Errorf("written %v, want [kept-1 kept-2]", ids)
	}
	if got := l.Dropped(); got != 4 {
		t.Errorf("Dropped() = %d, want 4", got)
	}
}

// A write that fails halfway leaves a partial line; the next line starts on its own.
func TestPartialWriteDoesNotSpoilTheNextLine(t *testing.T) {
	out := &flaky{}
	out.fail.Store(true)
	out.partial.Store(true)
	l := eventlog.New(out, nil, eventlog.Options{})
	stop := run(t, l)
	l.Emit(login("half"))
	eventually(t, "the dropped event", func() bool { return l.Dropped() == 1 })
	out.fail.Store(false)
	l.Emit(login("whole"))
	stop()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want the partial one and the next:\n%s", len(lines), out.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || m["session_id"] != "whole" {
		t.Fatalf("the line after a partial write: %q (%v)", lines[1], err)
	}
}

// An event after the log stopped is counted as dropped, not lost without a trace.
func TestEventsAfterStopAreCountedAsDropped(t *testing.T) {
	out := &closeRecorder{}
	logs := &testlog.Buffer{}
	l := eventlog.New(out, out, eventlog.Options{Log: hclog.New(&hclog.LoggerOptions{Output: logs})})
	stop := run(t, l)
	l.Emit(login("before"))
	stop()
	l.Emit(login("late"))
	l.Audit(eventlog.AuditEvent{Actor: "admin", Action: "logout"})
	if got := l.Dropped(); got != 2 {
		t.Fatalf("Dropped() = %d after two late events, want 2", got)
	}
	if logs.Count("event log stopped") != 1 {
		t.Errorf("the late events were not reported:\n%s", logs.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%d lines, want the one before the stop", n)
	}
}

// Events emitted while the log stops are each either written or counted.
func TestEveryEventIsWrittenOrCountedAcrossAStop(t *testing.T) {
	out := &flaky{}
	l := eventlog.New(out, nil, eventlog.Options{Queue: 64})
	stop := run(t, l)
	const emitters, each = 8, 500
	var wg sync.WaitGroup
	for g := range emitters {
		wg.Go(func() {
			for i := range each {
				l.Emit(login(fmt.Sprint(g, "-", i)))
			}
		})
	}
	time.Sleep(time.Millisecond)
	stop()
	wg.Wait()
	written := uint64(strings.Count(out.String(), "\n"))
	if written+l.Dropped() != emitters*each {
		t.Fatalf("%d written + %d dropped = %d, want every one of the %d events", written, l.Dropped(), written+l.Dropped(), emitters*each)
	}
}
