package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

func open(t *testing.T, cfg spi.Config) *Provider {
	t.Helper()
	p := New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), cfg); err != nil {
		t.Fatalf("Configure(%v): %v", cfg, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func TestConformance(t *testing.T) {
	usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
		return open(t, spi.Config{spi.HostNodeID: "node-1"})
	})
}

func TestDescribeDeclaresOptions(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.UserSessions || d.ID != "memory" || d.Help == "" {
		t.Errorf("Describe() = %+v", d)
	}
	for _, name := range []string{OptMaxSessions, OptWatchBuffer} {
		o, ok := d.Option(name)
		if !ok || o.Type != spi.Int || o.Default == "" || o.Help == "" {
			t.Errorf("option %s = %+v, %v", name, o, ok)
		}
	}
}

func TestConfigureRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		cfg  spi.Config
	}{
		{"max-sessions not a number", spi.Config{OptMaxSessions: "many"}},
		{"max-sessions negative", spi.Config{OptMaxSessions: "-1"}},
		{"watch-buffer zero", spi.Config{OptWatchBuffer: "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(nil).Configure(t.Context(), tt.cfg)
			if !errors.Is(err, spi.ErrInvalid) {
				t.Errorf("Configure = %v, want ErrInvalid", err)
			}
		})
	}
}

func sess(id string) *usersessions.UserSession {
	return &usersessions.UserSession{RealmID: "r", ID: id, UserID: "u", ExpiresAt: time.Now().Add(time.Hour)}
}

func TestMaxSessions(t *testing.T) {
	tests := []struct {
		max     string
		creates int
		wantOK  int
	}{
		{"0", 5, 5}, // unlimited
		{"", 5, 5},  // default
		{"3", 5, 3},
		{"1", 2, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max-sessions=%q", tt.max), func(t *testing.T) {
			p := open(t, spi.Config{OptMaxSessions: tt.max})
			var batch []*usersessions.UserSession
			for i := range tt.creates {
				batch = append(batch, sess(fmt.Sprint(i)))
			}
			errs, err := p.Create(t.Context(), batch)
			if err != nil {
				t.Fatal(err)
			}
			ok := 0
			for _, e := range errs {
				switch {
				case e == nil:
					ok++
				case !errors.Is(e, spi.ErrInvalid):
					t.Errorf("create beyond the limit: %v, want ErrInvalid", e)
				}
			}
			if ok != tt.wantOK {
				t.Errorf("%d creates succeeded, want %d", ok, tt.wantOK)
			}
			// Room comes back when sessions go.
			if _, err := p.Delete(t.Context(), []usersessions.Key{batch[0].Key()}); err != nil {
				t.Fatal(err)
			}
			errs, err = p.Create(t.Context(), []*usersessions.UserSession{sess("again")})
			if err != nil || errs[0] != nil {
				t.Errorf("create after a delete: %v %v", err, errs)
			}
		})
	}
}

// waitWatchers waits until n Watch calls have subscribed.
func waitWatchers(p *Provider, n int) {
	for {
		p.mu.RLock()
		got := len(p.watchers)
		p.mu.RUnlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchCarriesTheHostNodeIDAsOrigin(t *testing.T) {
	p := open(t, spi.Config{spi.HostNodeID: "node-7"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := make(chan usersessions.Change, 10)
	go p.Watch(ctx, func(c usersessions.Change) error { changes <- c; return nil })
	waitWatchers(p, 1)
	if c := <-changes; c.Kind != usersessions.Subscribed || c.Origin != "node-7" {
		t.Errorf("first change = %+v, want Subscribed from node-7", c)
	}
	if errs, err := p.Create(t.Context(), []*usersessions.UserSession{sess("a")}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if c := <-changes; c.Origin != "node-7" || c.Kind != usersessions.Upserted {
		t.Errorf("change = %+v, want Upserted from node-7", c)
	}
}

func TestWatchBreaksWhenTheSubscriberFallsTooFarBehind(t *testing.T) {
	p := open(t, spi.Config{OptWatchBuffer: "2"})
	block := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Watch(t.Context(), func(usersessions.Change) error { <-block; return nil })
	}()
	waitWatchers(p, 1)
	for i := range 10 {
		if errs, err := p.Create(t.Context(), []*usersessions.UserSession{sess(fmt.Sprint(i))}); err != nil || errs[0] != nil {
			t.Fatal(err, errs)
		}
	}
	close(block)
	if err := <-done; !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Watch of a subscriber 10 changes behind with watch-buffer 2 returned %v, want ErrUnavailable", err)
	}
}

func TestWatchReturnsTheErrorOfFn(t *testing.T) {
	p := open(t, nil)
	stop := errors.New("stop")
	done := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() {
		done <- p.Watch(t.Context(), func(c usersessions.Change) error {
			if c.Kind == usersessions.Subscribed {
				close(subscribed)
				return nil
			}
			return stop
		})
	}()
	<-subscribed
	if _, err := p.Create(t.Context(), []*usersessions.UserSession{sess("a")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, stop) {
		t.Errorf("Watch returned %v, want fn's error", err)
	}
	waitWatchers(p, 0)
}

func TestCloseEndsWatchAndRefusesCalls(t *testing.T) {
	p := New(nil)
	done := make(chan error, 1)
	go func() { done <- p.Watch(context.Background(), func(usersessions.Change) error { return nil }) }()
	waitWatchers(p, 1)
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Watch after Close returned %v, want ErrUnavailable", err)
	}
	if _, err := p.Get(t.Context(), nil); !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Get after Close: %v, want ErrUnavailable", err)
	}
}

func TestListNeverSplitsOnlineAndOfflineTwins(t *testing.T) {
	p := open(t, nil)
	var batch []*usersessions.UserSession
	for _, id := range []string{"a", "b", "c"} {
		on, off := sess(id), sess(id)
		off.Offline = true
		batch = append(batch, on, off)
	}
	if _, err := p.Create(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	f := usersessions.Filter{RealmID: "r", Offline: usersessions.Both}
	seen := 0
	after := ""
	for {
		page, err := p.List(t.Context(), f, usersessions.Page{After: after, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) != 2 || page[0].ID != page[1].ID {
			t.Fatalf("page with Limit 1 = %d sessions, want the twins together", len(page))
		}
		seen += len(page)
		after = page[len(page)-1].ID
	}
	if seen != 6 {
		t.Errorf("listed %d sessions, want 6", seen)
	}
}
