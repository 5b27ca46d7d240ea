package usersessionstest

import (
	"context"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// probeChecks apply to the optional interfaces a store may implement besides Provider.
func probeChecks() []check {
	return []check{
		{"a store that can write says so, probe after probe", func(t *testing.T, p usersessions.Provider) {
			prober, ok := p.(usersessions.WriteProber)
			if !ok {
				t.Skipf("%T does not implement WriteProber (optional)", p)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for range 2 {
				if err := prober.ProbeWrite(ctx); err != nil {
					t.Fatalf("ProbeWrite on a writable store: %v", err)
				}
			}
		}},
		{"a write bound is not negative", func(t *testing.T, p usersessions.Provider) {
			b, ok := p.(usersessions.WriteBounder)
			if !ok {
				t.Skipf("%T does not implement WriteBounder (optional)", p)
			}
			if d, err := b.WriteTimeout(t.Context()); err != nil || d < 0 {
				t.Errorf("WriteTimeout() = %v, %v; want 0 or more", d, err)
			}
		}},
	}
}
