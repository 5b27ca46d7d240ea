package wire

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sessiond/sessiond/spi"
	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

func sampleClient(sessionID, clientID string, offline bool) *us.ClientSession {
	return &us.ClientSession{
		UserSessionID:               sessionID,
		RealmID:                     "realm-1",
		ClientID:                    clientID,
		Offline:                     offline,
		Started:                     at(1),
		LastRefresh:                 at(2),
		ExpiresAt:                   at(3),
		AuthMethod:                  "openid-connect",
		RedirectURI:                 "https://app.example/cb",
		Action:                      "AUTHENTICATE",
		Scope:                       "openid profile",
		Notes:                       map[string]string{"nonce": "n-" + clientID},
		CurrentRefreshToken:         "rt-" + clientID,
		CurrentRefreshTokenUseCount: 2,
		PreviousRefreshToken:        "rt-old",
		// RotatedAt left zero: the zero time must come back as zero.
		Version: 4,
	}
}

func sampleSession(id string, offline bool) *us.UserSession {
	return &us.UserSession{
		ID:              id,
		RealmID:         "realm-1",
		UserID:          "user-" + id,
		LoginUsername:   "alice",
		IPAddress:       "192.0.2.7",
		UserAgent:       "curl/8",
		AuthMethod:      "openid-connect",
		BrokerSessionID: "broker-" + id,
		BrokerUserID:    "buser",
		RememberMe:      true,
		Offline:         offline,
		State:           us.LoggedIn,
		Started:         at(10),
		LastRefresh:     at(11),
		ExpiresAt:       at(12),
		Notes:           map[string]string{"AUTH_TIME": "1710408386", "acr": "1"},
		Version:         3,
		Clients: map[string]*us.ClientSession{
			"app":   sampleClient(id, "app", offline),
			"admin": sampleClient(id, "admin", offline),
		},
	}
}

func sampleDelivery(id string) *us.Delivery {
	return &us.Delivery{
		ID: id, RealmID: "realm-1", ClientID: "app", Kind: "LOGOUT", Target: "https://app.example/k_logout",
		Payload: []byte(`{"action":"LOGOUT"}`), State: us.Pending, Attempts: 2, NextAttempt: at(40),
		LastError: "503", Created: at(41), Updated: at(42),
	}
}

var sampleFilter = us.Filter{RealmID: "realm-1", UserID: "u", ClientID: "app", Offline: us.Both, ActiveSince: at(5)}

// usCase calls one method through the client; its result is what the caller observes,
// with errors reduced to errKey.
type usCase struct {
	name  string
	reply usReply
	call  func(ctx context.Context, c us.Provider) (any, error)
	args  []any // what the provider must receive
	want  any   // what the caller must get
}

