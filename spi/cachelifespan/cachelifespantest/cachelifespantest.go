// Package cachelifespantest is the conformance suite every cache-lifespan provider must
// pass, in-process or through a plugin boundary. It uses only the cachelifespan.Provider
// interface.
//
// A provider's own test calls Run with a function that opens a fresh provider, not yet
// configured, and the options it works with. Sub-test names cite the rule of the contract
// they check.
package cachelifespantest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/spitest"
)

// Opener returns a fresh provider that has not been configured, and the options it works
// with (each check configures it with them, or with one of them made malformed). It
// registers its own cleanup.
type Opener = func(t *testing.T) (cachelifespan.Provider, spi.Config)

type check struct {
	name string
	run  func(t *testing.T, p cachelifespan.Provider)
}

// Run runs the suite: one sub-test per rule, each against its own provider from open.
func Run(t *testing.T, open Opener) {
	t.Helper()
	t.Run("Provider", func(t *testing.T) {
		generic := func(t *testing.T) (spi.Provider, spi.Config) { return open(t) }
		for _, c := range spitest.Checks(spi.CacheLifespan) {
			t.Run(c.Name, func(t *testing.T) { c.Run(t, generic) })
		}
	})
	t.Run("Lifespans", func(t *testing.T) {
		for _, c := range lifespanChecks() {
			t.Run(c.name, func(t *testing.T) {
				p, cfg := open(t)
				if err := p.Configure(t.Context(), cfg); err != nil {
					t.Fatalf("Configure: %v", err)
				}
				c.run(t, p)
			})
		}
	})
}

// every is an entry of each kind, online and offline, created here and imported, for each
// of remainings.
func every(remainings ...time.Duration) []cachelifespan.Entry {
	var out []cachelifespan.Entry
	for _, r := range remainings {
		for _, kind := range []cachelifespan.EntryKind{cachelifespan.UserSessionEntry, cachelifespan.ClientSessionEntry} {
			for _, offline := range []bool{false, true} {
				for _, imported := range []bool{false, true} {
					e := cachelifespan.Entry{Kind: kind, RealmID: "conformance", Offline: offline, Imported: imported, Remaining: r}
					if kind == cachelifespan.ClientSessionEntry {
						e.ClientID = "app"
					}
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// lifespans calls Lifespans and checks what every answer must be.
func lifespans(t *testing.T, p cachelifespan.Provider, entries []cachelifespan.Entry) []time.Duration {
	t.Helper()
	got, err := p.Lifespans(t.Context(), entries)
	if err != nil {
		t.Fatalf("Lifespans of %d entries: %v", len(entries), err)
	}
	if !bounded(t, entries, got) {
		t.FailNow()
	}
	return got
}

// bounded checks one lifespan per entry, none negative, none past the entry's Remaining.
func bounded(t *testing.T, entries []cachelifespan.Entry, got []time.Duration) bool {
	t.Helper()
	if len(got) != len(entries) {
		t.Errorf("Lifespans answered %d lifespans for %d entries; want one per entry, in order", len(got), len(entries))
		return false
	}
	ok := true
	for i, e := range entries {
		switch {
		case got[i] < 0:
			t.Errorf("entry %d (%+v): lifespan %s is negative; 0 means do not cache", i, e, got[i])
			ok = false
		case got[i] > max(e.Remaining, 0):
			t.Errorf("entry %d (%+v): lifespan %s is longer than the entry's Remaining %s", i, e, got[i], e.Remaining)
			ok = false
		}
	}
	return ok
}

func lifespanChecks() []check {
	const day = 24 * time.Hour
	return []check{
		{"an empty batch has no lifespans and no error", func(t *testing.T, p cachelifespan.Provider) {
			for _, entries := range [][]cachelifespan.Entry{nil, {}} {
				got, err := p.Lifespans(t.Context(), entries)
				if err != nil || len(got) != 0 {
					t.Errorf("Lifespans(%#v) = %v, %v; want none and no error", entries, got, err)
				}
			}
		}},
		{"one lifespan per entry, from 0 to its Remaining", func(t *testing.T, p cachelifespan.Provider) {
			lifespans(t, p, every(time.Nanosecond, time.Second, 30*time.Minute, 10*time.Hour, 60*day, 1<<62))
		}},
		{"an entry with nothing remaining is not cached", func(t *testing.T, p cachelifespan.Provider) {
			entries := every(0, -time.Second, -60*day, -1<<62)
			for i, l := range lifespans(t, p, entries) {
				if l != 0 {
					t.Errorf("entry %d (%+v): lifespan %s, want 0", i, entries[i], l)
				}
			}
		}},
		{"a large batch keeps its order", func(t *testing.T, p cachelifespan.Provider) {
			// Remainings that fall and rise: an answer shifted by one entry, or reversed,
			// exceeds some entry's Remaining.
			var entries []cachelifespan.Entry
			for i := range 5000 {
				r := time.Duration(i%50) * time.Second
				if i%2 == 1 {
					r = 0
				}
				e := every(r)[i%8]
				entries = append(entries, e)
			}
			lifespans(t, p, entries)
		}},
		{"an entry of an unknown kind is ErrInvalid or answered like any other", func(t *testing.T, p cachelifespan.Provider) {
			entries := []cachelifespan.Entry{
				{Kind: 0, RealmID: "conformance", Remaining: time.Hour},
				{Kind: 99, RealmID: "conformance", Offline: true, Imported: true, Remaining: time.Hour},
				{Kind: cachelifespan.ClientSessionEntry, RealmID: "", ClientID: "", Remaining: time.Hour},
			}
			got, err := p.Lifespans(t.Context(), entries)
			if err != nil {
				if !errors.Is(err, spi.ErrInvalid) {
					t.Errorf("Lifespans of malformed entries: %v; want lifespans, or an error wrapping spi.ErrInvalid", err)
				}
				return
			}
			bounded(t, entries, got)
		}},
		{"concurrent calls each get their own answer", func(t *testing.T, p cachelifespan.Provider) {
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					entries := every(time.Duration(g+1)*time.Minute, 0)
					got, err := p.Lifespans(t.Context(), entries)
					if err != nil {
						t.Errorf("Lifespans: %v", err)
						return
					}
					bounded(t, entries, got)
				})
			}
			wg.Wait()
		}},
		{"after the context ended: its error, or a full answer", func(t *testing.T, p cachelifespan.Provider) {
			for _, e := range spitest.Ended(t) {
				t.Run(e.Name, func(t *testing.T) {
					entries := every(time.Minute)
					got, err := p.Lifespans(e.Ctx, entries)
					if err != nil {
						if !errors.Is(err, e.Err) {
							t.Errorf("Lifespans with a context %s: %v; want lifespans, or an error wrapping %v", e.Name, err, e.Err)
						}
						return
					}
					bounded(t, entries, got)
				})
			}
		}},
	}
}
