package runtime

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/core/dpop"
)

// cleanProofs removes the records of DPoP proofs too old to be accepted anyway (their jtis,
// kept so that no node accepts a proof twice) every cleanup interval until ctx ends. Every
// node does it: a record another node removed first is skipped.
func (rt *Runtime) cleanProofs(ctx context.Context, proofs *dpop.Checker) {
	every := rt.settings.CleanupInterval
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := proofs.Cleanup(ctx); err != nil {
				rt.log.Warn("old DPoP proof records could not all be removed; the next pass tries again", "error", err)
			} else if n > 0 {
				rt.log.Debug("old DPoP proof records removed", "records", n)
			}
		}
	}
}