func userSessionsCases() []usCase {
	s1, s2 := sampleSession("s1", false), sampleSession("s2", true)
	bare := &us.UserSession{ID: "s3", RealmID: "realm-1"} // zero times, no maps
	k1, k2 := s1.Key(), s2.Key()
	items := []error{nil, fmt.Errorf("session s2: %w", spi.ErrExists), errors.New("disk full")}
	rec := &us.Record{Kind: "realm-keys", Key: "realm-1", Value: []byte{0, 1, 2}, Version: 7, Updated: at(30)}
	changes := []us.Change{
		{Kind: us.Upserted, Session: k1, ClientID: "app", Origin: "node-a"},
		{Kind: us.Removed, Session: k2},
		{Kind: us.Flushed, Filter: sampleFilter, Origin: "node-b"},
		{Kind: us.RecordChanged, Record: us.RecordKey{Kind: "not-before", Key: "realm-1/app"}, Origin: "node-a"},
	}
	return []usCase{
		{
			name:  "Create",
			reply: usReply{Errs: items},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				errs, err := c.Create(ctx, []*us.UserSession{s1, s2, bare})
				return errKeys(errs), err
			},
			args: []any{[]*us.UserSession{s1, s2, bare}},
			want: errKeys(items),
		},
		{
			name:  "Get",
			reply: usReply{Sessions: []*us.UserSession{s1, nil, s2}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.Get(ctx, []us.Key{k1, {RealmID: "realm-1", ID: "gone"}, k2})
			},
			args: []any{[]us.Key{k1, {RealmID: "realm-1", ID: "gone"}, k2}},
			want: []*us.UserSession{s1, nil, s2},
		},
		{
			name:  "Update",
			reply: usReply{Errs: []error{fmt.Errorf("s1 v3: %w", spi.ErrConflict), nil}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				errs, err := c.Update(ctx, []*us.UserSession{s1, s2})
				return errKeys(errs), err
			},
			args: []any{[]*us.UserSession{s1, s2}},
			want: errKeys([]error{fmt.Errorf("s1 v3: %w", spi.ErrConflict), nil}),
		},
		{
			name:  "Touch",
			reply: usReply{Errs: []error{nil, fmt.Errorf("s2: %w", spi.ErrNotFound)}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				errs, err := c.Touch(ctx, []us.Touch{
					{Session: k1, LastRefresh: at(20), ExpiresAt: at(21), ClientID: "app", ClientExpiresAt: at(22)},
					{Session: k2, LastRefresh: at(23), ExpiresAt: at(24)},
				})
				return errKeys(errs), err
			},
			args: []any{[]us.Touch{
				{Session: k1, LastRefresh: at(20), ExpiresAt: at(21), ClientID: "app", ClientExpiresAt: at(22)},
				{Session: k2, LastRefresh: at(23), ExpiresAt: at(24)},
			}},
			want: errKeys([]error{nil, fmt.Errorf("s2: %w", spi.ErrNotFound)}),
		},
		{
			name:  "PutClientSessions",
			reply: usReply{Errs: []error{fmt.Errorf("bad scope: %w", spi.ErrInvalid)}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				errs, err := c.PutClientSessions(ctx, []*us.ClientSession{s1.Clients["app"]})
				return errKeys(errs), err
			},
			args: []any{[]*us.ClientSession{s1.Clients["app"]}},
			want: errKeys([]error{fmt.Errorf("bad scope: %w", spi.ErrInvalid)}),
		},
		{
			name: "DeleteClientSessions",
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return nil, c.DeleteClientSessions(ctx, []us.ClientKey{s1.Clients["app"].Key(), s2.Clients["admin"].Key()})
			},
			args: []any{[]us.ClientKey{s1.Clients["app"].Key(), s2.Clients["admin"].Key()}},
		},
		{
			name:  "Delete",
			reply: usReply{N: 2},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.Delete(ctx, []us.Key{k1, k2})
			},
			args: []any{[]us.Key{k1, k2}},
			want: 2,
		},
		{
			name:  "DeleteMatching",
			reply: usReply{N: 12},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.DeleteMatching(ctx, sampleFilter)
			},
			args: []any{sampleFilter},
			want: 12,
		},
		{
			name:  "DeleteExpired",
			reply: usReply{N: 100, N2: 250},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				u, cl, err := c.DeleteExpired(ctx, at(50), 100)
				return [2]int{u, cl}, err
			},
			args: []any{at(50), 100},
			want: [2]int{100, 250},
		},
		{
			name:  "List",
			reply: usReply{Sessions: []*us.UserSession{s1, bare}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.List(ctx, us.Filter{RealmID: "realm-1"}, us.Page{After: "s0", Limit: 50})
			},
			args: []any{us.Filter{RealmID: "realm-1"}, us.Page{After: "s0", Limit: 50}},
			want: []*us.UserSession{s1, bare},
		},
		{
			name:  "Count",
			reply: usReply{Count: 1 << 40},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.Count(ctx, sampleFilter)
			},
			args: []any{sampleFilter},
			want: int64(1 << 40),
		},
		{
			name:  "CountByClient",
			reply: usReply{Counts: map[string]int64{"app": 3, "admin": 1}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.CountByClient(ctx, "realm-1", true, time.Time{})
			},
			args: []any{"realm-1", true},
			want: map[string]int64{"app": 3, "admin": 1},
		},
		{
			name:  "Stream",
			reply: usReply{Pages: [][]*us.UserSession{{s1, s2}, {bare}}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				var pages [][]*us.UserSession
				err := c.Stream(ctx, us.StreamRequest{Filter: sampleFilter, PageSize: 2, Partition: us.Partition{Index: 1, Count: 4}},
					func(page []*us.UserSession) error {
						pages = append(pages, page)
						return nil
					})
				return pages, err
			},
			args: []any{us.StreamRequest{Filter: sampleFilter, PageSize: 2, Partition: us.Partition{Index: 1, Count: 4}}},
			want: [][]*us.UserSession{{s1, s2}, {bare}},
		},
		{
			name:  "Watch",
			reply: usReply{Changes: changes},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				var got []us.Change
				err := c.Watch(ctx, func(ch us.Change) error {
					got = append(got, ch)
					if len(got) == len(changes) {
						cancel()
					}
					return nil
				})
				return got, err
			},
			args: []any(nil),
			want: changes,
		},
		{
			name:  "GetRecords",
			reply: usReply{Records: []*us.Record{nil, rec}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.GetRecords(ctx, "realm-keys", []string{"other", "realm-1"})
			},
			args: []any{"realm-keys", []string{"other", "realm-1"}},
			want: []*us.Record{nil, rec},
		},
		{
			name:  "PutRecord",
			reply: usReply{Record: rec},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.PutRecord(ctx, &us.Record{Kind: "realm-keys", Key: "realm-1", Value: []byte("k"), Version: 6})
			},
			args: []any{&us.Record{Kind: "realm-keys", Key: "realm-1", Value: []byte("k"), Version: 6}},
			want: rec,
		},
		{
			name:  "ListRecords",
			reply: usReply{Records: []*us.Record{rec, rec}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.ListRecords(ctx, "not-before")
			},
			args: []any{"not-before"},
			want: []*us.Record{rec, rec},
		},
		{
			name: "DeleteRecord",
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return nil, c.DeleteRecord(ctx, "not-before", "realm-1")
			},
			args: []any{"not-before", "realm-1"},
		},
		{
			name: "Enqueue",
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return nil, c.Enqueue(ctx, []*us.Delivery{sampleDelivery("d1"), {ID: "d2", State: us.Pending}})
			},
			args: []any{[]*us.Delivery{sampleDelivery("d1"), {ID: "d2", State: us.Pending}}},
		},
		{
			name:  "Claim",
			reply: usReply{Deliveries: []*us.Delivery{sampleDelivery("d1")}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.Claim(ctx, at(45), 90*time.Second+7, 10)
			},
			args: []any{at(45), 90*time.Second + 7, 10},
			want: []*us.Delivery{sampleDelivery("d1")},
		},
		{
			name: "Finish",
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return nil, c.Finish(ctx, []us.DeliveryOutcome{
					{ID: "d1", State: us.Pending, NextAttempt: at(46), Error: "timeout"},
					{ID: "d2", State: us.Delivered},
				})
			},
			args: []any{[]us.DeliveryOutcome{
				{ID: "d1", State: us.Pending, NextAttempt: at(46), Error: "timeout"},
				{ID: "d2", State: us.Delivered},
			}},
		},
		{
			name:  "ListDeliveries",
			reply: usReply{Deliveries: []*us.Delivery{sampleDelivery("d1"), sampleDelivery("d2")}},
			call: func(ctx context.Context, c us.Provider) (any, error) {
				return c.ListDeliveries(ctx, us.DeliveryFilter{RealmID: "realm-1", State: us.Failed, Page: us.Page{After: "d0", Limit: 2}})
			},
			args: []any{us.DeliveryFilter{RealmID: "realm-1", State: us.Failed, Page: us.Page{After: "d0", Limit: 2}}},
			want: []*us.Delivery{sampleDelivery("d1"), sampleDelivery("d2")},
		},
	}
}

