package wire

import (
	"context"

	"github.com/sessiond/sessiond/spi/revocationpush"
	pb "github.com/sessiond/sessiond/spi/revocationpush/revocationpushpb"
)

type revocationPushServer struct {
	pb.UnimplementedRevocationPushServer
	impl revocationpush.Provider
}

func (s *revocationPushServer) Push(ctx context.Context, req *pb.PushRequest) (*pb.PushResponse, error) {
	notices := make([]revocationpush.Notice, len(req.GetNotices()))
	for i, n := range req.GetNotices() {
		notices[i] = revocationpush.Notice{
			ID:            n.GetId(),
			Action:        n.GetAction(),
			RealmID:       n.GetRealmId(),
			ClientID:      n.GetClientId(),
			AdminURL:      n.GetAdminUrl(),
			LogoutURL:     n.GetLogoutUrl(),
			NotBefore:     fromMicros(n.GetNotBefore()),
			SessionIDs:    n.GetSessionIds(),
			Token:         n.GetToken(),
			Expires:       fromMicros(n.GetExpires()),
			PushURL:       n.GetPushUrl(),
			Authorization: n.GetAuthorization(),
		}
	}
	results, err := s.impl.Push(ctx, notices)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pb.PushResponse{Results: make([]*pb.Result, len(results))}
	for i, r := range results {
		resp.Results[i] = &pb.Result{
			NoticeId: r.NoticeID,
			Target:   r.Target,
			Ok:       r.OK,
			Status:   int64(r.Status),
			Error:    r.Error,
			Retry:    r.Retry,
		}
	}
	return resp, nil
}

// RevocationPushClient is a revocationpush.Provider served by a plugin.
type RevocationPushClient struct {
	providerClient
	rpc pb.RevocationPushClient
}

var _ revocationpush.Provider = (*RevocationPushClient)(nil)

func (c *RevocationPushClient) Push(ctx context.Context, notices []revocationpush.Notice) ([]revocationpush.Result, error) {
	req := &pb.PushRequest{Notices: make([]*pb.Notice, len(notices))}
	for i, n := range notices {
		req.Notices[i] = &pb.Notice{
			Id:            n.ID,
			Action:        n.Action,
			RealmId:       n.RealmID,
			ClientId:      n.ClientID,
			AdminUrl:      n.AdminURL,
			LogoutUrl:     n.LogoutURL,
			NotBefore:     micros(n.NotBefore),
			SessionIds:    n.SessionIDs,
			Token:         n.Token,
			Expires:       micros(n.Expires),
			PushUrl:       n.PushURL,
			Authorization: n.Authorization,
		}
	}
	resp, err := c.rpc.Push(ctx, req)
	if err != nil {
		return nil, c.fail(ctx, "Push", err)
	}
	out := make([]revocationpush.Result, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		out[i] = revocationpush.Result{
			NoticeID: r.GetNoticeId(),
			Target:   r.GetTarget(),
			OK:       r.GetOk(),
			Status:   int(r.GetStatus()),
			Error:    r.GetError(),
			Retry:    r.GetRetry(),
		}
	}
	return out, nil
}
