// Package usersessionstest is the conformance suite every user-sessions provider must pass,
// in-process or through a plugin boundary. It uses only the usersessions.Provider interface.
//
// A provider's own test calls Run with a function that opens a fresh, configured, empty
// provider. Sub-test names cite the rule of the contract they check.
package usersessionstest

import (
	"testing"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// Opener returns a fresh, configured, empty provider and registers its own cleanup.
type Opener = func(t *testing.T) usersessions.Provider

type check struct {
	name string
	run  func(t *testing.T, p usersessions.Provider)
}

// Run runs the suite: one sub-test per rule, each against its own provider from open. The
// suite closes nothing; open registers its own t.Cleanup.
func Run(t *testing.T, open Opener) {
	t.Helper()
	groups := []struct {
		name   string
		checks []check
	}{
		{"Create", createChecks()},
		{"Get", getChecks()},
		{"Update", updateChecks()},
		{"Touch", touchChecks()},
		{"PutClientSessions", putClientChecks()},
		{"Rotate", rotateChecks()},
		{"Delete", deleteChecks()},
		{"DeleteMatching", deleteMatchingChecks()},
		{"DeleteExpired", deleteExpiredChecks()},
		{"List", listChecks()},
		{"CountByClient", countByClientChecks()},
		{"Stream", streamChecks()},
		{"Watch", watchChecks()},
		{"Records", recordChecks()},
		{"Outbox", outboxChecks()},
		{"Text", textChecks()},
		{"Optional", probeChecks()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.checks {
				t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
			}
		})
	}
}
