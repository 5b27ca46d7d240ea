package runtime

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/prefault"
)

// While an offline preload runs, the collector is off (GOGC=off), unless the operator chose
// GOGC. A preload makes little garbage (its pages are lent and reused) and, since the
// cache keeps its records outside the Go heap (core/cache), keeps little in the heap
// either: each collection would mark what is there for nothing. When the cache was in the
// heap (a million sessions about 800 MB) the default of 100 marked it about twice over and
// 400 (sessions 5 to 7) once, about a tenth of sessiond's CPU in a preload of a million.
// ReturnPreloadGarbage hands the garbage back once the preload is done. A memory limit guards
// the heap instead: it may grow by relaxGuard, and by twice what the sessions coming are
// expected to take once they are counted (GrowHeapFor), over what it held when the preload
// began; past that the collector runs as under any GOMEMLIMIT. An operator's lower
// GOMEMLIMIT holds. Both are put back when the preload ends.
//
// The settings are the process's. Where several runtimes share a process (tests), the
// first preload relaxes them and the last one to end puts them back.
var relaxed struct {
	sync.Mutex
	n         int    // preloads under way
	gcPercent int    // to put back
	limit     int64  // to put back: the operator's GOMEMLIMIT (math.MaxInt64: none)
	base      uint64 // the runtime's memory when the first began
	expected  int64  // bytes the preloads expect to take (GrowHeapFor)
}

// relaxGuard is the least the heap may grow by with the collector off.
const relaxGuard = 1 << 30

// RelaxGC turns the collector off while a preload runs, and returns what puts it back
// (see relaxed). The runtime calls it around its offline preload; it is exported for a
// benchmark that runs a preload as the runtime does, without one.
func RelaxGC(log hclog.Logger) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	relaxed.Lock()
	defer relaxed.Unlock()
	relaxed.n++
	if relaxed.n == 1 {
		relaxed.limit = debug.SetMemoryLimit(-1)
		relaxed.base, relaxed.expected = runtimeMemory(), 0
		relaxed.gcPercent = debug.SetGCPercent(-1)
		guardLocked()
		log.Debug("garbage collector off while the offline preload runs", "memory_limit", debug.SetMemoryLimit(-1))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			relaxed.Lock()
			defer relaxed.Unlock()
			relaxed.n--
			if relaxed.n == 0 {
				debug.SetMemoryLimit(relaxed.limit)
				debug.SetGCPercent(relaxed.gcPercent)
			}
		})
	}
}

// guardLocked sets the memory limit that guards a heap with the collector off.
func guardLocked() {
	guard := relaxed.base + uint64(max(relaxGuard, 2*relaxed.expected))
	debug.SetMemoryLimit(min(relaxed.limit, int64(min(guard, math.MaxInt64))))
}

// expectHeap records that a preload expects its heap to grow by n bytes, raising the guard
// of a collector that is off (RelaxGC), and returns the operator's memory limit.
func expectHeap(n int64) (limit int64) {
	relaxed.Lock()
	defer relaxed.Unlock()
	if relaxed.n == 0 {
		return debug.SetMemoryLimit(-1)
	}
	relaxed.expected += n
	guardLocked()
	return relaxed.limit
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

// runtimeMemory is the memory the Go runtime holds from the OS, as a memory limit counts it.
func runtimeMemory() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
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
// most. With the collector off for the preload (RelaxGC), it raises the limit that guards
// the heap by twice what it grows it by. It does nothing where the kernel cannot map pages in ahead (not Linux 5.14+). The
// runtime calls it through preload.Deps.Expect; it is exported for a benchmark that runs a
// preload as the runtime does.
func GrowHeapFor(log hclog.Logger, sessions int) {
	n := int64(sessions) * preloadHeapPerSession
	if limit := expectHeap(n); limit != math.MaxInt64 {
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
