// Package testmem gives a test the in-memory user-sessions store, configured and closed
// with the test: what most packages' tests stand on, written once.
package testmem

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
)

// Store returns a configured in-memory store, node "test", closed when tb ends.
func Store(tb testing.TB) *memory.Provider {
	tb.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{spi.HostNodeID: "test"}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(context.Background()) })
	return p
}
