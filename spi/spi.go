// Package spi holds what every service provider interface of sessiond shares: the
// description a provider gives of itself and its options, and the errors callers branch on.
//
// The four contracts live in the sub-packages usersessions, offlinepreload, cachelifespan
// and revocationpush. Nothing here imports core/, providers/ or plugins/.
package spi

import (
	"context"
	"errors"
)

// The identifiers of the four SPIs, as they appear in configuration keys
// (--spi-<spi>-provider=<id>).
const (
	UserSessions   = "user-sessions"
	OfflinePreload = "offline-preload"
	CacheLifespan  = "cache-lifespan"
	RevocationPush = "revocation-push"
)

// Names lists the SPIs in the order they are started.
func Names() []string {
	return []string{UserSessions, OfflinePreload, CacheLifespan, RevocationPush}
}

// OptionType is the type of a provider option's value. Values travel as strings
// (they come from flags, env and files) and are checked against the type before the
// provider sees them.
type OptionType string

const (
	String   OptionType = "string"
	Int      OptionType = "int"
	Bool     OptionType = "bool"
	Duration OptionType = "duration" // Go duration syntax ("90s") or whole seconds ("90")
	Enum     OptionType = "enum"     // one of Option.Allowed
)

// Option declares one setting of a provider: --spi-<spi>-<provider>-<Name>.
type Option struct {
	Name    string     // lower-case, hyphenated, e.g. "batch-size"
	Type    OptionType //
	Default string     // as it would be written on the command line; "" means unset
	Help    string     // one sentence for the configuration reference
	Secret  bool       // masked in show-config and logs
	Allowed []string   // for Enum
	// Aliases are whole keys accepted in place of this option's own key, e.g. the
	// seed's spi-user-sessions-infinispan-preload-offline-sessions-from-database.
	Aliases []string
}

// Descriptor is what a provider says about itself before it is configured, so the host
// can validate configuration for providers it does not know at compile time.
type Descriptor struct {
	SPI     string // one of the SPI constants
	ID      string // provider id, e.g. "postgres"
	Version string // the provider's own version
	Help    string // one sentence
	Options []Option
}

// Option returns the declared option with that name.
func (d Descriptor) Option(name string) (Option, bool) {
	for _, o := range d.Options {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

// Config is a provider's option values, already validated against its Descriptor.
// Options that were not set carry their default. Keys starting with "host." are set by the
// runtime, not the operator (see HostNodeID).
type Config map[string]string

// HostNodeID is the Config key under which the runtime passes its node id, which a
// user-sessions provider writes as Change.Origin so a node can skip its own changes.
const HostNodeID = "host.node-id"

// Provider is what every provider of every SPI implements besides its contract.
type Provider interface {
	// Describe may be called before Configure and must not do I/O.
	Describe() Descriptor
	// Configure is called once, before any other call, with validated options.
	// It may open connections and run migrations; an error stops start-up. A value that is
	// not of its option's declared type (which only a caller other than sessiond can pass)
	// is refused with an error wrapping ErrInvalid, as sdk.ReadConfig does; spitest checks it.
	Configure(ctx context.Context, cfg Config) error
	// Close releases what Configure opened.
	Close(ctx context.Context) error
}

// Errors callers branch on. Providers wrap them with %w; the plugin boundary carries them
// as gRPC status codes and restores them on the other side.
var (
	// ErrNotFound: the addressed session, client session or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create found the key already present.
	ErrExists = errors.New("already exists")
	// ErrConflict: an optimistic version check failed; re-read and retry.
	ErrConflict = errors.New("version conflict")
	// ErrUnavailable: the provider or its backing service is down; the call may be
	// retried later (HTTP 503 with Retry-After).
	ErrUnavailable = errors.New("provider unavailable")
	// ErrInvalid: the request itself is malformed; retrying it will not help.
	ErrInvalid = errors.New("invalid request")
)
