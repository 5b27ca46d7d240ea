package database

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/offlinepreload"
)

func TestPlanCarriesTheOptions(t *testing.T) {
	p := New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{
		OptPageSize: "250", OptWorkers: "8", OptTimeout: "2m0s", OptActiveWithin: "168h0m0s", OptProgressInterval: "5s",
	}); err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(context.Background(), offlinepreload.Situation{Realms: []string{"a"}, OfflineCount: 10, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	want := offlinepreload.Plan{Mode: offlinepreload.Eager, PageSize: 250, Workers: 8, Timeout: 2 * time.Minute,
		ActiveWithin: 168 * time.Hour, ProgressEvery: 5 * time.Second}
	if plan != want {
		t.Errorf("Plan = %+v, want %+v", plan, want)
	}
}

func TestDefaultsAreAnEagerPlan(t *testing.T) {
	for _, configure := range []bool{false, true} {
		p := New(nil)
		if configure {
			if err := p.Configure(context.Background(), spi.Config{spi.HostNodeID: "n"}); err != nil {
				t.Fatal(err)
			}
		}
		plan, err := p.Plan(context.Background(), offlinepreload.Situation{OfflineCount: -1})
		if err != nil {
			t.Fatal(err)
		}
		want := offlinepreload.Plan{Mode: offlinepreload.Eager, PageSize: DefaultPageSize, Workers: DefaultWorkers,
			Timeout: DefaultTimeout, ProgressEvery: DefaultProgressInterval}
		if plan != want {
			t.Errorf("configured=%v: Plan = %+v, want %+v", configure, plan, want)
		}
	}
}

func TestDescribedDefaultsAreTheDefaults(t *testing.T) {
	d := New(nil).Describe()
	p := New(nil)
	cfg := spi.Config{}
	for _, o := range d.Options {
		if o.Help == "" {
			t.Errorf("option %s has no help", o.Name)
		}
		if o.Default != "" {
			cfg[o.Name] = o.Default
		}
	}
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if p.plan != New(nil).plan {
		t.Errorf("configured with the described defaults: %+v, want %+v", p.plan, New(nil).plan)
	}
}

func TestBadOptionsAreRefused(t *testing.T) {
	for _, cfg := range []spi.Config{
		{OptPageSize: "0"},
		{OptPageSize: "many"},
		{OptWorkers: "0"},
		{OptWorkers: "1000"},
		{OptTimeout: "0s"},
		{OptTimeout: "later"},
		{OptActiveWithin: "-1h"},
		{OptProgressInterval: "1ms"},
	} {
		if err := New(nil).Configure(context.Background(), cfg); !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("Configure(%v) = %v, want spi.ErrInvalid", cfg, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.OfflinePreload || d.ID != ID || d.Help == "" || d.Version == "" {
		t.Errorf("Describe() = %+v", d)
	}
}