func TestUserSessionsRoundTrip(t *testing.T) {
	for _, tc := range userSessionsCases() {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeUserSessions()
			fake.reply = tc.reply
			c := serve(t, fake).client.(us.Provider)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			got, err := tc.call(ctx, c)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			mustEqual(t, "provider received", fake.last(t), call{Method: tc.name, Args: tc.args})
			if tc.want != nil {
				mustEqual(t, "caller got", got, tc.want)
			}
		})
	}
}

// Every method must hand the provider's own error back with its text and sentinel.
func TestUserSessionsErrors(t *testing.T) {
	for _, tc := range userSessionsCases() {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeUserSessions()
			// No data: Watch would otherwise see all its changes, end, and never read the error.
			fake.reply = usReply{Err: fmt.Errorf("%s in realm-1: %w", tc.name, spi.ErrConflict)}
			c := serve(t, fake).client.(us.Provider)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			_, err := tc.call(ctx, c)
			if errKey(err) != errKey(fake.reply.Err) {
				t.Errorf("error: got %s, want %s", errKey(err), errKey(fake.reply.Err))
			}
		})
	}
}

func TestStreamStopsWhenFnFails(t *testing.T) {
	fake := newFakeUserSessions()
	fake.reply = usReply{Pages: [][]*us.UserSession{{sampleSession("s1", false)}}, Endless: true}
	c := serve(t, fake).client.(us.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	stop := errors.New("enough")
	pages := 0
	err := c.Stream(ctx, us.StreamRequest{Filter: us.Filter{RealmID: "realm-1"}}, func([]*us.UserSession) error {
		pages++
		if pages == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Stream returned %v, want fn's error itself", err)
	}
	if pages != 3 {
		t.Errorf("fn called %d times after failing, want 3", pages)
	}
	waitEnded(t, fake.ended, "stream")
}

func TestStreamStopsWhenCtxEnds(t *testing.T) {
	fake := newFakeUserSessions()
	fake.reply = usReply{Pages: [][]*us.UserSession{{sampleSession("s1", false)}}, Endless: true}
	c := serve(t, fake).client.(us.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	inner, stopInner := context.WithCancel(ctx)
	err := c.Stream(inner, us.StreamRequest{}, func([]*us.UserSession) error {
		stopInner()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream after cancel returned %v, want context.Canceled", err)
	}
	waitEnded(t, fake.ended, "stream")
}

func TestWatchStopsWhenFnFails(t *testing.T) {
	fake := newFakeUserSessions()
	fake.reply = usReply{Changes: []us.Change{{Kind: us.Removed}, {Kind: us.Upserted}}}
	c := serve(t, fake).client.(us.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	stop := errors.New("stale")
	err := c.Watch(ctx, func(us.Change) error { return stop })
	if err != stop {
		t.Fatalf("Watch returned %v, want fn's error itself", err)
	}
	waitEnded(t, fake.ended, "watch")
}

func TestWatchReturnsNilWhenCtxEnds(t *testing.T) {
	fake := newFakeUserSessions()
	c := serve(t, fake).client.(us.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()

	if err := c.Watch(ctx, func(us.Change) error { return nil }); err != nil {
		t.Fatalf("Watch at ctx end returned %v, want nil", err)
	}
	waitEnded(t, fake.ended, "watch")
}

func TestWatchReportsBrokenFeed(t *testing.T) {
	fake := newFakeUserSessions()
	fake.reply = usReply{
		Changes: []us.Change{{Kind: us.Removed, Session: us.Key{RealmID: "r", ID: "s"}}},
		Err:     fmt.Errorf("listen channel lost: %w", spi.ErrUnavailable),
	}
	c := serve(t, fake).client.(us.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var got []us.Change
	err := c.Watch(ctx, func(ch us.Change) error {
		got = append(got, ch)
		return nil
	})
	if errKey(err) != errKey(fake.reply.Err) {
		t.Errorf("error: got %s, want %s", errKey(err), errKey(fake.reply.Err))
	}
	if strings.Contains(err.Error(), "unreachable") {
		t.Errorf("a provider's own ErrUnavailable reads as a transport failure: %v", err)
	}
	mustEqual(t, "changes before the break", got, fake.reply.Changes)
}

func waitEnded(t *testing.T, ended <-chan error, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("the provider's %s did not end after the client stopped", what)
	}
}

// TestCountByClientOfNoSessionsIsAnEmptyMap: protobuf reads an empty map as nil, and a
// caller that adds to the answer (the metrics add the clients without sessions) must not
// get nil through a plugin when it gets a map in-process.
func TestCountByClientOfNoSessionsIsAnEmptyMap(t *testing.T) {
	fake := newFakeUserSessions()
	fake.reply = usReply{Counts: map[string]int64{}}
	c := serve(t, fake).client.(us.Provider)
	m, err := c.CountByClient(t.Context(), "realm-1", false, time.Time{})
	if err != nil || m == nil || len(m) != 0 {
		t.Fatalf("CountByClient = %v (nil: %v), %v; want an empty map", m, m == nil, err)
	}
}

// TestStreamLentParallel reads a stream with parallel workers through a real gRPC
// connection: every session comes once, as the provider sent it, with fn called by more
// than one worker at once and never by more than asked.
func TestStreamLentParallel(t *testing.T) {
	fake := newFakeUserSessions()
	var pages [][]*us.UserSession
	want := map[string]*us.UserSession{}
	for p := range 40 {
		var page []*us.UserSession
		for i := range 3 {
			s := sampleSession(fmt.Sprintf("s-%d-%d", p, i), i%2 == 0)
			s.Notes["page"] = strconv.Itoa(p)
			page = append(page, s)
			want[s.ID] = deepCopy(s)
		}
		pages = append(pages, page)
	}
	fake.reply = usReply{Pages: pages}
	c := serve(t, fake).client.(us.ParallelLender)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const workers = 4
	var (
		mu             sync.Mutex
		got            = map[string]*us.UserSession{}
		inFlight, most atomic.Int32
	)
	err := c.StreamLentParallel(ctx, us.StreamRequest{Filter: us.Filter{RealmID: "realm-1"}, PageSize: 3}, workers, func(page []*us.UserSession) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond) // long enough for the other workers to be in fn too
		mu.Lock()
		defer mu.Unlock()
		for _, s := range page {
			if got[s.ID] != nil {
				t.Errorf("%s came twice", s.ID)
			}
			got[s.ID] = deepCopy(s) // the page is lent
		}
		return nil
	})
	if err != nil {
		t.Fatalf("StreamLentParallel: %v", err)
	}
	waitEnded(t, fake.ended, "stream")
	mustEqual(t, "sessions", got, want)
	if m := most.Load(); m < 2 || m > workers {
		t.Errorf("fn ran in %d goroutines at once, want 2 to %d", m, workers)
	}
	if req := fake.last(t).Args[0].(us.StreamRequest); req.Partition != (us.Partition{}) {
		t.Errorf("the provider was asked for partition %+v, want the whole selection", req.Partition)
	}
}

func TestStreamLentParallelStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("fn fails", func(t *testing.T) {
		fake := newFakeUserSessions()
		fake.reply = usReply{Pages: [][]*us.UserSession{{sampleSession("s1", false)}}, Endless: true}
		c := serve(t, fake).client.(us.ParallelLender)
		stop := errors.New("enough")
		var calls atomic.Int32
		err := c.StreamLentParallel(ctx, us.StreamRequest{Filter: us.Filter{RealmID: "realm-1"}}, 3, func([]*us.UserSession) error {
			if calls.Add(1) == 5 {
				return stop
			}
			return nil
		})
		if err != stop {
			t.Fatalf("StreamLentParallel returned %v, want fn's error itself", err)
		}
		waitEnded(t, fake.ended, "stream")
	})
	t.Run("the provider fails", func(t *testing.T) {
		fake := newFakeUserSessions()
		fake.reply = usReply{Err: fmt.Errorf("database gone: %w", spi.ErrUnavailable)}
		c := serve(t, fake).client.(us.ParallelLender)
		err := c.StreamLentParallel(ctx, us.StreamRequest{Filter: us.Filter{RealmID: "realm-1"}}, 3, func([]*us.UserSession) error { return nil })
		if errKey(err) != errKey(fake.reply.Err) {
			t.Fatalf("error: got %s, want %s", errKey(err), errKey(fake.reply.Err))
		}
	})
	t.Run("the caller's context ends", func(t *testing.T) {
		fake := newFakeUserSessions()
		fake.reply = usReply{Pages: [][]*us.UserSession{{sampleSession("s1", false)}}, Endless: true}
		c := serve(t, fake).client.(us.ParallelLender)
		inner, stopInner := context.WithCancel(ctx)
		err := c.StreamLentParallel(inner, us.StreamRequest{Filter: us.Filter{RealmID: "realm-1"}}, 3, func([]*us.UserSession) error {
			stopInner()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("StreamLentParallel after cancel returned %v, want context.Canceled", err)
		}
		waitEnded(t, fake.ended, "stream")
	})
	t.Run("a partition", func(t *testing.T) {
		fake := newFakeUserSessions()
		c := serve(t, fake).client.(us.ParallelLender)
		err := c.StreamLentParallel(ctx, us.StreamRequest{Filter: us.Filter{RealmID: "realm-1"}, Partition: us.Partition{Index: 1, Count: 2}}, 3,
			func([]*us.UserSession) error { return nil })
		if !errors.Is(err, spi.ErrInvalid) {
			t.Fatalf("StreamLentParallel of a partition returned %v, want spi.ErrInvalid", err)
		}
	})
}

// deepCopy is s as the wire carries it (times to the microsecond), sharing nothing with s.
func deepCopy(s *us.UserSession) *us.UserSession {
	return sessionFromPB(proto.Clone(sessionToPB(s)).(*pb.UserSession))
}

// TestWatchLeavesOutWhatTheWatcherIgnores: the interest a Watch's context carries reaches
// the plugin, which sends only the changes it wants, in order, and always Subscribed; the
// feed's end still comes through.
func TestWatchLeavesOutWhatTheWatcherIgnores(t *testing.T) {
	sub := us.Change{Kind: us.Subscribed, Origin: "me"}
	mine := us.Change{Kind: us.Upserted, Session: us.Key{RealmID: "r", ID: "a"}, Origin: "me"}
	theirs := us.Change{Kind: us.Upserted, Session: us.Key{RealmID: "r", ID: "b"}, ClientID: "app", Origin: "other"}
	gone := us.Change{Kind: us.Removed, Session: us.Key{RealmID: "r", ID: "c"}}
	flush := us.Change{Kind: us.Flushed, Filter: us.Filter{RealmID: "r", UserID: "u"}, Origin: "other"}
	record := us.Change{Kind: us.RecordChanged, Record: us.RecordKey{Kind: "not-before", Key: "r"}, Origin: "me"}
	all := []us.Change{sub, mine, theirs, record, gone, flush}
	sessions := []us.ChangeKind{us.Upserted, us.Removed, us.Flushed}
	for _, tc := range []struct {
		name string
		in   us.Interest
		want []us.Change
	}{
		{"no interest", us.Interest{}, all},
		{"other nodes' session changes", us.Interest{Kinds: sessions, IgnoreOrigin: "me"}, []us.Change{sub, theirs, gone, flush}},
		{"records", us.Interest{Kinds: []us.ChangeKind{us.RecordChanged}}, []us.Change{sub, record}},
		{"everything but one origin", us.Interest{IgnoreOrigin: "other"}, []us.Change{sub, mine, record, gone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeUserSessions()
			fake.reply = usReply{Changes: all, Err: fmt.Errorf("listen channel lost: %w", spi.ErrUnavailable)}
			c := serve(t, fake).client.(us.Provider)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var got []us.Change
			err := c.Watch(us.WithInterest(ctx, tc.in), func(ch us.Change) error {
				got = append(got, ch)
				return nil
			})
			if !errors.Is(err, spi.ErrUnavailable) {
				t.Errorf("Watch ended with %v, want the feed's ErrUnavailable", err)
			}
			mustEqual(t, "changes", got, tc.want)
		})
	}
}
