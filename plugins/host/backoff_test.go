package host

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestBeforeRestart(t *testing.T) {
	h := New(hclog.NewNullLogger(), Options{})
	defer h.spawner.stop()
	p := &Plugin{host: h, log: hclog.NewNullLogger(), conn: &switchConn{name: "user-sessions/x"}}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	want := []time.Duration{ms(100), ms(200), ms(400), ms(800), ms(1600), ms(3200), ms(6400),
		ms(12800), ms(25600), 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := p.beforeRestart(i+1, false); got != w {
			t.Errorf("delay before restart %d = %s, want %s", i+1, got, w)
		}
	}
	if p.state != StateRestarting || p.restarts != len(want) {
		t.Errorf("state %s, restarts %d; want restarting, %d", p.state, p.restarts, len(want))
	}
	if _, _, err := p.conn.conn(); err == nil || err.Error() != "rpc error: code = Unavailable desc = provider user-sessions/x is restarting (attempt 12)" {
		t.Errorf("call while restarting: %v", err)
	}

	// A crash loop waits the cap even for an early attempt, and says so until it settles.
	p.lastErr = "plugin exited: exit status 3"
	if got := p.beforeRestart(2, true); got != 30*time.Second {
		t.Errorf("delay in a crash loop = %s, want the 30s cap", got)
	}
	if got := p.beforeRestart(3, false); got != 30*time.Second || p.state != StateCrashLooping {
		t.Errorf("after a crash loop began: delay %s, state %s; want 30s, crash-looping", got, p.state)
	}
	if want := "crash loop: more than 5 restarts within 1m0s; last: plugin exited: exit status 3"; p.lastErr != want {
		t.Errorf("last error %q, want %q", p.lastErr, want)
	}
}
