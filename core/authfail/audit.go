package authfail

import (
	"sync"
	"time"
)

// auditKey is what makes refusals "the same": aggregated into one summary.
type auditKey struct {
	kind                        Kind
	realm, client, addr, reason string
	actor                       string
}

func keyOf(r Refusal) auditKey {
	return auditKey{kind: r.Kind, realm: r.Realm, client: r.ClientID, addr: r.Addr, reason: r.Reason, actor: r.Actor}
}

// tally is one key's window: opened by a refusal that was written at once, it counts the
// ones after it.
type tally struct {
	since time.Time
	n     int
	last  Refusal // the latest counted, whose details the summary carries
}

// aggregator writes a key's first refusal at once and counts the next ones until the
// key's window closes, then writes one summary and opens a new window; a key that stayed
// quiet for a whole window is forgotten, so its next refusal is written at once again. At
// most max keys are held: a refusal for a new key when they are all in use is counted in
// its kind's overflow instead, written as one summary per window.
type aggregator struct {
	sink   Sink
	window time.Duration
	max    int

	mu            sync.Mutex
	keys          map[auditKey]*tally
	overflow      map[Kind]int
	overflowSince time.Time
	closed        bool // Run ended: write every refusal as it comes
}

func newAggregator(sink Sink, window time.Duration, maxKeys int) *aggregator {
	return &aggregator{sink: sink, window: window, max: maxKeys, keys: map[auditKey]*tally{}, overflow: map[Kind]int{}}
}

func (a *aggregator) record(r Refusal, now time.Time) {
	k := keyOf(r)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.sink.AuthRefused(Record{Time: now, Refusal: r})
		return
	}
	if t, ok := a.keys[k]; ok {
		t.n++
		t.last = r
		a.mu.Unlock()
		return
	}
	if len(a.keys) >= a.max {
		if len(a.overflow) == 0 {
			a.overflowSince = now
		}
		a.overflow[r.Kind]++
		a.mu.Unlock()
		return
	}
	a.keys[k] = &tally{since: now}
	a.mu.Unlock()
	// Outside the lock: the sink may take a lock of its own.
	a.sink.AuthRefused(Record{Time: now, Refusal: r})
}

// flush writes the summaries of the windows closed by now, or of all windows when final
// (which also ends aggregation).
func (a *aggregator) flush(now time.Time, final bool) {
	var out []Record
	a.mu.Lock()
	for k, t := range a.keys {
		if !final && now.Sub(t.since) < a.window {
			continue
		}
		if t.n == 0 {
			delete(a.keys, k)
			continue
		}
		out = append(out, Record{Time: now, Refusal: t.last, Count: t.n, Since: t.since})
		t.n, t.since = 0, now
		if final {
			delete(a.keys, k)
		}
	}
	if len(a.overflow) > 0 && (final || now.Sub(a.overflowSince) >= a.window) {
		for _, kind := range Kinds() {
			if n := a.overflow[kind]; n > 0 {
				out = append(out, Record{Time: now, Refusal: Refusal{Attempt: Attempt{Kind: kind}}, Count: n, Since: a.overflowSince, Overflow: true})
			}
		}
		clear(a.overflow)
	}
	if final {
		a.closed = true
	}
	a.mu.Unlock()
	for _, rec := range out {
		a.sink.AuthRefused(rec)
	}
}

func (a *aggregator) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}
