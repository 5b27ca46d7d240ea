package wire

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/spi/cachelifespan"
	pb "github.com/sessiond/sessiond/spi/cachelifespan/cachelifespanpb"
)

type cacheLifespanServer struct {
	pb.UnimplementedCacheLifespanServer
	impl cachelifespan.Provider
}

func (s *cacheLifespanServer) Lifespans(ctx context.Context, req *pb.LifespansRequest) (*pb.LifespansResponse, error) {
	entries := make([]cachelifespan.Entry, len(req.GetEntries()))
	for i, e := range req.GetEntries() {
		entries[i] = cachelifespan.Entry{
			Kind:      cachelifespan.EntryKind(e.GetKind()),
			RealmID:   e.GetRealmId(),
			ClientID:  e.GetClientId(),
			Offline:   e.GetOffline(),
			Imported:  e.GetImported(),
			Remaining: time.Duration(e.GetRemainingNs()),
		}
	}
	lifespans, err := s.impl.Lifespans(ctx, entries)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pb.LifespansResponse{LifespansNs: make([]int64, len(lifespans))}
	for i, d := range lifespans {
		resp.LifespansNs[i] = int64(d)
	}
	return resp, nil
}

// CacheLifespanClient is a cachelifespan.Provider served by a plugin.
type CacheLifespanClient struct {
	providerClient
	rpc pb.CacheLifespanClient
}

var _ cachelifespan.Provider = (*CacheLifespanClient)(nil)

func (c *CacheLifespanClient) Lifespans(ctx context.Context, entries []cachelifespan.Entry) ([]time.Duration, error) {
	req := &pb.LifespansRequest{Entries: make([]*pb.Entry, len(entries))}
	for i, e := range entries {
		req.Entries[i] = &pb.Entry{
			Kind:        pb.EntryKind(e.Kind),
			RealmId:     e.RealmID,
			ClientId:    e.ClientID,
			Offline:     e.Offline,
			Imported:    e.Imported,
			RemainingNs: int64(e.Remaining),
		}
	}
	resp, err := c.rpc.Lifespans(ctx, req)
	if err != nil {
		return nil, c.fail(ctx, "Lifespans", err)
	}
	out := make([]time.Duration, len(resp.GetLifespansNs()))
	for i, ns := range resp.GetLifespansNs() {
		out[i] = time.Duration(ns)
	}
	return out, nil
}
