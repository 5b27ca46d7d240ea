package sqlstore

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Options reads a provider's option values. The host has checked them against the
// Descriptor already; Options checks again, since a provider may be configured directly.
// The first bad value is kept in Err, and later reads return their default.
type Options struct {
	cfg spi.Config
	err error
}

// ReadOptions returns an Options over cfg.
func ReadOptions(cfg spi.Config) *Options { return &Options{cfg: cfg} }

// Err is the first bad value met, wrapping spi.ErrInvalid.
func (o *Options) Err() error { return o.err }

func (o *Options) value(name string) (string, bool) {
	v, ok := o.cfg[name]
	return v, ok && v != "" && o.err == nil
}

func (o *Options) bad(name, v, why string) {
	o.err = errors.Join(o.err, fmt.Errorf("option %s: %q %s: %w", name, v, why, spi.ErrInvalid))
}

// String returns the value of name, or def when unset.
func (o *Options) String(name, def string) string {
	if v, ok := o.value(name); ok {
		return v
	}
	return def
}

// Int returns the whole number name, at least least, or def when unset.
func (o *Options) Int(name string, def, least int) int {
	v, ok := o.value(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		o.bad(name, v, "is not a whole number")
	case n < least:
		o.bad(name, v, fmt.Sprintf("is below the least allowed value %d", least))
	default:
		return n
	}
	return def
}

// Duration returns the duration name (Go syntax, "90s", or whole seconds, "90"), not
// negative, or def when unset.
func (o *Options) Duration(name string, def time.Duration) time.Duration {
	v, ok := o.value(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, serr := strconv.Atoi(v)
		d, err = time.Duration(secs)*time.Second, serr
	}
	switch {
	case err != nil:
		o.bad(name, v, "is not a duration")
	case d < 0:
		o.bad(name, v, "is negative")
	default:
		return d
	}
	return def
}

// Bool returns the boolean name, or def when unset.
func (o *Options) Bool(name string, def bool) bool {
	v, ok := o.value(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		o.bad(name, v, "is not true or false")
		return def
	}
	return b
}
