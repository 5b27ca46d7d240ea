package builtin

import (
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// implementsSPI reports whether p implements the contract named spiName.
func implementsSPI(spiName string, p spi.Provider) bool {
	switch spiName {
	case spi.UserSessions:
		_, ok := p.(usersessions.Provider)
		return ok
	case spi.OfflinePreload:
		_, ok := p.(offlinepreload.Provider)
		return ok
	case spi.CacheLifespan:
		_, ok := p.(cachelifespan.Provider)
		return ok
	case spi.RevocationPush:
		_, ok := p.(revocationpush.Provider)
		return ok
	}
	return false
}

func TestCatalogProvidersDescribeThemselvesAsCatalogued(t *testing.T) {
	for _, f := range Catalog() {
		t.Run(f.SPI+"/"+f.ID, func(t *testing.T) {
			p := f.New(hclog.NewNullLogger())
			if !implementsSPI(f.SPI, p) {
				t.Fatalf("%T does not implement the %s contract", p, f.SPI)
			}
			d := p.Describe()
			if d.SPI != f.SPI || d.ID != f.ID {
				t.Errorf("Describe() says %s/%s", d.SPI, d.ID)
			}
			if d.Help == "" || d.Version == "" {
				t.Errorf("Describe() lacks help or version: %+v", d)
			}
			for _, o := range d.Options {
				if o.Name == "" || o.Type == "" || o.Help == "" {
					t.Errorf("option %+v lacks a name, type or help", o)
				}
			}
			if f.New(nil) == p {
				t.Error("New returned the same instance twice")
			}
		})
	}
}

func TestCatalogIsInSPIOrderAndCoversEverySPI(t *testing.T) {
	order := spi.Names()
	cat := Catalog()
	var seen []string
	for i, f := range cat {
		if i > 0 && slices.Index(order, cat[i-1].SPI) > slices.Index(order, f.SPI) {
			t.Errorf("%s/%s comes after %s/%s", f.SPI, f.ID, cat[i-1].SPI, cat[i-1].ID)
		}
		if !slices.Contains(seen, f.SPI) {
			seen = append(seen, f.SPI)
		}
	}
	if !slices.Equal(seen, order) {
		t.Errorf("SPIs with a built-in: %v, want %v", seen, order)
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		spi, id string
		want    bool
	}{
		{spi.UserSessions, "memory", true},
		{spi.OfflinePreload, "lazy", true},
		{spi.CacheLifespan, "default", true},
		{spi.CacheLifespan, "override", true},
		{spi.OfflinePreload, "database", true},
		{spi.RevocationPush, "log-only", true},
		{spi.RevocationPush, "adapter", true},
		{spi.RevocationPush, "webhook", true},
		{spi.RevocationPush, "ssf", true},
		{spi.UserSessions, "webhook", false},
		{spi.UserSessions, "lazy", false}, // an id is only valid under its own SPI
		{spi.UserSessions, "postgres", true},
		{spi.UserSessions, "embedded", true},
		{spi.UserSessions, "redis", false}, // third-party: comes from the plugin directory
		{"no-such-spi", "memory", false},
	}
	for _, tt := range tests {
		t.Run(tt.spi+"/"+tt.id, func(t *testing.T) {
			f, ok := Lookup(tt.spi, tt.id)
			if ok != tt.want {
				t.Fatalf("Lookup ok = %v, want %v", ok, tt.want)
			}
			if ok && (f.SPI != tt.spi || f.ID != tt.id || f.New == nil) {
				t.Errorf("Lookup returned %+v", f)
			}
		})
	}
}
