package runtime

import (
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testlog"
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

// TestGrowHeapForThePreload: the heap grows by what the sessions coming will take, at
// most half of a memory limit, and not at all for a few sessions.
func TestGrowHeapForThePreload(t *testing.T) {
	if goruntime.GOOS != "linux" {
		t.Skip("the heap is grown ahead on Linux only")
	}
	grown := func(sessions int) string {
		log := &testlog.Buffer{}
		GrowHeapFor(hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Debug}), sessions)
		return log.String()
	}
	if out := grown(100_000); !strings.Contains(out, fmt.Sprintf("bytes=%d", 100_000*preloadHeapPerSession)) {
		if strings.TrimSpace(out) == "" {
			t.Skip("this kernel cannot map pages in ahead (MADV_POPULATE_WRITE, Linux 5.14+)")
		}
		t.Errorf("100k sessions coming: %q, want the heap grown by %d bytes", out, 100_000*preloadHeapPerSession)
	}
	if out := grown(1000); out != "" {
		t.Errorf("1000 sessions coming: %q, want no growth", out)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(64 << 20))
	if out := grown(1_000_000); !strings.Contains(out, fmt.Sprintf("bytes=%d", 32<<20)) {
		t.Errorf("1M sessions coming under a limit of 64 MiB: %q, want the heap grown by half the limit", out)
	}
}
