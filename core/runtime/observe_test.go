package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/session"
)

// The event log stops last: an event emitted while the background work ends is written,
// and one emitted after the runtime stopped is counted as dropped.
func TestEventLogOutlivesTheBackgroundWork(t *testing.T) {
	e := newEnv(t)
	events := filepath.Join(e.dir, "events.jsonl")
	rt := e.start(Options{}, nil, "--event-log-file="+events)
	waitReady(t, rt, nil)
	rt.goBackground(func(ctx context.Context) {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a worker finishing its last item
		rt.obs.events.Emit(session.Event{Type: session.EventLogout, Realm: testRealm, SessionID: "ended-at-shutdown"})
	})
	stop(t, rt)
	raw, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "ended-at-shutdown") {
		t.Errorf("the event of the background work's end is not in the event log:\n%s", raw)
	}
	if got := rt.obs.eventLog.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d before any late event, want 0", got)
	}
	rt.obs.events.Emit(session.Event{Type: session.EventLogout, Realm: testRealm, SessionID: "after-stop"})
	if got := rt.obs.eventLog.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d after an event past the stop, want 1", got)
	}
}

// Without an event log file, events go to the "events" logger as the event log's lines:
// the free text redacted, the refusal in the closed set.
func TestEventLoggerLinesAreTheEventLogs(t *testing.T) {
	const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
	var buf bytes.Buffer
	logger := eventLog{hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})}
	logger.Emit(session.Event{Type: session.EventRefreshRefused, Realm: "acme", ClientID: "app", SessionID: "s1",
		Reason: "Invalid refresh token " + jwt, Refusal: "Not A Class", Offline: true})
	line := buf.String()
	if strings.Contains(line, "eyJ") {
		t.Errorf("the events logger shows a token: %s", line)
	}
	for _, want := range []string{"type=refresh_refused", "outcome=failure", "reason=other", "client_id=app", "session_id=s1",
		`detail="Invalid refresh token [redacted]"`, "offline=true"} {
		if !strings.Contains(line, want) {
			t.Errorf("the events logger's line lacks %s: %s", want, line)
		}
	}
}
