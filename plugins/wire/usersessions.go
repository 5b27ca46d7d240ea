package wire

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/spipb"
	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

type userSessionsServer struct {
	pb.UnimplementedUserSessionsServer
	impl us.Provider
}

func (s *userSessionsServer) Create(ctx context.Context, req *pb.CreateRequest) (*spipb.ItemErrors, error) {
	errs, err := s.impl.Create(ctx, each(req.GetSessions(), sessionFromPB))
	return batchResult(errs, err)
}

func (s *userSessionsServer) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	got, err := s.impl.Get(ctx, each(req.GetKeys(), keyFromPB))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetResponse{Sessions: each(got, func(s *us.UserSession) *pb.MaybeSession {
		if s == nil {
			return &pb.MaybeSession{}
		}
		return &pb.MaybeSession{Session: sessionToPB(s)}
	})}, nil
}

func (s *userSessionsServer) Update(ctx context.Context, req *pb.UpdateRequest) (*spipb.ItemErrors, error) {
	errs, err := s.impl.Update(ctx, each(req.GetSessions(), sessionFromPB))
	return batchResult(errs, err)
}

func (s *userSessionsServer) Touch(ctx context.Context, req *pb.TouchRequest) (*spipb.ItemErrors, error) {
	errs, err := s.impl.Touch(ctx, each(req.GetTouches(), touchFromPB))
	return batchResult(errs, err)
}

func (s *userSessionsServer) PutClientSessions(ctx context.Context, req *pb.PutClientSessionsRequest) (*spipb.ItemErrors, error) {
	errs, err := s.impl.PutClientSessions(ctx, each(req.GetClients(), clientFromPB))
	return batchResult(errs, err)
}

func (s *userSessionsServer) DeleteClientSessions(ctx context.Context, req *pb.DeleteClientSessionsRequest) (*spipb.Empty, error) {
	return empty(s.impl.DeleteClientSessions(ctx, each(req.GetKeys(), clientKeyFromPB)))
}

func (s *userSessionsServer) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	n, err := s.impl.Delete(ctx, each(req.GetKeys(), keyFromPB))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteResponse{Removed: int64(n)}, nil
}

