package wire

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ProtocolVersions lists, oldest first, the protocol versions this side speaks: the keys
// of ClientPlugins and ServerPlugins. go-plugin picks the newest one both sides list.
//
// The policy that keeps old plugins working: an incompatible change to the gRPC services
// adds a version rather than replacing one. The host keeps the adapters of every version
// it still supports in ClientPlugins, so a plugin built against an older SDK negotiates
// its own version and goes on working; a version is dropped only in a release that says
// so, and a plugin that speaks none of the host's versions is refused with a VersionError
// naming both sides' versions.
func ProtocolVersions() []int {
	return slices.Sorted(maps.Keys(ClientPlugins()))
}

// VersionError is the refusal of a plugin that speaks no protocol version the host speaks.
type VersionError struct {
	// Plugin is the version the plugin answered the handshake with. A go-plugin server that
	// shares no version with its host answers with the oldest it speaks.
	Plugin int
	// Host lists the versions the host offered.
	Host []int
	err  error
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("plugin protocol mismatch: the plugin speaks protocol version %d (the oldest it knows), this sessiond speaks %s; "+
		"rebuild the plugin against a github.com/sessiond/sessiond/plugins/sdk that speaks %s (the plugin's own log line lists every version it speaks)",
		e.Plugin, versionList(e.Host), versionList(e.Host))
}

// Unwrap returns go-plugin's own error.
func (e *VersionError) Unwrap() error { return e.err }

func versionList(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	if len(s) == 1 {
		return "version " + s[0]
	}
	return "versions " + strings.Join(s, ", ")
}

// go-plugin's client reports an incompatible handshake with this text (client.go,
// checkProtoVersion); TestVersionErrorFromGoPlugin pins it.
var incompatible = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (-?\d+), Client versions: \[([-\d ]*)\]`)

// ExplainStart turns go-plugin's error for a handshake without a common protocol version
// into a *VersionError; any other error, and nil, come back unchanged.
func ExplainStart(err error) error {
	if err == nil {
		return nil
	}
	m := incompatible.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	ve := &VersionError{err: err}
	ve.Plugin, _ = strconv.Atoi(m[1])
	for _, f := range strings.Fields(m[2]) {
		if v, err := strconv.Atoi(f); err == nil {
			ve.Host = append(ve.Host, v)
		}
	}
	slices.Sort(ve.Host)
	return ve
}
