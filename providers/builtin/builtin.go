// Package builtin is the catalog of the providers compiled into sessiond: what the host
// starts in-process, and what `sessiond plugin serve <spi> <id>` serves as a plugin.
package builtin

import (
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/cachelifespan/override"
	"github.com/sessiond/sessiond/providers/cachelifespan/remaining"
	"github.com/sessiond/sessiond/providers/preload/database"
	"github.com/sessiond/sessiond/providers/preload/lazy"
	"github.com/sessiond/sessiond/providers/revocation/adapter"
	"github.com/sessiond/sessiond/providers/revocation/logonly"
	"github.com/sessiond/sessiond/providers/revocation/ssf"
	"github.com/sessiond/sessiond/providers/revocation/webhook"
	"github.com/sessiond/sessiond/providers/usersessions/embedded"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
)

// Factory makes one built-in provider. New returns a fresh, unconfigured provider each
// time it is called.
type Factory struct {
	SPI, ID string
	New     func(log hclog.Logger) spi.Provider
}

// Catalog returns every built-in provider, in SPI order (spi.Names), then by id. The slice
// is new on every call; callers may keep or change it.
func Catalog() []Factory {
	return []Factory{
		{SPI: spi.UserSessions, ID: embedded.ID, New: func(log hclog.Logger) spi.Provider { return embedded.New(log) }},
		{SPI: spi.UserSessions, ID: memory.ID, New: func(log hclog.Logger) spi.Provider { return memory.New(log) }},
		{SPI: spi.UserSessions, ID: postgres.ID, New: func(log hclog.Logger) spi.Provider { return postgres.New(log) }},
		{SPI: spi.OfflinePreload, ID: database.ID, New: func(log hclog.Logger) spi.Provider { return database.New(log) }},
		{SPI: spi.OfflinePreload, ID: lazy.ID, New: func(log hclog.Logger) spi.Provider { return lazy.New(log) }},
		{SPI: spi.CacheLifespan, ID: remaining.ID, New: func(log hclog.Logger) spi.Provider { return remaining.New(log) }},
		{SPI: spi.CacheLifespan, ID: override.ID, New: func(log hclog.Logger) spi.Provider { return override.New(log) }},
		{SPI: spi.RevocationPush, ID: adapter.ID, New: func(log hclog.Logger) spi.Provider { return adapter.New(log) }},
		{SPI: spi.RevocationPush, ID: logonly.ID, New: func(log hclog.Logger) spi.Provider { return logonly.New(log) }},
		{SPI: spi.RevocationPush, ID: ssf.ID, New: func(log hclog.Logger) spi.Provider { return ssf.New(log) }},
		{SPI: spi.RevocationPush, ID: webhook.ID, New: func(log hclog.Logger) spi.Provider { return webhook.New(log) }},
	}
}

// Lookup returns the built-in provider of that SPI with that id.
func Lookup(spiName, id string) (Factory, bool) {
	for _, f := range Catalog() {
		if f.SPI == spiName && f.ID == id {
			return f, true
		}
	}
	return Factory{}, false
}
