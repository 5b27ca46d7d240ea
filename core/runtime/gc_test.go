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

// TestRelaxGCDuringThePreload: the collector is off while the preload runs, under a
// memory limit that the sessions expected raise, and put back after; an operator's GOGC
// is left alone, and an operator's lower GOMEMLIMIT holds. Preloads that overlap put it
// back when the last ends.
func TestRelaxGCDuringThePreload(t *testing.T) {
	current := func() (gcPercent int, limit int64) {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}
	if gogc, set := os.LookupEnv("GOGC"); set {
		t.Setenv("GOGC", gogc) // restored after the test
		os.Unsetenv("GOGC")
	}
	beforeGC, beforeLimit := current()
	restore := RelaxGC(hclog.NewNullLogger())
	gc, limit := current()
	if gc != -1 {
		t.Errorf("GOGC while preloading = %d, want off", gc)
	}
	if base := int64(relaxed.base); limit != base+relaxGuard {
		t.Errorf("memory limit while preloading = %d, want %d (the runtime's memory and the guard)", limit, base+relaxGuard)
	}
	if got := expectHeap(1 << 30); got != beforeLimit {
		t.Errorf("expectHeap returned %d, want the operator's limit %d", got, beforeLimit)
	}
	if _, limit := current(); limit != int64(relaxed.base)+2<<30 {
		t.Errorf("memory limit with 1 GiB expected = %d, want the runtime's memory and 2 GiB", limit)
	}
	inner := RelaxGC(hclog.NewNullLogger()) // a preload that overlaps
	restore()
	if gc, _ := current(); gc != -1 {
		t.Errorf("GOGC while the second preload runs = %d, want off", gc)
	}
	inner()
	if gc, limit := current(); gc != beforeGC || limit != beforeLimit {
		t.Errorf("after the preloads: GOGC %d, limit %d; want %d, %d again", gc, limit, beforeGC, beforeLimit)
	}

	defer debug.SetMemoryLimit(debug.SetMemoryLimit(64 << 20))
	restore = RelaxGC(hclog.NewNullLogger())
	if _, limit := current(); limit != 64<<20 {
		t.Errorf("an operator's GOMEMLIMIT of 64 MiB: %d while preloading", limit)
	}
	restore()

	t.Setenv("GOGC", "150")
	restore = RelaxGC(hclog.NewNullLogger())
	if gc, _ := current(); gc != beforeGC {
		t.Errorf("GOGC set by the operator: %d while preloading, want it left at %d", gc, beforeGC)
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
