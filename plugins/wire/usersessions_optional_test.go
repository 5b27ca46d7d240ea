package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	us "github.com/sessiond/sessiond/spi/usersessions"
)

// probingUserSessions is a store with the optional abilities.
type probingUserSessions struct {
	*fakeUserSessions
	probeErr error
	timeout  time.Duration
}

func (p *probingUserSessions) ProbeWrite(context.Context) error { return p.probeErr }
func (p *probingUserSessions) WriteTimeout(context.Context) (time.Duration, error) {
	return p.timeout, nil
}

// TestOptionalAbilitiesCrossTheWire: a plugin's write probe and write bound reach the host
// with the probe's reason and sentinel (a standby is "unavailable", not a plain error); a
// provider without them reads as writable and unbounded.
func TestOptionalAbilitiesCrossTheWire(t *testing.T) {
	standby := fmt.Errorf("write probe: cannot set transaction read-write mode during recovery: %w", spi.ErrUnavailable)
	for _, tc := range []struct {
		name        string
		provider    spi.Provider
		wantProbe   error
		wantTimeout time.Duration
	}{
		{"a store that can write", &probingUserSessions{fakeUserSessions: newFakeUserSessions(), timeout: 5 * time.Second}, nil, 5 * time.Second},
		{"a store that cannot write", &probingUserSessions{fakeUserSessions: newFakeUserSessions(), probeErr: standby}, standby, 0},
		{"a store without the abilities", newFakeUserSessions(), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, tc.provider).client
			prober, ok := c.(us.WriteProber)
			if !ok {
				t.Fatalf("%T does not implement usersessions.WriteProber", c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := prober.ProbeWrite(ctx)
			if (err == nil) != (tc.wantProbe == nil) || (err != nil && (err.Error() != tc.wantProbe.Error() || !errors.Is(err, spi.ErrUnavailable))) {
				t.Errorf("ProbeWrite = %v, want %v (wrapping spi.ErrUnavailable)", err, tc.wantProbe)
			}
			d, err := c.(us.WriteBounder).WriteTimeout(ctx)
			if err != nil || d != tc.wantTimeout {
				t.Errorf("WriteTimeout = %v, %v; want %v", d, err, tc.wantTimeout)
			}
		})
	}
}
