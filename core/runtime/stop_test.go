package runtime

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testlog"
)

// TestStopDoesNotWaitForeverForTheEventLog: a writer that never finishes (an event log on
// a pipe nobody reads) holds the stop at most the limit, and the log says what was lost; a
// writer that finishes is waited for, without the warning.
func TestStopDoesNotWaitForeverForTheEventLog(t *testing.T) {
	for _, c := range []struct {
		name     string
		finishes bool
	}{{"blocked writer", false}, {"writer that finishes", true}} {
		t.Run(c.name, func(t *testing.T) {
			logs := &testlog.Buffer{}
			rt := &Runtime{log: hclog.New(&hclog.LoggerOptions{Output: logs})}
			done := make(chan struct{})
			stopped := false
			rt.obs.eventLogStop = func() {
				stopped = true
				if c.finishes {
					close(done)
				}
			}
			rt.obs.eventLogDone = done
			limit := time.Hour // a finishing writer must not wait for the limit
			if !c.finishes {
				limit = 50 * time.Millisecond
			}
			rt.stopEventLog(limit)
			if !stopped {
				t.Fatal("the event log's writer was not told to stop")
			}
			if warned := strings.Contains(logs.String(), "did not finish writing"); warned == c.finishes {
				t.Errorf("warning logged: %v, want %v; log:\n%s", warned, !c.finishes, logs)
			}
			rt.stopEventLog(limit) // a second stop is a no-op
		})
	}
}
