package host_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

func TestConformance(t *testing.T) {
	t.Run("plugin", func(t *testing.T) {
		usersessionstest.Run(t, prestarted(t, 2))
	})
	t.Run("in-process", func(t *testing.T) {
		usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
			h, _ := newHost(t, host.Options{})
			_, us := startMemory(t, h, "", nil)
			return us
		})
	})
}

// prestarted returns an open for the conformance suite that hands every subtest a fresh
// memory plugin process, started ahead of time by workers so that process start-ups
// overlap with each other and with the subtests.
func prestarted(t *testing.T, workers int) func(t *testing.T) usersessions.Provider {
	type started struct {
		h   *host.Host
		us  usersessions.Provider
		err error
	}
	spec := selfSpec(t, "serve", spi.UserSessions, memory.ID)
	ready := make(chan started)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				s := started{h: host.New(hclog.NewNullLogger(), host.Options{})}
				s.us, s.err = startConfigured(s.h, spec)
				select {
				case ready <- s:
				case <-quit:
					stopHost(t, s.h)
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		close(quit)
		wg.Wait()
	})
	return func(t *testing.T) usersessions.Provider {
		s := <-ready
		t.Cleanup(func() { stopHost(t, s.h) })
		if s.err != nil {
			t.Fatal(s.err)
		}
		return s.us
	}
}

func startConfigured(h *host.Host, spec host.Spec) (usersessions.Provider, error) {
	ctx := context.Background()
	p, err := h.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := p.Configure(ctx, defaults(p.Descriptor(), nil)); err != nil {
		return nil, err
	}
	return p.Provider().(usersessions.Provider), nil
}

func stopHost(t testing.TB, h *host.Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}
