package host

import (
	"slices"
	"strings"
)

// hostEnv lists the variables of sessiond's own environment a plugin gets: those that
// describe the machine and the user rather than sessiond, and the Go runtime's knobs.
// Nothing else passes, so that credentials given to sessiond through its environment
// (SESSIOND_ADMIN_TOKEN, a database URL with its password, a cloud provider's keys) never
// reach a plugin; a plugin's settings reach it through the configure call.
var hostEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG",
	// Where the system's CA certificates are, for a plugin that speaks TLS.
	"SSL_CERT_FILE", "SSL_CERT_DIR",
	// Go's runtime settings, which an operator sets for all of sessiond's processes.
	"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK", "GORACE", "GOCOVERDIR",
}

// hostEnvPrefixes are the families of variables that pass too.
var hostEnvPrefixes = []string{"LC_"}

// pluginEnv is a plugin's whole environment: what passes of environ (sessiond's), then
// each of sets in order; a later value of a key wins, as exec keeps the last one.
func pluginEnv(environ []string, sets ...[]string) []string {
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(hostEnv, k) || slices.ContainsFunc(hostEnvPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			env = append(env, kv)
		}
	}
	for _, set := range sets {
		env = append(env, set...)
	}
	return env
}