func (s *userSessionsServer) DeleteMatching(ctx context.Context, req *pb.DeleteMatchingRequest) (*pb.DeleteResponse, error) {
	n, err := s.impl.DeleteMatching(ctx, filterFromPB(req.GetFilter()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteResponse{Removed: int64(n)}, nil
}

func (s *userSessionsServer) DeleteExpired(ctx context.Context, req *pb.DeleteExpiredRequest) (*pb.DeleteExpiredResponse, error) {
	users, clients, err := s.impl.DeleteExpired(ctx, fromMicros(req.GetBefore()), int(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteExpiredResponse{Users: int64(users), Clients: int64(clients)}, nil
}

func (s *userSessionsServer) List(ctx context.Context, req *pb.ListRequest) (*pb.Sessions, error) {
	list, err := s.impl.List(ctx, filterFromPB(req.GetFilter()), pageFromPB(req.GetPage()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Sessions{Sessions: each(list, sessionToPB)}, nil
}

func (s *userSessionsServer) Count(ctx context.Context, req *pb.CountRequest) (*pb.CountResponse, error) {
	n, err := s.impl.Count(ctx, filterFromPB(req.GetFilter()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CountResponse{Count: n}, nil
}

func (s *userSessionsServer) CountByClient(ctx context.Context, req *pb.CountByClientRequest) (*pb.CountByClientResponse, error) {
	counts, err := s.impl.CountByClient(ctx, req.GetRealmId(), req.GetOffline(), fromMicros(req.GetLiveAt()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CountByClientResponse{Counts: counts}, nil
}

func (s *userSessionsServer) Stream(req *pb.StreamRequest, stream grpc.ServerStreamingServer[pb.Sessions]) error {
	if ps, ok := s.impl.(PageStreamer); ok {
		// Send marshals the message, a copy of the page's bytes, before it returns: the
		// page can be reused. (gRPC allows a stats handler to read a sent message later;
		// a plugin's server has none.)
		m := &pb.Sessions{}
		err := ps.StreamPages(stream.Context(), streamRequestFromPB(req), func(p *Page) error {
			m.ProtoReflect().SetUnknown(p.bytes())
			return stream.Send(m)
		})
		if !errors.Is(err, errors.ErrUnsupported) {
			return toStatus(err)
		}
	}
	return toStatus(s.impl.Stream(stream.Context(), streamRequestFromPB(req), func(page []*us.UserSession) error {
		return stream.Send(sessionsMessage(page))
	}))
}

// Watch sends the changes the host's watcher wants: the others (sessiond's own writes, for
// its cache) would each cost a message, and its writes, on both sides of the boundary.
func (s *userSessionsServer) Watch(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.Change]) error {
	in := interestFromPB(req)
	ctx := us.WithInterest(stream.Context(), in) // for a provider that can use it too
	return toStatus(s.impl.Watch(ctx, func(c us.Change) error {
		if !in.Wants(c) {
			return nil
		}
		return stream.Send(changeToPB(c))
	}))
}

func (s *userSessionsServer) GetRecords(ctx context.Context, req *pb.GetRecordsRequest) (*pb.GetRecordsResponse, error) {
	got, err := s.impl.GetRecords(ctx, req.GetKind(), req.GetKeys())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetRecordsResponse{Records: each(got, func(r *us.Record) *pb.MaybeRecord {
		if r == nil {
			return &pb.MaybeRecord{}
		}
		return &pb.MaybeRecord{Record: recordToPB(r)}
	})}, nil
}

func (s *userSessionsServer) PutRecord(ctx context.Context, req *pb.Record) (*pb.Record, error) {
	r, err := s.impl.PutRecord(ctx, recordFromPB(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return recordToPB(r), nil
}

func (s *userSessionsServer) ListRecords(ctx context.Context, req *pb.ListRecordsRequest) (*pb.Records, error) {
	list, err := s.impl.ListRecords(ctx, req.GetKind())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Records{Records: each(list, recordToPB)}, nil
}

func (s *userSessionsServer) DeleteRecord(ctx context.Context, req *pb.DeleteRecordRequest) (*spipb.Empty, error) {
	return empty(s.impl.DeleteRecord(ctx, req.GetKind(), req.GetKey()))
}

func (s *userSessionsServer) Enqueue(ctx context.Context, req *pb.Deliveries) (*spipb.Empty, error) {
	return empty(s.impl.Enqueue(ctx, each(req.GetDeliveries(), deliveryFromPB)))
}

func (s *userSessionsServer) Claim(ctx context.Context, req *pb.ClaimRequest) (*pb.Deliveries, error) {
	list, err := s.impl.Claim(ctx, fromMicros(req.GetNow()), time.Duration(req.GetLeaseNs()), int(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Deliveries{Deliveries: each(list, deliveryToPB)}, nil
}

func (s *userSessionsServer) Finish(ctx context.Context, req *pb.FinishRequest) (*spipb.Empty, error) {
	return empty(s.impl.Finish(ctx, each(req.GetOutcomes(), outcomeFromPB)))
}

func (s *userSessionsServer) ListDeliveries(ctx context.Context, req *pb.DeliveryFilter) (*pb.Deliveries, error) {
	list, err := s.impl.ListDeliveries(ctx, deliveryFilterFromPB(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Deliveries{Deliveries: each(list, deliveryToPB)}, nil
}

func batchResult(errs []error, err error) (*spipb.ItemErrors, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	return itemErrors(errs), nil
}

func empty(err error) (*spipb.Empty, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	return &spipb.Empty{}, nil
}

// UserSessionsClient is a usersessions.Provider served by a plugin.
type UserSessionsClient struct {
	providerClient
	rpc pb.UserSessionsClient
	cc  grpc.ClientConnInterface
	// apart is set once the plugin answered Rotate Unimplemented (built before it).
	apart atomic.Bool
}

var _ us.Provider = (*UserSessionsClient)(nil)

func (c *UserSessionsClient) batch(ctx context.Context, method string, resp *spipb.ItemErrors, err error) ([]error, error) {
	if err != nil {
		return nil, c.fail(ctx, method, err)
	}
	return fromItemErrors(resp), nil
}

func (c *UserSessionsClient) Create(ctx context.Context, sessions []*us.UserSession) ([]error, error) {
	return sendable(sessions, checkSession, func(sessions []*us.UserSession) ([]error, error) {
		resp, err := c.rpc.Create(ctx, &pb.CreateRequest{Sessions: each(sessions, sessionToPB)})
		return c.batch(ctx, "Create", resp, err)
	})
}

func (c *UserSessionsClient) Get(ctx context.Context, keys []us.Key) ([]*us.UserSession, error) {
	out := make([]*us.UserSession, len(keys))
	send, at := storable(keys, us.Key.Storable)
	resp, err := c.rpc.Get(ctx, &pb.GetRequest{Keys: each(send, keyToPB)})
	if err != nil {
		return nil, c.fail(ctx, "Get", err)
	}
	if len(resp.GetSessions()) != len(send) {
		return nil, fmt.Errorf("Get: the plugin answered %d sessions for %d keys: %w", len(resp.GetSessions()), len(send), spi.ErrInvalid)
	}
	for j, m := range resp.GetSessions() {
		out[at[j]] = sessionFromPB(m.GetSession())
	}
	return out, nil
}

func (c *UserSessionsClient) Update(ctx context.Context, sessions []*us.UserSession) ([]error, error) {
	return sendable(sessions, checkSession, func(sessions []*us.UserSession) ([]error, error) {
		resp, err := c.rpc.Update(ctx, &pb.UpdateRequest{Sessions: each(sessions, sessionToPB)})
		return c.batch(ctx, "Update", resp, err)
	})
}

func (c *UserSessionsClient) Touch(ctx context.Context, touches []us.Touch) ([]error, error) {
	return sendable(touches, us.Touch.CheckText, func(touches []us.Touch) ([]error, error) {
		resp, err := c.rpc.Touch(ctx, &pb.TouchRequest{Touches: each(touches, touchToPB)})
		return c.batch(ctx, "Touch", resp, err)
	})
}

func (c *UserSessionsClient) PutClientSessions(ctx context.Context, clients []*us.ClientSession) ([]error, error) {
	return sendable(clients, checkClient, func(clients []*us.ClientSession) ([]error, error) {
		resp, err := c.rpc.PutClientSessions(ctx, &pb.PutClientSessionsRequest{Clients: each(clients, clientToPB)})
		return c.batch(ctx, "PutClientSessions", resp, err)
	})
}

func (c *UserSessionsClient) DeleteClientSessions(ctx context.Context, keys []us.ClientKey) error {
	keys, _ = storable(keys, us.ClientKey.Storable)
	_, err := c.rpc.DeleteClientSessions(ctx, &pb.DeleteClientSessionsRequest{Keys: each(keys, clientKeyToPB)})
	return c.fail(ctx, "DeleteClientSessions", err)
}

func (c *UserSessionsClient) Delete(ctx context.Context, keys []us.Key) (int, error) {
	keys, _ = storable(keys, us.Key.Storable)
	resp, err := c.rpc.Delete(ctx, &pb.DeleteRequest{Keys: each(keys, keyToPB)})
	if err != nil {
		return 0, c.fail(ctx, "Delete", err)
	}
	return int(resp.GetRemoved()), nil
}

func (c *UserSessionsClient) DeleteMatching(ctx context.Context, f us.Filter) (int, error) {
	if err := f.CheckText(); err != nil {
		return 0, fmt.Errorf("DeleteMatching: %w", err)
	}
	resp, err := c.rpc.DeleteMatching(ctx, &pb.DeleteMatchingRequest{Filter: filterToPB(f)})
	if err != nil {
		return 0, c.fail(ctx, "DeleteMatching", err)
	}
	return int(resp.GetRemoved()), nil
}

func (c *UserSessionsClient) DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error) {
	resp, err := c.rpc.DeleteExpired(ctx, &pb.DeleteExpiredRequest{Before: micros(before), Limit: int64(limit)})
	if err != nil {
		return 0, 0, c.fail(ctx, "DeleteExpired", err)
	}
	return int(resp.GetUsers()), int(resp.GetClients()), nil
}

func (c *UserSessionsClient) List(ctx context.Context, f us.Filter, p us.Page) ([]*us.UserSession, error) {
	if err := cmp.Or(f.CheckText(), p.CheckText()); err != nil {
		return nil, fmt.Errorf("List: %w", err)
	}
	resp, err := c.rpc.List(ctx, &pb.ListRequest{Filter: filterToPB(f), Page: pageToPB(p)})
	if err != nil {
		return nil, c.fail(ctx, "List", err)
	}
	return each(resp.GetSessions(), sessionFromPB), nil
}

func (c *UserSessionsClient) Count(ctx context.Context, f us.Filter) (int64, error) {
	if err := f.CheckText(); err != nil {
		return 0, fmt.Errorf("Count: %w", err)
	}
	resp, err := c.rpc.Count(ctx, &pb.CountRequest{Filter: filterToPB(f)})
	if err != nil {
		return 0, c.fail(ctx, "Count", err)
	}
	return resp.GetCount(), nil
}

func (c *UserSessionsClient) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	if err := us.CheckText("realm id", realmID); err != nil {
		return nil, fmt.Errorf("CountByClient: %w", err)
	}
	resp, err := c.rpc.CountByClient(ctx, &pb.CountByClientRequest{RealmId: realmID, Offline: offline, LiveAt: micros(liveAt)})
	if err != nil {
		return nil, c.fail(ctx, "CountByClient", err)
	}
	if resp.GetCounts() == nil {
		return map[string]int64{}, nil // protobuf reads an empty map as nil; callers may add to it
	}
	return resp.GetCounts(), nil
}

// Stream calls fn with each page the provider sends. When fn fails, the stream is
// cancelled and fn's error returned as is.
func (c *UserSessionsClient) Stream(ctx context.Context, req us.StreamRequest, fn func(page []*us.UserSession) error) error {
	return c.stream(ctx, req, fn, false)
}

// StreamLent implements usersessions.PageLender: Stream, each page decoded into the
// sessions of the page before.
func (c *UserSessionsClient) StreamLent(ctx context.Context, req us.StreamRequest, fn func(page []*us.UserSession) error) error {
	return c.stream(ctx, req, fn, true)
}

func (c *UserSessionsClient) stream(ctx context.Context, req us.StreamRequest, fn func(page []*us.UserSession) error, lend bool) error {
	if err := req.Filter.CheckText(); err != nil {
		return fmt.Errorf("Stream: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.openStream(ctx, req)
	if err != nil {
		return c.fail(ctx, "Stream", err)
	}
	page := &streamPage{d: newSessionDecoder()}
	page.d.lend = lend
	for {
		err := stream.RecvMsg(page)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.fail(ctx, "Stream", err)
		}
		if err := fn(page.sessions); err != nil {
			return err
		}
		// gRPC keeps handing out pages it buffered before a cancel; stop at once instead.
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// openStream starts the Stream RPC; its pages are read with pageCodec (see stream.go).
func (c *UserSessionsClient) openStream(ctx context.Context, req us.StreamRequest) (grpc.ClientStream, error) {
	stream, err := c.cc.NewStream(ctx, &pb.UserSessions_ServiceDesc.Streams[0], pb.UserSessions_Stream_FullMethodName, grpc.ForceCodecV2(pageCodec{}))
	if err == nil {
		if err = stream.SendMsg(streamRequestToPB(req)); err == nil {
			err = stream.CloseSend()
		}
	}
	return stream, err
}

// StreamLentParallel implements usersessions.ParallelLender: the provider streams the
// whole selection once, and workers goroutines decode its pages and call fn, each page
// lent as by StreamLent. Pages come over the plugin's one connection in any case; what
// parallel workers can share is their decoding and what fn does with them.
func (c *UserSessionsClient) StreamLentParallel(ctx context.Context, req us.StreamRequest, workers int, fn func(page []*us.UserSession) error) error {
	if req.Partition != (us.Partition{}) {
		return fmt.Errorf("Stream: a parallel stream is of the whole selection, not partition %d of %d: %w", req.Partition.Index, req.Partition.Count, spi.ErrInvalid)
	}
	if err := req.Filter.CheckText(); err != nil {
		return fmt.Errorf("Stream: %w", err)
	}
	if workers <= 1 {
		return c.StreamLent(ctx, req, fn)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.openStream(ctx, req)
	if err != nil {
		return c.fail(ctx, "Stream", err)
	}
	var (
		mu       sync.Mutex
		firstErr error // of fn, or of a page that could not be decoded
	)
	stop := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	raw := make(chan mem.Buffer, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := newSessionDecoder()
			d.lend = true
			for buf := range raw {
				if ctx.Err() != nil {
					buf.Free()
					continue // stopping: what is left is dropped
				}
				page, err := d.sessions(buf.ReadOnlyData())
				buf.Free()
				if err != nil {
					stop(fmt.Errorf("Stream: a page the plugin sent: %w", err))
					continue
				}
				if err := fn(page); err != nil {
					stop(err)
				}
			}
		}()
	}
	recvErr := c.receive(ctx, stream, raw)
	close(raw)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if recvErr != nil {
		return c.fail(ctx, "Stream", recvErr)
	}
	return ctx.Err()
}

// receive hands each message of stream, undecoded, to pages until the stream ends (nil)
// or fails, or ctx ends.
func (c *UserSessionsClient) receive(ctx context.Context, stream grpc.ClientStream, pages chan<- mem.Buffer) error {
	for {
		var p rawPage
		err := stream.RecvMsg(&p)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case pages <- p.buf:
		case <-ctx.Done():
			p.buf.Free()
			return ctx.Err()
		}
	}
}

// Watch calls fn with each change the provider sends until ctx ends (nil), fn fails (its
// error, the feed cancelled) or the feed breaks. The interest ctx carries goes to the
// plugin, which leaves out what it does not want.
func (c *UserSessionsClient) Watch(ctx context.Context, fn func(us.Change) error) error {
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Watch(watchCtx, interestToPB(us.InterestOf(ctx)))
	for err == nil {
		var change *pb.Change
		if change, err = stream.Recv(); err == nil {
			if err := fn(changeFromPB(change)); err != nil {
				return err
			}
		}
	}
	if callerDone(ctx) != nil || errors.Is(err, io.EOF) {
		return nil
	}
	return c.fail(ctx, "Watch", err)
}

func (c *UserSessionsClient) GetRecords(ctx context.Context, kind string, keys []string) ([]*us.Record, error) {
	out := make([]*us.Record, len(keys))
	if us.CheckText("record kind", kind) != nil {
		return out, nil // names nothing
	}
	send, at := storable(keys, func(k string) bool { return us.CheckText("record key", k) == nil })
	resp, err := c.rpc.GetRecords(ctx, &pb.GetRecordsRequest{Kind: kind, Keys: send})
	if err != nil {
		return nil, c.fail(ctx, "GetRecords", err)
	}
	if len(resp.GetRecords()) != len(send) {
		return nil, fmt.Errorf("GetRecords: the plugin answered %d records for %d keys: %w", len(resp.GetRecords()), len(send), spi.ErrInvalid)
	}
	for j, m := range resp.GetRecords() {
		out[at[j]] = recordFromPB(m.GetRecord())
	}
	return out, nil
}

func (c *UserSessionsClient) PutRecord(ctx context.Context, r *us.Record) (*us.Record, error) {
	if r != nil {
		if err := r.CheckText(); err != nil {
			return nil, fmt.Errorf("PutRecord: %w", err)
		}
	}
	resp, err := c.rpc.PutRecord(ctx, recordToPB(r))
	if err != nil {
		return nil, c.fail(ctx, "PutRecord", err)
	}
	return recordFromPB(resp), nil
}

func (c *UserSessionsClient) ListRecords(ctx context.Context, kind string) ([]*us.Record, error) {
	if err := us.CheckText("record kind", kind); err != nil {
		return nil, fmt.Errorf("ListRecords: %w", err)
	}
	resp, err := c.rpc.ListRecords(ctx, &pb.ListRecordsRequest{Kind: kind})
	if err != nil {
		return nil, c.fail(ctx, "ListRecords", err)
	}
	return each(resp.GetRecords(), recordFromPB), nil
}

func (c *UserSessionsClient) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := (&us.Record{Kind: kind, Key: key}).CheckText(); err != nil {
		return fmt.Errorf("DeleteRecord: %w", err)
	}
	_, err := c.rpc.DeleteRecord(ctx, &pb.DeleteRecordRequest{Kind: kind, Key: key})
	return c.fail(ctx, "DeleteRecord", err)
}

func (c *UserSessionsClient) Enqueue(ctx context.Context, deliveries []*us.Delivery) error {
	for _, d := range deliveries {
		if d == nil {
			continue // the provider refuses it
		}
		if err := d.CheckText(); err != nil {
			return fmt.Errorf("Enqueue: %w", err)
		}
	}
	_, err := c.rpc.Enqueue(ctx, &pb.Deliveries{Deliveries: each(deliveries, deliveryToPB)})
	return c.fail(ctx, "Enqueue", err)
}

func (c *UserSessionsClient) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*us.Delivery, error) {
	resp, err := c.rpc.Claim(ctx, &pb.ClaimRequest{Now: micros(now), LeaseNs: int64(lease), Limit: int64(limit)})
	if err != nil {
		return nil, c.fail(ctx, "Claim", err)
	}
	return each(resp.GetDeliveries(), deliveryFromPB), nil
}

func (c *UserSessionsClient) Finish(ctx context.Context, outcomes []us.DeliveryOutcome) error {
	for _, o := range outcomes {
		if err := us.CheckText("delivery error", o.Error); err != nil {
			return fmt.Errorf("Finish: %w", err)
		}
	}
	_, err := c.rpc.Finish(ctx, &pb.FinishRequest{Outcomes: each(outcomes, outcomeToPB)})
	return c.fail(ctx, "Finish", err)
}

func (c *UserSessionsClient) ListDeliveries(ctx context.Context, f us.DeliveryFilter) ([]*us.Delivery, error) {
	if err := f.CheckText(); err != nil {
		return nil, fmt.Errorf("ListDeliveries: %w", err)
	}
	resp, err := c.rpc.ListDeliveries(ctx, deliveryFilterToPB(f))
	if err != nil {
		return nil, c.fail(ctx, "ListDeliveries", err)
	}
	return each(resp.GetDeliveries(), deliveryFromPB), nil
}
