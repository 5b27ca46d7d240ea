package authfail

// Tracked is how many keys the audit and the limiter hold, for the tests of their bounds.
func (g *Guard) Tracked() (auditKeys, addresses, clients, knownGood int) {
	auditKeys = g.audit.size()
	addresses, clients, knownGood = g.limits.size()
	return
}
