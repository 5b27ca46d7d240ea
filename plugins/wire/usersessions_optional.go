package wire

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sessiond/sessiond/spi/spipb"
	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

// The optional abilities a user-sessions store may have besides us.Provider. The client
// always has them, so that the host's type assertions find them whatever the plugin: a
// provider without one answers as if all were well, and so does a plugin built before
// they existed (Unimplemented).

var (
	_ us.WriteProber  = (*UserSessionsClient)(nil)
	_ us.WriteBounder = (*UserSessionsClient)(nil)
	_ us.Rotator      = (*UserSessionsClient)(nil)
)

func (s *userSessionsServer) ProbeWrite(ctx context.Context, _ *spipb.Empty) (*spipb.Empty, error) {
	if p, ok := s.impl.(us.WriteProber); ok {
		return empty(p.ProbeWrite(ctx))
	}
	return &spipb.Empty{}, nil
}

func (s *userSessionsServer) WriteTimeout(ctx context.Context, _ *spipb.Empty) (*pb.WriteTimeoutResponse, error) {
	if b, ok := s.impl.(us.WriteBounder); ok {
		d, err := b.WriteTimeout(ctx)
		if err != nil {
			return nil, toStatus(err)
		}
		return &pb.WriteTimeoutResponse{TimeoutNs: int64(d)}, nil
	}
	return &pb.WriteTimeoutResponse{}, nil
}

// ProbeWrite implements us.WriteProber.
func (c *UserSessionsClient) ProbeWrite(ctx context.Context) error {
	_, err := c.rpc.ProbeWrite(ctx, &spipb.Empty{})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	return c.fail(ctx, "ProbeWrite", err)
}

// WriteTimeout implements us.WriteBounder.
func (c *UserSessionsClient) WriteTimeout(ctx context.Context) (time.Duration, error) {
	resp, err := c.rpc.WriteTimeout(ctx, &spipb.Empty{})
	if status.Code(err) == codes.Unimplemented {
		return 0, nil
	}
	if err != nil {
		return 0, c.fail(ctx, "WriteTimeout", err)
	}
	return time.Duration(resp.GetTimeoutNs()), nil
}

func (s *userSessionsServer) Rotate(ctx context.Context, req *pb.RotateRequest) (*spipb.ItemErrors, error) {
	rs := make([]us.Rotation, len(req.GetRotations()))
	for i, r := range req.GetRotations() {
		rs[i] = us.Rotation{Client: clientFromPB(r.GetClient()), LastRefresh: fromMicros(r.GetLastRefresh()), ExpiresAt: fromMicros(r.GetExpiresAt())}
	}
	// A provider without Rotator is served with its two calls here, still one round trip
	// across the boundary.
	return batchResult(us.Rotate(ctx, s.impl, rs))
}

// Rotate implements us.Rotator. A plugin built before Rotate answers Unimplemented, once:
// from then on this client writes rotations with the two calls (us.RotateApart), as the
// host did before it, without asking again.
func (c *UserSessionsClient) Rotate(ctx context.Context, rotations []us.Rotation) ([]error, error) {
	if c.apart.Load() {
		return us.RotateApart(ctx, c, rotations)
	}
	errs := make([]error, len(rotations))
	var send []*pb.Rotation
	var at []int
	for i, r := range rotations {
		if errs[i] = checkClient(r.Client); errs[i] == nil {
			send = append(send, &pb.Rotation{Client: clientToPB(r.Client), LastRefresh: micros(r.LastRefresh), ExpiresAt: micros(r.ExpiresAt)})
			at = append(at, i)
		}
	}
	resp, err := c.rpc.Rotate(ctx, &pb.RotateRequest{Rotations: send})
	if status.Code(err) == codes.Unimplemented {
		c.apart.Store(true)
		return us.RotateApart(ctx, c, rotations)
	}
	got, err := c.batch(ctx, "Rotate", resp, err)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		if j < len(got) {
			errs[i] = got[j]
		}
	}
	return errs, nil
}
