package override

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
)

func configured(t *testing.T, cfg spi.Config) *Provider {
	t.Helper()
	p := New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEffectiveLifespanIsTheSmallerOfOverrideAndRemaining(t *testing.T) {
	user := func(offline, imported bool, remaining time.Duration) cachelifespan.Entry {
		return cachelifespan.Entry{Kind: cachelifespan.UserSessionEntry, RealmID: "r", Offline: offline, Imported: imported, Remaining: remaining}
	}
	client := func(offline, imported bool, remaining time.Duration) cachelifespan.Entry {
		return cachelifespan.Entry{Kind: cachelifespan.ClientSessionEntry, RealmID: "r", ClientID: "c", Offline: offline, Imported: imported, Remaining: remaining}
	}
	const day = 24 * time.Hour
	tests := []struct {
		name  string
		cfg   spi.Config
		entry cachelifespan.Entry
		want  time.Duration
	}{
		{"imported offline user session: override", spi.Config{OptOfflineSession: "1h0m0s"}, user(true, true, 30*day), time.Hour},
		{"imported offline user session ending sooner: its own", spi.Config{OptOfflineSession: "1h0m0s"}, user(true, true, 10*time.Minute), 10 * time.Minute},
		{"imported offline client session: client override", spi.Config{OptOfflineSession: "1h0m0s", OptOfflineClientSession: "5m0s"}, client(true, true, 30*day), 5 * time.Minute},
		{"client override does not apply to user entries", spi.Config{OptOfflineClientSession: "5m0s"}, user(true, true, 30*day), 30 * day},
		{"user override does not apply to client entries", spi.Config{OptOfflineSession: "5m0s"}, client(true, true, 30*day), 30 * day},
		{"created offline session (not imported): its own", spi.Config{OptOfflineSession: "1h0m0s"}, user(true, false, 30*day), 30 * day},
		{"imported online session: its own", spi.Config{OptOfflineSession: "1h0m0s"}, user(false, true, 8*time.Hour), 8 * time.Hour},
		{"unset: no override", spi.Config{}, user(true, true, 30*day), 30 * day},
		{"Keycloak's -1: no override", spi.Config{OptOfflineSession: "-1s"}, user(true, true, 30*day), 30 * day},
		{"whole seconds", spi.Config{OptOfflineSession: "3600"}, user(true, true, 30*day), time.Hour},
		{"0: not cached", spi.Config{OptOfflineSession: "0s"}, user(true, true, 30*day), 0},
		{"expired: never negative", spi.Config{OptOfflineSession: "1h0m0s"}, user(true, true, -time.Minute), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configured(t, tt.cfg).Lifespans(context.Background(), []cachelifespan.Entry{tt.entry})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("Lifespans = %v, want [%v]", got, tt.want)
			}
		})
	}
}

func TestOneAnswerPerEntryInOrder(t *testing.T) {
	p := configured(t, spi.Config{OptOfflineSession: "1h", OptOfflineClientSession: "10m"})
	entries := []cachelifespan.Entry{
		{Kind: cachelifespan.UserSessionEntry, Offline: true, Imported: true, Remaining: 2 * time.Hour},
		{Kind: cachelifespan.ClientSessionEntry, Offline: true, Imported: true, Remaining: 2 * time.Hour},
		{Kind: cachelifespan.UserSessionEntry, Offline: false, Imported: true, Remaining: 2 * time.Hour},
	}
	got, err := p.Lifespans(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Hour, 10 * time.Minute, 2 * time.Hour}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestBadValueIsRefused(t *testing.T) {
	err := New(nil).Configure(context.Background(), spi.Config{OptOfflineSession: "soon"})
	if !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("Configure(soon) = %v, want spi.ErrInvalid", err)
	}
}

func TestDescribeCarriesKeycloaksSpellingsAsAliases(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.CacheLifespan || d.ID != ID || d.Help == "" || d.Version == "" {
		t.Fatalf("Describe() = %+v", d)
	}
	for name, alias := range map[string]string{
		OptOfflineSession:       "spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override",
		OptOfflineClientSession: "spi-user-sessions-infinispan-offline-client-session-cache-entry-lifespan-override",
	} {
		o, ok := d.Option(name)
		if !ok || o.Type != spi.Duration || o.Default != "" || len(o.Aliases) != 1 || o.Aliases[0] != alias {
			t.Errorf("option %s = %+v, want a duration with no default and alias %s", name, o, alias)
		}
	}
}
