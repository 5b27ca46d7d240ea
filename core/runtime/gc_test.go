package runtime

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestRelaxGCDuringThePreload: the collector's percentage is raised while the preload
// runs and put back after; an operator's GOGC is left alone.
func TestRelaxGCDuringThePreload(t *testing.T) {
	current := func() int {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	if gogc, set := os.LookupEnv("GOGC"); set {
		t.Setenv("GOGC", gogc) // restored after the test
		os.Unsetenv("GOGC")
	}
	before := current()
	restore := RelaxGC(hclog.NewNullLogger())
	if got := current(); got != preloadGCPercent {
		t.Errorf("GOGC while preloading = %d, want %d", got, preloadGCPercent)
	}
	restore()
	if got := current(); got != before {
		t.Errorf("GOGC after the preload = %d, want %d again", got, before)
	}

	t.Setenv("GOGC", "150")
	restore = RelaxGC(hclog.NewNullLogger())
	if got := current(); got != before {
		t.Errorf("GOGC set by the operator: %d while preloading, want it left at %d", got, before)
	}
	restore()
}
