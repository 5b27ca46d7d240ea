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
