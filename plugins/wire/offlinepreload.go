package wire

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/spi/offlinepreload"
	pb "github.com/sessiond/sessiond/spi/offlinepreload/offlinepreloadpb"
)

type offlinePreloadServer struct {
	pb.UnimplementedOfflinePreloadServer
	impl offlinepreload.Provider
}

func (s *offlinePreloadServer) Plan(ctx context.Context, req *pb.Situation) (*pb.PlanResponse, error) {
	p, err := s.impl.Plan(ctx, offlinepreload.Situation{
		Realms:        req.GetRealms(),
		OfflineCount:  req.GetOfflineCount(),
		Now:           fromMicros(req.GetNow()),
		CacheCapacity: req.GetCacheCapacity(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PlanResponse{
		Mode:            string(p.Mode),
		PageSize:        int64(p.PageSize),
		Workers:         int64(p.Workers),
		TimeoutNs:       int64(p.Timeout),
		ActiveWithinNs:  int64(p.ActiveWithin),
		ProgressEveryNs: int64(p.ProgressEvery),
	}, nil
}

// OfflinePreloadClient is an offlinepreload.Provider served by a plugin.
type OfflinePreloadClient struct {
	providerClient
	rpc pb.OfflinePreloadClient
}

var _ offlinepreload.Provider = (*OfflinePreloadClient)(nil)

func (c *OfflinePreloadClient) Plan(ctx context.Context, s offlinepreload.Situation) (offlinepreload.Plan, error) {
	resp, err := c.rpc.Plan(ctx, &pb.Situation{
		Realms:        s.Realms,
		OfflineCount:  s.OfflineCount,
		Now:           micros(s.Now),
		CacheCapacity: s.CacheCapacity,
	})
	if err != nil {
		return offlinepreload.Plan{}, c.fail(ctx, "Plan", err)
	}
	return offlinepreload.Plan{
		Mode:          offlinepreload.Mode(resp.GetMode()),
		PageSize:      int(resp.GetPageSize()),
		Workers:       int(resp.GetWorkers()),
		Timeout:       time.Duration(resp.GetTimeoutNs()),
		ActiveWithin:  time.Duration(resp.GetActiveWithinNs()),
		ProgressEvery: time.Duration(resp.GetProgressEveryNs()),
	}, nil
}
