package push

import (
	"context"
	"fmt"
	"time"
)

// Run retries due deliveries until ctx ends: those whose earlier attempts failed, and those
// a node (this one before a restart, or another) stored but did not finish. It looks every
// PollInterval, at once again when a full batch was due, and at once when Wake is called.
func (o *Outbox) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-o.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		n, err := o.RetryDue(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			o.log.Warn("cannot read due revocation pushes; trying again", "every", o.opts.PollInterval, "error", err)
		case err == nil && failing:
			o.log.Info("due revocation pushes are read again")
		}
		failing = err != nil
		wait := o.opts.PollInterval
		if err == nil && n == o.opts.BatchSize {
			wait = 0 // more may be due
		}
		timer.Reset(wait)
	}
}

// RetryDue claims up to a batch of the deliveries due now, leased so that no other node
// attempts them meanwhile, attempts each once within the lease and records the outcomes.
// It returns how many it attempted.
func (o *Outbox) RetryDue(ctx context.Context) (int, error) {
	actx, cancel := o.leased(ctx) // from before the claim: the lease starts there
	defer cancel()
	ds, err := o.store.Claim(actx, o.now(), o.opts.Lease, o.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("push: claim due deliveries: %w", err)
	}
	if len(ds) == 0 {
		return 0, nil
	}
	before := make([]int, len(ds))
	for i, d := range ds {
		// The store counts attempts started: the first, made as the delivery was stored,
		// and one per claim, this one included.
		before[i] = max(d.Attempts-1, 0)
	}
	o.attempt(actx, ds, before)
	return len(ds), nil
}
