package sdk

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Config reads a provider's options in Configure by the types its Descriptor declares.
//
// sessiond has already checked every value against the declared type and filled in the
// default of every option the operator did not set, so in a running plugin the reads
// cannot fail. Config still checks, because Configure is also called directly, from the
// author's own tests, with whatever they pass: an option missing from cfg reads as its
// declared default, and a malformed value is an error naming the option. Errors collect;
// Err returns them all at once.
//
//	func (p *Store) Configure(ctx context.Context, cfg spi.Config) error {
//		c := sdk.ReadConfig(p.Describe(), cfg)
//		url, pool, timeout := c.String("url"), c.Int("pool-size"), c.Duration("dial-timeout")
//		if err := c.Err(); err != nil {
//			return err
//		}
//		…
//	}
type Config struct {
	desc spi.Descriptor
	cfg  spi.Config
	errs []error
}

// ReadConfig returns a reader of cfg for the provider d describes.
func ReadConfig(d spi.Descriptor, cfg spi.Config) *Config {
	return &Config{desc: d, cfg: cfg}
}

// NodeID is the id of the sessiond node that configured the provider (spi.HostNodeID),
// "" when none was given. A user-sessions provider writes it as Change.Origin.
func (c *Config) NodeID() string { return c.cfg[spi.HostNodeID] }

// raw returns the value of option name as written, or its declared default, and the
// declaration. An undeclared name is the provider's own bug, reported through Err.
func (c *Config) raw(name string, want ...spi.OptionType) (string, spi.Option, bool) {
	o, ok := c.desc.Option(name)
	if !ok {
		c.fail(name, "", "is not declared in the provider's Descriptor")
		return "", o, false
	}
	if len(want) > 0 && !slices.Contains(want, o.Type) {
		c.fail(name, "", fmt.Sprintf("is declared as %s, not %s", o.Type, want[0]))
		return "", o, false
	}
	v, set := c.cfg[name]
	if !set {
		v = o.Default
	}
	return strings.TrimSpace(v), o, true
}

func (c *Config) fail(name, value, why string) {
	key := "spi-" + c.desc.SPI + "-" + c.desc.ID + "-" + name
	if value != "" {
		c.errs = append(c.errs, fmt.Errorf("%s=%q %s: %w", key, value, why, spi.ErrInvalid))
		return
	}
	c.errs = append(c.errs, fmt.Errorf("%s %s: %w", key, why, spi.ErrInvalid))
}

// String returns a string or enum option ("" when unset and without default).
func (c *Config) String(name string) string {
	v, _, _ := c.raw(name, spi.String, spi.Enum)
	return v
}

// Int returns an int option; 0 when unset and without default.
func (c *Config) Int(name string) int {
	v, _, ok := c.raw(name, spi.Int)
	if !ok || v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		c.fail(name, v, "is not a whole number")
	}
	return n
}

// Bool returns a bool option; false when unset and without default.
func (c *Config) Bool(name string) bool {
	v, _, ok := c.raw(name, spi.Bool)
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		c.fail(name, v, "is not true or false")
	}
	return b
}

// Duration returns a duration option, written in Go syntax ("90s") or as whole seconds
// ("90"); 0 when unset and without default.
func (c *Config) Duration(name string) time.Duration {
	v, _, ok := c.raw(name, spi.Duration)
	if !ok || v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		c.fail(name, v, "is not a duration such as 30s or 5m")
	}
	return d
}

// Err returns every problem the reads met, joined, wrapping spi.ErrInvalid; nil when
// there were none.
func (c *Config) Err() error { return errors.Join(c.errs...) }
