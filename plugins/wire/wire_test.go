package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/revocationpush"
	us "github.com/sessiond/sessiond/spi/usersessions"
)

// fakes returns one fresh fake provider per SPI, in spi.Names order.
func fakes() []spi.Provider {
	return []spi.Provider{
		newFakeUserSessions(),
		&fakeOfflinePreload{recorder: recorder{desc: spi.Descriptor{SPI: spi.OfflinePreload, ID: "fake"}}},
		&fakeCacheLifespan{recorder: recorder{desc: spi.Descriptor{SPI: spi.CacheLifespan, ID: "fake"}}},
		&fakeRevocationPush{recorder: recorder{desc: spi.Descriptor{SPI: spi.RevocationPush, ID: "fake"}}},
	}
}

// anyCall makes one unary call of the SPI-specific part of a client.
func anyCall(ctx context.Context, c spi.Provider) error {
	switch c := c.(type) {
	case us.Provider:
		_, err := c.Count(ctx, us.Filter{RealmID: "r"})
		return err
	case offlinepreload.Provider:
		_, err := c.Plan(ctx, offlinepreload.Situation{})
		return err
	case cachelifespan.Provider:
		_, err := c.Lifespans(ctx, nil)
		return err
	case revocationpush.Provider:
		_, err := c.Push(ctx, nil)
		return err
	}
	return fmt.Errorf("%T implements no SPI", c)
}

func TestProviderRoundTrip(t *testing.T) {
	desc := spi.Descriptor{
		Version: "1.2.3",
		Help:    "Keeps sessions somewhere.",
		Options: []spi.Option{
			{Name: "dsn", Type: spi.String, Help: "Where.", Secret: true},
			{Name: "mode", Type: spi.Enum, Default: "fast", Allowed: []string{"fast", "safe"},
				Aliases: []string{"spi-user-sessions-x-mode"}},
			{Name: "batch-size", Type: spi.Int, Default: "100"},
		},
	}
	for _, p := range fakes() {
		t.Run(p.Describe().SPI, func(t *testing.T) {
			rec := recorderOf(p)
			rec.desc.Version, rec.desc.Help, rec.desc.Options = desc.Version, desc.Help, desc.Options
			c := serve(t, p).client
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			mustEqual(t, "Describe", c.Describe(), rec.desc)
			cfg := spi.Config{"dsn": "postgres://x", spi.HostNodeID: "node-a"}
			if err := c.Configure(ctx, cfg); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			mustEqual(t, "provider received", rec.last(t), call{Method: "Configure", Args: []any{cfg}})
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mustEqual(t, "provider received", rec.last(t), call{Method: "Close"})

			rec.err = fmt.Errorf("option dsn: %w", spi.ErrInvalid)
			if err := c.Configure(ctx, nil); errKey(err) != errKey(rec.err) {
				t.Errorf("Configure error: got %s, want %s", errKey(err), errKey(rec.err))
			}
		})
	}
}

func recorderOf(p spi.Provider) *recorder {
	switch p := p.(type) {
	case *fakeUserSessions:
		return &p.recorder
	case *fakeOfflinePreload:
		return &p.recorder
	case *fakeCacheLifespan:
		return &p.recorder
	case *fakeRevocationPush:
		return &p.recorder
	}
	panic(fmt.Sprintf("no recorder in %T", p))
}

