package runtime

import (
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/prefault"
)

// preloadGCPercent is the collector's GOGC while an offline preload runs. It was chosen
// when the cache kept its sessions in the Go heap (a million were about 800 MB): the
// default of 100 marked the whole cache about twice over, 400 about once, and a preload of
// a million sessions took 10–15% less time. The cache now keeps them outside the heap
// (core/cache), so the collector marks little either way; what 400 still saves has not
// been measured again (bench/preload), and ReturnPreloadGarbage hands back what the
// larger heap held once the preload is done.
const preloadGCPercent = 400

// RelaxGC sets the collector's percentage to preloadGCPercent and returns what puts it
// back, unless the operator chose one (GOGC is set): theirs is kept. A memory limit
// (GOMEMLIMIT) holds either way. The runtime calls it around its offline preload; it is
// exported for a benchmark that runs a preload as the runtime does, without one. The
// setting is the process's: where several runtimes share a process (tests), preloads that
// overlap may leave it at preloadGCPercent, which changes only how often the collector runs.
func RelaxGC(log hclog.Logger) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	before := debug.SetGCPercent(preloadGCPercent)
	log.Debug("garbage collector relaxed while the offline preload runs", "gogc", preloadGCPercent)
	return func() { debug.SetGCPercent(before) }
}

// ReturnPreloadGarbage returns to the OS the memory the preload's garbage held, once it
// is done (debug.FreeOSMemory): the pages read, decoded and copied into the cache's
// records. The cache keeps its sessions outside the Go heap, so the live heap after a
// preload is small, but the heap grew by a few times that meanwhile (more under
// RelaxGC's percentage), and the collector would hand those pages back only slowly:
// sessiond with 100k sessions preloaded stayed about 60 MB above its live data. It costs
// one collection, which marks the small heap (tens of milliseconds at a million sessions
// cached). The runtime calls it after its offline preload.
func ReturnPreloadGarbage(log hclog.Logger) {
	start := time.Now()
	debug.FreeOSMemory()
	log.Debug("memory of the offline preload's garbage returned", "took", time.Since(start).Round(time.Millisecond))
}

// preloadHeapPerSession is what the heap grows by, ahead of a preload, for each session it
// is about to cache: a little under what a cached session takes of the Go heap (its slot
// and its place in the index, 40–44 bytes; its record is outside the heap, in chunks the
// cache maps in itself), so that little of it is left unused.
const preloadHeapPerSession = 36

// minHeapGrowth is the least growth worth a collection.
const minHeapGrowth = 16 << 20

// GrowHeapFor grows the heap, at once, by what the cache is about to take for sessions
// a preload is about to import (prefault.Heap): the pages are mapped in by one call
// instead of faulting in one by one as the cache grows, which was a fifth of a preload's
// time on a 2-vCPU VM. Under a memory limit (GOMEMLIMIT) it grows by half the limit at
// most. It does nothing where the kernel cannot map pages in ahead (not Linux 5.14+). The
// runtime calls it through preload.Deps.Expect; it is exported for a benchmark that runs a
// preload as the runtime does.
func GrowHeapFor(log hclog.Logger, sessions int) {
	n := int64(sessions) * preloadHeapPerSession
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		n = min(n, limit/2)
	}
	if n < minHeapGrowth {
		return
	}
	start := time.Now()
	if prefault.Heap(int(n)) {
		log.Debug("heap grown for the offline preload", "sessions", sessions, "bytes", n, "took", time.Since(start).Round(time.Millisecond))
	}
}
