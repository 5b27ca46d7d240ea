package lazy

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/offlinepreload"
)

func TestPlanIsAlwaysLazy(t *testing.T) {
	tests := []struct {
		name string
		s    offlinepreload.Situation
	}{
		{"empty store", offlinepreload.Situation{}},
		{"count failed", offlinepreload.Situation{Realms: []string{"a"}, OfflineCount: -1}},
		{"millions of offline sessions", offlinepreload.Situation{Realms: []string{"a", "b"}, OfflineCount: 3_000_000, Now: time.Now(), CacheCapacity: 10_000}},
	}
	p := New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := p.Plan(context.Background(), tt.s)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Mode != offlinepreload.Lazy {
				t.Errorf("Mode = %q, want %q", plan.Mode, offlinepreload.Lazy)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.OfflinePreload || d.ID != ID || d.Help == "" || d.Version == "" {
		t.Errorf("Describe() = %+v", d)
	}
}
