// Package offlinepreloadtest is the conformance suite every offline-preload provider must
// pass, in-process or through a plugin boundary. It uses only the offlinepreload.Provider
// interface.
//
// A provider's own test calls Run with a function that opens a fresh provider, not yet
// configured, and the options it works with. Sub-test names cite the rule of the contract
// they check.
package offlinepreloadtest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/spitest"
)

// Opener returns a fresh provider that has not been configured, and the options it works
// with (each check configures it with them, or with one of them made malformed). It
// registers its own cleanup.
type Opener = func(t *testing.T) (offlinepreload.Provider, spi.Config)

type check struct {
	name string
	run  func(t *testing.T, p offlinepreload.Provider)
}

// Run runs the suite: one sub-test per rule, each against its own provider from open.
func Run(t *testing.T, open Opener) {
	t.Helper()
	t.Run("Provider", func(t *testing.T) {
		generic := func(t *testing.T) (spi.Provider, spi.Config) { return open(t) }
		for _, c := range spitest.Checks(spi.OfflinePreload) {
			t.Run(c.Name, func(t *testing.T) { c.Run(t, generic) })
		}
	})
	t.Run("Plan", func(t *testing.T) {
		for _, c := range planChecks() {
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

func now() time.Time { return time.Date(2030, time.March, 14, 15, 9, 26, 0, time.UTC) }

// situations are what the core may ask with: the documented edges included.
func situations() map[string]offlinepreload.Situation {
	return map[string]offlinepreload.Situation{
		"a few realms and sessions":            {Realms: []string{"master", "conformance"}, OfflineCount: 1200, Now: now(), CacheCapacity: 0},
		"no offline session":                   {Realms: []string{"conformance"}, OfflineCount: 0, Now: now()},
		"counting failed (OfflineCount -1)":    {Realms: []string{"conformance"}, OfflineCount: -1, Now: now()},
		"no realm":                             {Now: now()},
		"more sessions than the cache holds":   {Realms: []string{"conformance"}, OfflineCount: 5_000_000, Now: now(), CacheCapacity: 10_000},
		"an unbounded cache (CacheCapacity 0)": {Realms: []string{"conformance"}, OfflineCount: 10, Now: now(), CacheCapacity: 0},
		"many realms":                          {Realms: manyRealms(500), OfflineCount: 1 << 40, Now: now()},
		"no time given (the zero Now)":         {Realms: []string{"conformance"}, OfflineCount: 10},
	}
}

func manyRealms(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "realm-" + string(rune('a'+i%26)) + time.Duration(i).String()
	}
	return out
}

// executable checks what the core needs of a plan: a mode it knows, and no negative
// figure (0 leaves the figure to the core's default).
func executable(t *testing.T, what string, p offlinepreload.Plan) {
	t.Helper()
	if p.Mode != offlinepreload.Lazy && p.Mode != offlinepreload.Eager {
		t.Errorf("%s: Mode %q, want %q or %q", what, p.Mode, offlinepreload.Lazy, offlinepreload.Eager)
	}
	for name, v := range map[string]int64{
		"PageSize": int64(p.PageSize), "Workers": int64(p.Workers), "Timeout": int64(p.Timeout),
		"ActiveWithin": int64(p.ActiveWithin), "ProgressEvery": int64(p.ProgressEvery),
	} {
		if v < 0 {
			t.Errorf("%s: %s is negative (%d) in %+v", what, name, v, p)
		}
	}
}

func planChecks() []check {
	return []check{
		{"every situation gets an executable plan", func(t *testing.T, p offlinepreload.Provider) {
			for name, s := range situations() {
				plan, err := p.Plan(t.Context(), s)
				if err != nil {
					t.Errorf("Plan for %s: %v", name, err)
					continue
				}
				executable(t, name, plan)
			}
		}},
		{"a situation out of range is ErrInvalid or gets an executable plan", func(t *testing.T, p offlinepreload.Provider) {
			for name, s := range map[string]offlinepreload.Situation{
				"negative count":    {Realms: []string{"conformance"}, OfflineCount: -42, Now: now()},
				"negative capacity": {Realms: []string{"conformance"}, OfflineCount: 10, Now: now(), CacheCapacity: -1},
				"empty realm id":    {Realms: []string{""}, OfflineCount: 10, Now: now()},
			} {
				plan, err := p.Plan(t.Context(), s)
				if err != nil {
					if !errors.Is(err, spi.ErrInvalid) {
						t.Errorf("Plan for %s: %v; want a plan, or an error wrapping spi.ErrInvalid", name, err)
					}
					continue
				}
				executable(t, name, plan)
			}
		}},
		{"concurrent calls each get a plan", func(t *testing.T, p offlinepreload.Provider) {
			var wg sync.WaitGroup
			for name, s := range situations() {
				wg.Go(func() {
					plan, err := p.Plan(t.Context(), s)
					if err != nil {
						t.Errorf("Plan for %s: %v", name, err)
						return
					}
					executable(t, name, plan)
				})
			}
			wg.Wait()
		}},
		{"after the context ended: its error, or a plan", func(t *testing.T, p offlinepreload.Provider) {
			for _, e := range spitest.Ended(t) {
				t.Run(e.Name, func(t *testing.T) {
					plan, err := p.Plan(e.Ctx, situations()["a few realms and sessions"])
					if err != nil {
						if !errors.Is(err, e.Err) {
							t.Errorf("Plan with a context %s: %v; want a plan, or an error wrapping %v", e.Name, err, e.Err)
						}
						return
					}
					executable(t, "a plan after the context ended", plan)
				})
			}
		}},
	}
}
