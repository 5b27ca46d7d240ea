package runtime

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// startPolicies builds the not-before policies over store, the provider itself (records are
// not cached, and the provider's change feed reaches every node), and follows it until Stop.
func (rt *Runtime) startPolicies(store usersessions.Provider, now func() time.Time) *revocation.Policies {
	rt.policies = revocation.New(revocation.Deps{Store: store, Realms: rt.realms, Log: rt.log.Named("not-before"), Now: now})
	rt.goBackground(rt.policies.Run)
	return rt.policies
}

// Policies returns the not-before policies in force on this node; the admin API reads and
// sets them through it.
func (rt *Runtime) Policies() *revocation.Policies { return rt.policies }

// policiesCheck is DOWN until the stored policies have been loaded once: before that, this
// node would accept tokens an operator has revoked. A feed that breaks later leaves it UP,
// as it does the session cache: the policies last read stay in force, and the reload after
// the feed is back brings what was missed.
func (rt *Runtime) policiesCheck() httpapi.Check {
	c := httpapi.Check{Name: "not-before policies", Status: "UP"}
	if !rt.policies.Ready() {
		c.Status, c.Reason = "DOWN", "the stored not-before policies are not loaded yet"
	}
	return c
}

// policiesWait bounds how long Start waits for the first load of the not-before policies
// before it serves. The load is a few store round trips; waiting for it keeps a node from
// accepting revoked tokens in its first moments. A store too slow for the bound does not
// keep the node from starting: readiness says DOWN until the load is done.
const policiesWait = 10 * time.Second

// awaitPolicies waits for the first load of the not-before policies, or policiesWait.
func (rt *Runtime) awaitPolicies(ctx context.Context) {
	select {
	case <-rt.policies.Loaded():
	case <-ctx.Done():
	case <-time.After(policiesWait):
		rt.log.Warn("serving before the not-before policies are loaded; readiness says DOWN until they are", "waited", policiesWait)
	}
}
