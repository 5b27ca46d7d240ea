// Package optionless implements the spi.Provider half of built-in providers that take no
// options and hold no resources, so each of them only writes its contract.
package optionless

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
)

// Base is embedded by an option-less provider.
type Base struct {
	Descriptor spi.Descriptor
	Log        hclog.Logger // never nil
}

// New returns a Base describing itself as d and logging to log (nothing when nil).
func New(d spi.Descriptor, log hclog.Logger) Base {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return Base{Descriptor: d, Log: log}
}

// Describe implements spi.Provider.
func (b Base) Describe() spi.Descriptor { return b.Descriptor }

// Configure implements spi.Provider; the host has already refused any option, so there is
// nothing to check.
func (Base) Configure(context.Context, spi.Config) error { return nil }

// Close implements spi.Provider.
func (Base) Close(context.Context) error { return nil }
