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

// builtinEnv are the defaults of a plugin process that runs sessiond's own binary (a
// built-in provider), under what passes of sessiond's environment and the spec's own, so
// that an operator who sets the variable for sessiond sets it for these too.
//
// GOMAXPROCS=1: such a process spends its time waiting on the database and on sessiond;
// each wake-up (a gRPC frame, a database reply) in a Go process with idle Ps wakes another
// thread to spin for work and sleep again, which on the host's cores is what the plugin
// boundary mostly cost. Measured with bench/refresh (PostgreSQL through the plugin,
// rotation on, 6 interleaved rounds at c=16 and 64): CPU per refresh of sessiond and the
// plugin 0–29% lower (median 12%), refreshes/s at c=64 within the rounds' noise; the offline
// preload through the plugin no slower (both in the bench/refresh README).
var builtinEnv = []string{"GOMAXPROCS=1"}

// pluginEnv is a plugin's whole environment: defaults, then what passes of environ
// (sessiond's), then each of sets in order; a later value of a key wins, as exec keeps the
// last one.
func pluginEnv(defaults, environ []string, sets ...[]string) []string {
	env := slices.Clone(defaults)
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
