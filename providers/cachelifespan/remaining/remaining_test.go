package remaining

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
)

func TestLifespansAreTheEntrysOwnRemaining(t *testing.T) {
	tests := []struct {
		name  string
		entry cachelifespan.Entry
		want  time.Duration
	}{
		{"online user session", cachelifespan.Entry{Kind: cachelifespan.UserSessionEntry, RealmID: "r", Remaining: 30 * time.Minute}, 30 * time.Minute},
		{"imported offline client session", cachelifespan.Entry{Kind: cachelifespan.ClientSessionEntry, RealmID: "r", ClientID: "c", Offline: true, Imported: true, Remaining: 720 * time.Hour}, 720 * time.Hour},
		{"expired exactly now", cachelifespan.Entry{Kind: cachelifespan.UserSessionEntry, Remaining: 0}, 0},
		{"already expired is never negative", cachelifespan.Entry{Kind: cachelifespan.UserSessionEntry, Remaining: -5 * time.Second}, 0},
	}
	p := New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{}); err != nil {
		t.Fatal(err)
	}
	entries := make([]cachelifespan.Entry, len(tests))
	for i, tt := range tests {
		entries[i] = tt.entry
	}
	got, err := p.Lifespans(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tests) {
		t.Fatalf("got %d lifespans for %d entries", len(got), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got[i] != tt.want {
				t.Errorf("lifespan = %v, want %v", got[i], tt.want)
			}
		})
	}
}

func TestLifespansOfNoEntries(t *testing.T) {
	got, err := New(nil).Lifespans(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Errorf("Lifespans(nil) = %v, %v; want empty, nil", got, err)
	}
}

func TestDescribe(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.CacheLifespan || d.ID != "default" || d.Help == "" || d.Version == "" {
		t.Errorf("Describe() = %+v", d)
	}
}
