package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/sessiond/sessiond/core/httpapi"
)

// readinessEvery is how long one run of a costly readiness check (a store round trip)
// serves probes: a probe every few milliseconds from several load balancers must not turn
// into as many round trips, and a second is well under any probe's period, so a store that
// goes down shows in the next probe or the one after.
const readinessEvery = time.Second

// cachedCheck runs a readiness check at most once per ttl whatever the probe rate. A probe
// within ttl of the last result gets that result; concurrent probes after it share one run
// (the first runs it, the others wait for it), so a slow dependency never has more than one
// check of it under way and probes do not stack on it. Any check can be wrapped so.
type cachedCheck struct {
	name string
	ttl  time.Duration
	run  func(ctx context.Context) httpapi.Check
	now  func() time.Time

	mu      sync.Mutex
	at      time.Time // when last was taken; zero before the first run
	last    httpapi.Check
	running chan struct{} // closed when the run under way ends; nil when none is
}

func newCachedCheck(name string, ttl time.Duration, run func(ctx context.Context) httpapi.Check) *cachedCheck {
	return &cachedCheck{name: name, ttl: ttl, run: run, now: time.Now}
}

// get returns the check's result, at most ttl old.
func (c *cachedCheck) get(ctx context.Context) httpapi.Check {
	c.mu.Lock()
	if !c.at.IsZero() && c.now().Sub(c.at) < c.ttl {
		defer c.mu.Unlock()
		return c.last
	}
	if wait := c.running; wait != nil {
		c.mu.Unlock()
		select {
		case <-wait:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.last
		case <-ctx.Done():
			return httpapi.Check{Name: c.name, Status: "DOWN", Reason: "the probe ended before the check did: " + ctx.Err().Error()}
		}
	}
	done := make(chan struct{})
	c.running = done
	c.mu.Unlock()
	res := httpapi.Check{Name: c.name, Status: "DOWN", Reason: "the check failed"} // if run panics
	defer func() {
		c.mu.Lock()
		c.last, c.at, c.running = res, c.now(), nil
		c.mu.Unlock()
		close(done)
	}()
	// Not the probe's context: the result serves every probe waiting for it, whichever of
	// them goes away. The check bounds its own time.
	res = c.run(context.WithoutCancel(ctx))
	return res
}
