// Package spitest holds the conformance checks every provider passes whatever its SPI: what
// Describe declares, and how Configure takes and refuses options (spi.Provider).
//
// The suites of the four SPIs (usersessionstest, offlinepreloadtest, cachelifespantest,
// revocationpushtest) run these first; a provider author calls those suites, not this one.
package spitest

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Opener returns a fresh provider that has not been configured, and the options it works
// with: the configuration each check starts from. It registers its own cleanup.
type Opener = func(t *testing.T) (spi.Provider, spi.Config)

// Check is one rule of the contract, checked against a provider from an Opener.
type Check struct {
	Name string
	Run  func(t *testing.T, open Opener)
}

// idPattern is what a provider id and an option name look like: the <id> and <option> of
// --spi-<spi>-<id>-<option> keys.
var idPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Malformed is a value of each option type that no provider may take, as sessiond refuses
// it before the provider sees it; nil for String, which takes anything. One each: every
// value costs the check a provider (a plugin process) of its own.
func Malformed(t spi.OptionType) []string {
	switch t {
	case spi.Int:
		return []string{"1.5"}
	case spi.Bool:
		return []string{"maybe"}
	case spi.Duration:
		return []string{"soon"}
	case spi.Enum:
		return []string{"none-of-the-allowed-values"}
	}
	return nil
}

// Checks are the rules of spi.Provider for a provider of the SPI named spiName.
func Checks(spiName string) []Check {
	return []Check{
		{"Describe names the SPI, a provider id, a version and a line of help", func(t *testing.T, open Opener) {
			p, _ := open(t)
			d := p.Describe()
			if d.SPI != spiName {
				t.Errorf("Describe().SPI = %q, want %q", d.SPI, spiName)
			}
			if !idPattern.MatchString(d.ID) {
				t.Errorf("Describe().ID = %q: want lower-case words joined by hyphens, as in --spi-%s-<id>-…", d.ID, spiName)
			}
			if d.Version == "" {
				t.Error("Describe().Version is empty: plugins list and the log show it")
			}
			if d.Help == "" {
				t.Error("Describe().Help is empty: the configuration reference shows it")
			}
		}},
		{"every option is declared well-formed, with a default of its own type", func(t *testing.T, open Opener) {
			p, _ := open(t)
			seen := map[string]bool{}
			for _, o := range p.Describe().Options {
				if !idPattern.MatchString(o.Name) {
					t.Errorf("option %q: want lower-case words joined by hyphens", o.Name)
				}
				if seen[o.Name] {
					t.Errorf("option %q is declared twice", o.Name)
				}
				seen[o.Name] = true
				if o.Help == "" {
					t.Errorf("option %q has no help", o.Name)
				}
				if err := Valid(o, o.Default); o.Default != "" && err != nil {
					t.Errorf("option %q: default %v", o.Name, err)
				}
				switch o.Type {
				case spi.String, spi.Int, spi.Bool, spi.Duration:
				case spi.Enum:
					if len(o.Allowed) == 0 {
						t.Errorf("enum option %q allows no value", o.Name)
					}
				default:
					t.Errorf("option %q has type %q, not one of the spi.OptionType constants", o.Name, o.Type)
				}
			}
		}},
		{"Configure takes the options it declared, and Close releases them", func(t *testing.T, open Opener) {
			p, cfg := open(t)
			if err := p.Configure(t.Context(), cfg); err != nil {
				t.Fatalf("Configure(%v): %v", cfg, err)
			}
			if err := p.Close(closeContext(t)); err != nil {
				t.Errorf("Close: %v", err)
			}
		}},
		{"Describe says the same before and after Configure", func(t *testing.T, open Opener) {
			p, cfg := open(t)
			before := p.Describe()
			if err := p.Configure(t.Context(), cfg); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if after := p.Describe(); !reflect.DeepEqual(before, after) {
				t.Errorf("Describe() before Configure:\n%+v\nafter:\n%+v", before, after)
			}
		}},
		{"a malformed value of a typed option is refused with ErrInvalid", func(t *testing.T, open Opener) {
			p, _ := open(t)
			tried := 0
			for _, o := range p.Describe().Options {
				for _, bad := range Malformed(o.Type) {
					tried++
					t.Run(o.Name+"="+bad, func(t *testing.T) {
						q, cfg := open(t)
						withBad := spi.Config{}
						for k, v := range cfg {
							withBad[k] = v
						}
						withBad[o.Name] = bad
						err := q.Configure(t.Context(), withBad)
						if !errors.Is(err, spi.ErrInvalid) {
							t.Errorf("Configure with %s=%q: %v; want an error wrapping spi.ErrInvalid (sdk.ReadConfig reads options so)", o.Name, bad, err)
						}
					})
				}
			}
			if tried == 0 {
				t.Skip("the provider declares no typed option")
			}
		}},
	}
}

// Valid says whether v is a value of o's type, as sessiond reads it.
func Valid(o spi.Option, v string) error {
	var err error
	switch o.Type {
	case spi.Int:
		_, err = strconv.Atoi(v)
	case spi.Bool:
		_, err = strconv.ParseBool(v)
	case spi.Duration:
		if _, nerr := strconv.ParseInt(v, 10, 64); nerr != nil {
			_, err = time.ParseDuration(v)
		}
	case spi.Enum:
		for _, a := range o.Allowed {
			if a == v {
				return nil
			}
		}
		err = errors.New("not one of the allowed values")
	}
	if err != nil {
		return errors.New(strconv.Quote(v) + " is not a " + string(o.Type) + ": " + err.Error())
	}
	return nil
}

func closeContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Ended returns a context that has already been cancelled, and one whose deadline has
// passed, named: what the suites call each SPI's method with.
func Ended(t *testing.T) []struct {
	Name string
	Ctx  context.Context
	Err  error
} {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel2)
	return []struct {
		Name string
		Ctx  context.Context
		Err  error
	}{{"cancelled", cancelled, context.Canceled}, {"past its deadline", expired, context.DeadlineExceeded}}
}
