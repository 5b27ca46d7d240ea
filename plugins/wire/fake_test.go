package wire

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/revocationpush"
	us "github.com/sessiond/sessiond/spi/usersessions"
)

// call is what a fake provider received: the method and its arguments, context excluded.
type call struct {
	Method string
	Args   []any
}

// recorder is the spi.Provider part of every fake: it records calls and answers Describe
// with a canned descriptor.
type recorder struct {
	desc spi.Descriptor
	err  error // returned by Configure and Close

	mu    sync.Mutex
	calls []call
}

func (r *recorder) record(method string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{Method: method, Args: args})
}

func (r *recorder) last(t *testing.T) call {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("provider received no call")
	}
	return r.calls[len(r.calls)-1]
}

func (r *recorder) Describe() spi.Descriptor { return r.desc }

func (r *recorder) Configure(_ context.Context, cfg spi.Config) error {
	r.record("Configure", cfg)
	return r.err
}

func (r *recorder) Close(context.Context) error {
	r.record("Close")
	return r.err
}

// usReply is what the user-sessions fake answers; each method returns the fields that fit.
type usReply struct {
	Errs       []error
	Err        error
	Sessions   []*us.UserSession
	N, N2      int
	Count      int64
	Counts     map[string]int64
	Records    []*us.Record
	Record     *us.Record
	Deliveries []*us.Delivery
	Pages      [][]*us.UserSession
	Changes    []us.Change
	// Endless makes Stream send Pages[0] until fn fails or ctx ends.
	Endless bool
}

type fakeUserSessions struct {
	recorder
	reply usReply
	// ended receives how Stream and Watch ended on the provider side.
	ended chan error
}

func newFakeUserSessions() *fakeUserSessions {
	return &fakeUserSessions{
		recorder: recorder{desc: spi.Descriptor{SPI: spi.UserSessions, ID: "fake"}},
		ended:    make(chan error, 1),
	}
}

func (f *fakeUserSessions) Create(_ context.Context, s []*us.UserSession) ([]error, error) {
	f.record("Create", s)
	return f.reply.Errs, f.reply.Err
}

func (f *fakeUserSessions) Get(_ context.Context, keys []us.Key) ([]*us.UserSession, error) {
	f.record("Get", keys)
	return f.reply.Sessions, f.reply.Err
}

func (f *fakeUserSessions) Update(_ context.Context, s []*us.UserSession) ([]error, error) {
	f.record("Update", s)
	return f.reply.Errs, f.reply.Err
}

func (f *fakeUserSessions) Touch(_ context.Context, t []us.Touch) ([]error, error) {
	f.record("Touch", t)
	return f.reply.Errs, f.reply.Err
}

func (f *fakeUserSessions) PutClientSessions(_ context.Context, c []*us.ClientSession) ([]error, error) {
	f.record("PutClientSessions", c)
	return f.reply.Errs, f.reply.Err
}

func (f *fakeUserSessions) DeleteClientSessions(_ context.Context, keys []us.ClientKey) error {
	f.record("DeleteClientSessions", keys)
	return f.reply.Err
}

func (f *fakeUserSessions) Delete(_ context.Context, keys []us.Key) (int, error) {
	f.record("Delete", keys)
	return f.reply.N, f.reply.Err
}

func (f *fakeUserSessions) DeleteMatching(_ context.Context, filter us.Filter) (int, error) {
	f.record("DeleteMatching", filter)
	return f.reply.N, f.reply.Err
}

func (f *fakeUserSessions) DeleteExpired(_ context.Context, before time.Time, limit int) (int, int, error) {
	f.record("DeleteExpired", before, limit)
	return f.reply.N, f.reply.N2, f.reply.Err
}

func (f *fakeUserSessions) List(_ context.Context, filter us.Filter, p us.Page) ([]*us.UserSession, error) {
	f.record("List", filter, p)
	return f.reply.Sessions, f.reply.Err
}

func (f *fakeUserSessions) Count(ctx context.Context, filter us.Filter) (int64, error) {
	f.record("Count", filter)
	return f.reply.Count, f.reply.Err
}

func (f *fakeUserSessions) CountByClient(_ context.Context, realmID string, offline bool, _ time.Time) (map[string]int64, error) {
	f.record("CountByClient", realmID, offline)
	return f.reply.Counts, f.reply.Err
}

func (f *fakeUserSessions) Stream(ctx context.Context, req us.StreamRequest, fn func([]*us.UserSession) error) error {
	f.record("Stream", req)
	err := f.stream(ctx, fn)
	f.ended <- err
	return err
}

func (f *fakeUserSessions) stream(ctx context.Context, fn func([]*us.UserSession) error) error {
	if f.reply.Err != nil {
		return f.reply.Err
	}
	for i := 0; f.reply.Endless || i < len(f.reply.Pages); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(f.reply.Pages[i%len(f.reply.Pages)]); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeUserSessions) Watch(ctx context.Context, fn func(us.Change) error) error {
	f.record("Watch")
	err := f.watch(ctx, fn)
	f.ended <- err
	return err
}

