package sdk

import (
	"github.com/hashicorp/go-plugin"

	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/spi"
)

// ServeAs serves p as a plugin built for the given protocol versions would: the current
// protocol's services, offered under each of those version numbers.
func ServeAs(p spi.Provider, versions ...int) {
	serve(p, func(sets map[int]plugin.PluginSet) map[int]plugin.PluginSet {
		set := sets[wire.ProtocolVersion]
		out := map[int]plugin.PluginSet{}
		for _, v := range versions {
			out[v] = set
		}
		return out
	})
}
