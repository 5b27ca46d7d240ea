package runtime

import (
	"os"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
)

// preloadGCPercent is the collector's GOGC while an offline preload runs. A preload grows
// the heap by what it keeps (a million cached sessions are about 800 MB) and makes
// little garbage besides (its pages are lent and reused), so the default of 100, which
// marks everything kept so far at each doubling of the heap, marks the whole cache about
// twice over; at 400 it is marked about once, for a heap no larger, since there is little
// garbage to let it grow. A preload of a million sessions took 10–15% less time.
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