func (f *fakeUserSessions) watch(ctx context.Context, fn func(us.Change) error) error {
	for _, c := range f.reply.Changes {
		if err := fn(c); err != nil {
			return err
		}
	}
	if f.reply.Err != nil {
		return f.reply.Err
	}
	<-ctx.Done()
	return nil
}

func (f *fakeUserSessions) GetRecords(_ context.Context, kind string, keys []string) ([]*us.Record, error) {
	f.record("GetRecords", kind, keys)
	return f.reply.Records, f.reply.Err
}

func (f *fakeUserSessions) PutRecord(_ context.Context, r *us.Record) (*us.Record, error) {
	f.record("PutRecord", r)
	return f.reply.Record, f.reply.Err
}

func (f *fakeUserSessions) ListRecords(_ context.Context, kind string) ([]*us.Record, error) {
	f.record("ListRecords", kind)
	return f.reply.Records, f.reply.Err
}

func (f *fakeUserSessions) DeleteRecord(_ context.Context, kind, key string) error {
	f.record("DeleteRecord", kind, key)
	return f.reply.Err
}

func (f *fakeUserSessions) Enqueue(_ context.Context, d []*us.Delivery) error {
	f.record("Enqueue", d)
	return f.reply.Err
}

func (f *fakeUserSessions) Claim(_ context.Context, now time.Time, lease time.Duration, limit int) ([]*us.Delivery, error) {
	f.record("Claim", now, lease, limit)
	return f.reply.Deliveries, f.reply.Err
}

func (f *fakeUserSessions) Finish(_ context.Context, o []us.DeliveryOutcome) error {
	f.record("Finish", o)
	return f.reply.Err
}

func (f *fakeUserSessions) ListDeliveries(_ context.Context, filter us.DeliveryFilter) ([]*us.Delivery, error) {
	f.record("ListDeliveries", filter)
	return f.reply.Deliveries, f.reply.Err
}

type fakeOfflinePreload struct {
	recorder
	plan offlinepreload.Plan
	err  error
	// block makes Plan wait for ctx and report whether it carried a deadline.
	block    bool
	deadline chan bool
}

func (f *fakeOfflinePreload) Plan(ctx context.Context, s offlinepreload.Situation) (offlinepreload.Plan, error) {
	f.record("Plan", s)
	if f.block {
		_, ok := ctx.Deadline()
		f.deadline <- ok
		<-ctx.Done()
		return offlinepreload.Plan{}, ctx.Err()
	}
	return f.plan, f.err
}

type fakeCacheLifespan struct {
	recorder
	lifespans []time.Duration
	err       error
}

func (f *fakeCacheLifespan) Lifespans(_ context.Context, e []cachelifespan.Entry) ([]time.Duration, error) {
	f.record("Lifespans", e)
	return f.lifespans, f.err
}

type fakeRevocationPush struct {
	recorder
	results []revocationpush.Result
	err     error
}

func (f *fakeRevocationPush) Push(_ context.Context, n []revocationpush.Notice) ([]revocationpush.Result, error) {
	f.record("Push", n)
	return f.results, f.err
}

// conn is one provider served over a real go-plugin gRPC connection.
type conn struct {
	client spi.Provider
	grpc   *plugin.GRPCClient
	server *plugin.GRPCServer
}

// serve serves p through ServerPlugins and returns the client the plugin set dispenses.
func serve(t *testing.T, p spi.Provider) conn {
	t.Helper()
	set, err := ServerPlugins(p)
	if err != nil {
		t.Fatalf("ServerPlugins: %v", err)
	}
	gc, gs := plugin.TestPluginGRPCConn(t, false, set[ProtocolVersion])
	// Close asks the server to stop through go-plugin's controller; stopping it here too
	// would race inside go-plugin. Tests that cut the connection stop the server themselves.
	t.Cleanup(func() { _ = gc.Close() })
	raw, err := gc.Dispense(p.Describe().SPI)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	return conn{client: raw.(spi.Provider), grpc: gc, server: gs}
}

// sentinels are the errors whose identity must survive the boundary.
var sentinels = []error{
	spi.ErrNotFound, spi.ErrExists, spi.ErrConflict, spi.ErrUnavailable, spi.ErrInvalid,
	context.Canceled, context.DeadlineExceeded,
}

// errKey describes an error by what a caller can observe: its text and which sentinels
// it matches.
func errKey(err error) string {
	if err == nil {
		return "<nil>"
	}
	var is []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			is = append(is, s)
		}
	}
	return fmt.Sprintf("%q is %v", err.Error(), is)
}

func errKeys(errs []error) []string {
	out := make([]string, len(errs))
	for i, err := range errs {
		out[i] = errKey(err)
	}
	return out
}

func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

// at is a timestamp with microsecond precision, the precision of the wire.
func at(sec int) time.Time { return time.Date(2025, 3, 14, 9, 26, sec, 535897000, time.UTC) }
