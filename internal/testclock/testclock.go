// Package testclock is the controllable time source of tests: one clock shared by the
// services under test, moved by the test instead of by sleeping.
package testclock

import (
	"fmt"
	"sync"
	"time"
)

// Clock is safe for concurrent use; its Now method is what services take as their clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t; time never runs backwards, so an earlier t panics.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		panic(fmt.Sprintf("clock moved back from %s to %s", c.now, t))
	}
	c.now = t
}