func TestOfflinePreloadRoundTrip(t *testing.T) {
	fake := fakes()[1].(*fakeOfflinePreload)
	fake.plan = offlinepreload.Plan{
		Mode: offlinepreload.Eager, PageSize: 500, Workers: 4, Timeout: 10 * time.Minute,
		ActiveWithin: 72 * time.Hour, ProgressEvery: 15*time.Second + 1,
	}
	c := serve(t, fake).client.(offlinepreload.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, s := range []offlinepreload.Situation{
		{Realms: []string{"master", "acme"}, OfflineCount: 1 << 33, Now: at(1), CacheCapacity: 10000},
		{Realms: []string{"master"}, OfflineCount: -1}, // counting failed, zero Now
	} {
		got, err := c.Plan(ctx, s)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		mustEqual(t, "provider received", fake.last(t), call{Method: "Plan", Args: []any{s}})
		mustEqual(t, "caller got", got, fake.plan)
	}

	fake.err = fmt.Errorf("no realms: %w", spi.ErrInvalid)
	if _, err := c.Plan(ctx, offlinepreload.Situation{}); errKey(err) != errKey(fake.err) {
		t.Errorf("Plan error: got %s, want %s", errKey(err), errKey(fake.err))
	}
}

func TestCacheLifespanRoundTrip(t *testing.T) {
	fake := fakes()[2].(*fakeCacheLifespan)
	fake.lifespans = []time.Duration{0, 30 * time.Minute, time.Nanosecond}
	c := serve(t, fake).client.(cachelifespan.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	entries := []cachelifespan.Entry{
		{Kind: cachelifespan.UserSessionEntry, RealmID: "acme", Offline: true, Imported: true, Remaining: time.Hour},
		{Kind: cachelifespan.ClientSessionEntry, RealmID: "acme", ClientID: "app", Remaining: 42 * time.Second},
		{Kind: cachelifespan.UserSessionEntry, RealmID: "master"},
	}
	got, err := c.Lifespans(ctx, entries)
	if err != nil {
		t.Fatalf("Lifespans: %v", err)
	}
	mustEqual(t, "provider received", fake.last(t), call{Method: "Lifespans", Args: []any{entries}})
	mustEqual(t, "caller got", got, fake.lifespans)

	fake.err = fmt.Errorf("policy store: %w", spi.ErrUnavailable)
	if _, err := c.Lifespans(ctx, entries); errKey(err) != errKey(fake.err) {
		t.Errorf("Lifespans error: got %s, want %s", errKey(err), errKey(fake.err))
	}
}

func TestRevocationPushRoundTrip(t *testing.T) {
	fake := fakes()[3].(*fakeRevocationPush)
	fake.results = []revocationpush.Result{
		{NoticeID: "n1", Target: "https://app.example/k_push_not_before", OK: true, Status: 204},
		{NoticeID: "n2", Target: "https://rp.example/bc", Status: 503, Error: "service unavailable", Retry: true},
		{NoticeID: "n3", Error: "no admin URL"},
		{NoticeID: "n4", Target: "https://rcv.example/events", OK: true, Status: 202},
	}
	c := serve(t, fake).client.(revocationpush.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	notices := []revocationpush.Notice{
		{ID: "n1", Action: revocationpush.PushNotBefore, RealmID: "acme", ClientID: "app",
			AdminURL: "https://app.example", NotBefore: at(7), Token: "eyJ.a.b", Expires: at(8)},
		{ID: "n2", Action: revocationpush.BackchannelLogout, RealmID: "acme", ClientID: "rp",
			LogoutURL: "https://rp.example/bc", Token: "eyJ.c.d", Expires: at(9)},
		{ID: "n3", Action: revocationpush.Logout, RealmID: "acme", ClientID: "old",
			SessionIDs: []string{"as-1", "as-2"}},
		{ID: "n4", Action: revocationpush.SecurityEvent, RealmID: "acme", ClientID: "https://rcv.example",
			Token: "eyJ.e.f", PushURL: "https://rcv.example/events", Authorization: "Bearer rcv"},
	}
	got, err := c.Push(ctx, notices)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	mustEqual(t, "provider received", fake.last(t), call{Method: "Push", Args: []any{notices}})
	mustEqual(t, "caller got", got, fake.results)

	fake.err = errors.New("broker down")
	if _, err := c.Push(ctx, notices); errKey(err) != errKey(fake.err) {
		t.Errorf("Push error: got %s, want %s", errKey(err), errKey(fake.err))
	}
}

// Each sentinel, and an error with none, must cross as a per-item error and as the error
// of a call, keeping its text and identity.
func TestErrorIdentity(t *testing.T) {
	fake := newFakeUserSessions()
	c := serve(t, fake).client.(us.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, sentinel := range append(sentinels, errors.New("plain")) {
		want := fmt.Errorf("session s1: %w", sentinel)
		t.Run(sentinel.Error(), func(t *testing.T) {
			fake.reply = usReply{Errs: []error{want, nil}}
			errs, err := c.Create(ctx, []*us.UserSession{{ID: "s1"}, {ID: "s2"}})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			mustEqual(t, "per-item errors", errKeys(errs), errKeys([]error{want, nil}))
			if !errors.Is(errs[0], sentinel) && sentinel.Error() != "plain" {
				t.Errorf("per-item error %v is not %v", errs[0], sentinel)
			}

			fake.reply = usReply{Err: want}
			_, err = c.Count(ctx, us.Filter{})
			if errKey(err) != errKey(want) {
				t.Errorf("call error: got %s, want %s", errKey(err), errKey(want))
			}
		})
	}
}

func TestDeadlinePropagates(t *testing.T) {
	fake := fakes()[1].(*fakeOfflinePreload)
	fake.block, fake.deadline = true, make(chan bool, 1)
	c := serve(t, fake).client.(offlinepreload.Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()

	_, err := c.Plan(ctx, offlinepreload.Situation{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Plan past its deadline returned %v, want context.DeadlineExceeded", err)
	}
	if !<-fake.deadline {
		t.Error("the provider's context carried no deadline")
	}
}

// A call over a connection that is gone must fail at once with spi.ErrUnavailable, for
// both ways a plugin goes away: its process dies (the server stops) or the host drops
// the connection.
func TestUnreachable(t *testing.T) {
	cut := map[string]func(conn){
		"server stopped": func(c conn) { c.server.Stop() },
		"conn closed": func(c conn) {
			_ = c.grpc.Conn.Close()
			c.server.Stop()
		},
	}
	for how, cutFn := range cut {
		for _, p := range fakes() {
			t.Run(how+"/"+p.Describe().SPI, func(t *testing.T) {
				c := serve(t, p)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := anyCall(ctx, c.client); err != nil {
					t.Fatalf("call before the cut: %v", err)
				}
				cutFn(c)

				calls := map[string]func() error{
					"spi":       func() error { return anyCall(ctx, c.client) },
					"Configure": func() error { return c.client.Configure(ctx, nil) },
				}
				if usc, ok := c.client.(us.Provider); ok {
					calls["Stream"] = func() error {
						return usc.Stream(ctx, us.StreamRequest{}, func([]*us.UserSession) error { return nil })
					}
					calls["Watch"] = func() error { return usc.Watch(ctx, func(us.Change) error { return nil }) }
				}
				for name, callFn := range calls {
					start := time.Now()
					err := callFn()
					if took := time.Since(start); took > time.Second {
						t.Errorf("%s took %v to fail", name, took)
					}
					if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "unreachable") {
						t.Errorf("%s: got %v, want an unreachable spi.ErrUnavailable", name, err)
					}
				}
				if d := c.client.Describe(); d.SPI != "" {
					t.Errorf("Describe over a dead connection returned %+v", d)
				}
			})
		}
	}
}

func TestServerPluginsChecksTheSPI(t *testing.T) {
	for name, p := range map[string]spi.Provider{
		"unknown SPI":       &recorder{desc: spi.Descriptor{SPI: "session-store"}},
		"SPI not provided":  &recorder{desc: spi.Descriptor{SPI: spi.UserSessions}},
		"another SPI's API": &fakeCacheLifespan{recorder: recorder{desc: spi.Descriptor{SPI: spi.RevocationPush}}},
	} {
		if _, err := ServerPlugins(p); err == nil {
			t.Errorf("%s: ServerPlugins accepted it", name)
		}
	}
}

func TestClientPlugins(t *testing.T) {
	c := serve(t, newFakeUserSessions())
	set := ClientPlugins()[ProtocolVersion]
	if len(set) != len(spi.Names()) {
		t.Errorf("client plugin set has %d plugins, want %d", len(set), len(spi.Names()))
	}
	want := map[string]string{
		spi.UserSessions:   "*wire.UserSessionsClient",
		spi.OfflinePreload: "*wire.OfflinePreloadClient",
		spi.CacheLifespan:  "*wire.CacheLifespanClient",
		spi.RevocationPush: "*wire.RevocationPushClient",
	}
	for name, typ := range want {
		p, ok := set[name].(*grpcPlugin)
		if !ok {
			t.Fatalf("%s: plugin is %T", name, set[name])
		}
		client, err := p.GRPCClient(context.Background(), nil, c.grpc.Conn)
		if err != nil {
			t.Fatalf("%s: GRPCClient: %v", name, err)
		}
		if got := fmt.Sprintf("%T", client); got != typ {
			t.Errorf("%s: client is %s, want %s", name, got, typ)
		}
		if err := p.GRPCServer(nil, nil); err == nil {
			t.Errorf("%s: a host-side plugin agreed to serve", name)
		}
	}
	if _, err := NewClient("session-store", c.grpc.Conn); err == nil {
		t.Error("NewClient accepted an unknown SPI")
	}
}

func TestZeroTimeRoundTrips(t *testing.T) {
	for _, tm := range []time.Time{{}, at(0), time.Unix(0, 1000).UTC(), time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)} {
		got := fromMicros(micros(tm))
		if !got.Equal(tm) || got.IsZero() != tm.IsZero() {
			t.Errorf("%v came back as %v", tm, got)
		}
	}
}
