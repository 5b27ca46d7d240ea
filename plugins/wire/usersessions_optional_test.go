package wire

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/spipb"
	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
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

// countingStore counts the write calls a rotation can make.
type countingStore struct {
	us.Provider
	puts, touches, rotates atomic.Int32
}

func (c *countingStore) PutClientSessions(ctx context.Context, cs []*us.ClientSession) ([]error, error) {
	c.puts.Add(1)
	return c.Provider.PutClientSessions(ctx, cs)
}

func (c *countingStore) Touch(ctx context.Context, ts []us.Touch) ([]error, error) {
	c.touches.Add(1)
	return c.Provider.Touch(ctx, ts)
}

// rotatingStore is a countingStore that is a Rotator.
type rotatingStore struct{ *countingStore }

func (r rotatingStore) Rotate(ctx context.Context, rs []us.Rotation) ([]error, error) {
	r.rotates.Add(1)
	return us.RotateApart(ctx, r.Provider, rs)
}

// serveOld serves p as a plugin built before the Rotate call: its UserSessions service
// has no such method, so the host's call is answered Unimplemented by gRPC itself.
func serveOld(t *testing.T, p us.Provider) us.Provider {
	t.Helper()
	desc := pb.UserSessions_ServiceDesc
	desc.Methods = slices.DeleteFunc(slices.Clone(desc.Methods), func(m grpc.MethodDesc) bool { return m.MethodName == "Rotate" })
	if len(desc.Methods) != len(pb.UserSessions_ServiceDesc.Methods)-1 {
		t.Fatalf("the service has no method Rotate to leave out")
	}
	old := &grpcPlugin{spi: spi.UserSessions, register: func(s grpc.ServiceRegistrar) {
		spipb.RegisterProviderServer(s, &providerServer{impl: p})
		s.RegisterService(&desc, &userSessionsServer{impl: p})
	}}
	gc, _ := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{spi.UserSessions: old})
	t.Cleanup(func() { _ = gc.Close() })
	raw, err := gc.Dispense(spi.UserSessions)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	return raw.(us.Provider)
}

// TestRotateAcrossTheWire: a rotation reaches the plugin as one call when the provider is a
// Rotator, as the provider's two calls made in the plugin when it is not, and as the two
// calls made by the host when the plugin was built before Rotate (asked once: the host
// then remembers). Whichever way, the client session is rotated and the user session's
// clock moved.
func TestRotateAcrossTheWire(t *testing.T) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name                string
		rotator, old        bool
		wantRotates, wantPT int32 // per rotation: Rotate calls, and PutClientSessions and Touch calls each
	}{
		{name: "a Rotator", rotator: true, wantRotates: 1},
		{name: "a provider without Rotate", wantPT: 1},
		{name: "a plugin built before Rotate", rotator: true, old: true, wantPT: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := memory.New(nil)
			if err := mem.Configure(ctx, spi.Config{}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			counts := &countingStore{Provider: mem}
			var impl us.Provider = counts
			if tc.rotator {
				impl = rotatingStore{counts}
			}
			var c us.Provider
			if tc.old {
				c = serveOld(t, impl)
			} else {
				c = serve(t, impl).client.(us.Provider)
			}
			s := &us.UserSession{ID: "s1", RealmID: "r", UserID: "u", State: us.LoggedIn, Started: base, LastRefresh: base,
				ExpiresAt: base.Add(time.Hour), Clients: map[string]*us.ClientSession{"app": {
					UserSessionID: "s1", RealmID: "r", ClientID: "app", Started: base, LastRefresh: base, ExpiresAt: base.Add(time.Hour),
					CurrentRefreshToken: "rt-1"}}}
			if errs, err := c.Create(ctx, []*us.UserSession{s}); err != nil || errs[0] != nil {
				t.Fatalf("Create: %v %v", errs, err)
			}
			for n := int64(1); n <= 2; n++ {
				before := [3]int32{counts.rotates.Load(), counts.puts.Load(), counts.touches.Load()}
				got, err := c.Get(ctx, []us.Key{s.Key()})
				if err != nil || got[0] == nil {
					t.Fatalf("Get: %v %v", got, err)
				}
				cs := got[0].Clients["app"]
				cs.PreviousRefreshToken, cs.CurrentRefreshToken = cs.CurrentRefreshToken, fmt.Sprintf("rt-%d", n+1)
				now := base.Add(time.Duration(n) * time.Minute)
				errs, err := us.Rotate(ctx, c, []us.Rotation{{Client: cs, LastRefresh: now, ExpiresAt: now.Add(time.Hour)}, {}})
				if err != nil || len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], spi.ErrInvalid) {
					t.Fatalf("rotation %d: %v, %v; want nil and ErrInvalid for the empty one", n, errs, err)
				}
				after := [3]int32{counts.rotates.Load(), counts.puts.Load(), counts.touches.Load()}
				if want := [3]int32{before[0] + tc.wantRotates, before[1] + tc.wantPT, before[2] + tc.wantPT}; after != want {
					t.Errorf("rotation %d: the provider's Rotate, PutClientSessions, Touch calls went %v → %v, want %v", n, before, after, want)
				}
				got, err = c.Get(ctx, []us.Key{s.Key()})
				if err != nil || got[0] == nil {
					t.Fatalf("Get: %v %v", got, err)
				}
				if g := got[0]; g.Clients["app"].CurrentRefreshToken != cs.CurrentRefreshToken || g.Clients["app"].Version != n+1 || !g.LastRefresh.Equal(now) {
					t.Errorf("after rotation %d: token %q version %d last refresh %v; want %q %d %v", n,
						g.Clients["app"].CurrentRefreshToken, g.Clients["app"].Version, g.LastRefresh, cs.CurrentRefreshToken, n+1, now)
				}
			}
			if tc.old && !c.(*UserSessionsClient).apart.Load() {
				t.Errorf("the client did not remember that the plugin has no Rotate")
			}
		})
	}
}
