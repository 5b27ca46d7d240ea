package conf

import (
	"time"

	"github.com/sessiond/sessiond/spi"
)

// List is the type of an option holding comma-separated values. It extends
// spi.OptionType for server options; providers use the spi types only.
const List spi.OptionType = "list"

// ServerOption declares one option of sessiond itself (not of a provider).
type ServerOption struct {
	Name     string
	Type     spi.OptionType
	Default  string             // as written on the command line; "" means unset
	Profiles map[Profile]string // defaults that differ by profile, overriding Default
	Help     string
	Secret   bool
	Allowed  []string // for spi.Enum
}

// DefaultFor is the option's default under profile p.
func (o ServerOption) DefaultFor(p Profile) string {
	if v, ok := o.Profiles[p]; ok {
		return v
	}
	return o.Default
}

// The server options. Keeping them as data lets Load, show-config, the suggestions for a
// misspelt key and the reference all agree.
const (
	keyConfig               = "config"
	keyHTTPHost             = "http-host"
	keyHTTPPort             = "http-port"
	keyFeatures             = "features"
	keyFeaturesDisabled     = "features-disabled"
	keyLogLevel             = "log-level"
	keyLogFormat            = "log-format"
	keyNodeID               = "node-id"
	keyRealmFile            = "realm-file"
	keyPluginDir            = "plugin-dir"
	keyPluginSocketDir      = "plugin-socket-dir"
	keyPluginRestartBackoff = "plugin-restart-backoff"
	keyShutdownTimeout      = "shutdown-timeout"
	keyHostname             = "hostname"
	keyFrontendToken        = "frontend-token"
	keyAdminToken           = "admin-token"
	keyAdminViewerToken     = "admin-viewer-token"
	keyAdminConsoleEnabled  = "admin-console-enabled"
	keyConsoleOIDCRealm     = "admin-console-oidc-realm"
	keyConsoleOIDCClient    = "admin-console-oidc-client"
	keyConsoleOIDCClaim     = "admin-console-oidc-role-claim"
	keyConsoleOIDCRole      = "admin-console-oidc-role"
	keyConsoleOIDCViewRole  = "admin-console-oidc-viewer-role"
	keyCleanupInterval      = "cleanup-interval"
	keyCleanupBatchSize     = "cleanup-batch-size"
	keyGroupCommitInFlight  = "group-commit-max-in-flight"
	keyCacheMaxEntries      = "cache-max-entries"
	keyVerifiedTokenCache   = "verified-token-cache-max-entries"
	keyMetricsEnabled       = "metrics-enabled"
	keyEventLogFile         = "event-log-file"
	keyPushMaxAttempts      = "push-max-attempts"
	keyPushBackoffInitial   = "push-backoff-initial"
	keyPushBackoffMax       = "push-backoff-max"
	keyPushLease            = "push-lease"
	keyPushBatchSize        = "push-batch-size"

	// Production mode (serving.go): TLS, plain HTTP behind a proxy, the management
	// interface, the hostname rule. Keycloak's keys.
	keyHTTPEnabled             = "http-enabled"
	keyHTTPSPort               = "https-port"
	keyHTTPSCertificateFile    = "https-certificate-file"
	keyHTTPSCertificateKeyFile = "https-certificate-key-file"
	keyHTTPSProtocols          = "https-protocols"
	keyHTTPSReloadPeriod       = "https-certificates-reload-period"
	keyHostnameStrict          = "hostname-strict"
	keyProxyHeaders            = "proxy-headers"
	keyProxyTrustedAddresses   = "proxy-trusted-addresses"
	keyManagementPort          = "http-management-port"
	keyManagementRelativePath  = "http-management-relative-path"

	// Failed authentication (core/authfail).
	keyAuthFailureLimit       = "auth-failure-limit"
	keyAuthFailureClientLimit = "auth-failure-client-limit"
	keyAuthFailureWindow      = "auth-failure-window"

	// Logins started at the authorization endpoint (core/authfail StartLogin).
	keyLoginRequestLimit  = "login-request-limit"
	keyLoginRequestWindow = "login-request-window"
)

// Bounds of the failed-authentication options (and of the logins-started ones, which
// share them): a window under a second would let a guesser through at full speed, one over
// a day would hold a typo against a caller for longer than anyone would wait.
const (
	maxAuthFailureLimit  = 1000000
	minAuthFailureWindow = time.Second
	maxAuthFailureWindow = 24 * time.Hour

	keyLegacyTokens        = "legacy-tokens"
	keyKeyRotationInterval = "key-rotation-interval"
	keyKEKFile             = "key-encryption-key-file"
	keyKEK                 = "key-encryption-key"
)

// minKeyRotationInterval bounds automatic key rotation: a new key more often than every
// minute would have every node re-reading keys and clients re-fetching the JWKS for nothing.
const minKeyRotationInterval = time.Minute

// Bounds of the revocation-push outbox options: a retry more often than ten times a second
// hammers a client that is down, and a lease under a second is shorter than one request.
const (
	maxPushMaxAttempts    = 1000
	minPushBackoffInitial = 100 * time.Millisecond
	minPushLease          = time.Second
	maxPushBatchSize      = 10000
	// pushTimeoutOption is the request timeout option of the built-in HTTP revocation-push
	// providers (providers/revocation/internal/httppush.OptTimeout); push-lease must be
	// at least twice it.
	pushTimeoutOption = "timeout"
)

// Bounds of the cleanup options: a pass more often than every second would keep the store
// busy for nothing, and a batch above 100,000 rows holds locks long enough to stall the
// writes that batching is there to let through.
const (
	minCleanupInterval  = time.Second
	maxCleanupBatchSize = 100000
	// A billion compact entries would be about a terabyte: anything above is a typo.
	maxCacheMaxEntries = 1000000000
	// Ten million verified tokens is more than any node sees again within their lifetimes.
	maxVerifiedTokenCache = 10000000
	// Each session write in flight holds a store connection; beyond 64 the pool, not the
	// commits, is what they wait for.
	maxGroupCommitInFlight = 64
)

// DefaultConfigFile is read when no --config is given; its absence is not an error.
const DefaultConfigFile = "conf/sessiond.conf"

// ServerOptions lists sessiond's own options, then the provider selection key of each SPI
// (spi-<spi>-provider), in the order show-config and the reference print them.
func ServerOptions() []ServerOption {
	return []ServerOption{
		{Name: keyConfig, Type: spi.String, Default: DefaultConfigFile,
			Help: "Configuration file, relative to the working directory. Set it as a flag or env var; a missing default file is ignored, a missing named one is an error."},
		{Name: keyHTTPHost, Type: spi.String, Default: "0.0.0.0", Profiles: map[Profile]string{ProfileDev: "127.0.0.1"},
			Help: "Address the public listener (HTTPS or HTTP) and the management interface listen on."},
		{Name: keyHTTPPort, Type: spi.Int, Default: "8080",
			Help: "Port of the plain-HTTP listener (with http-enabled, and no TLS material); 0 picks a free port."},
		{Name: keyHTTPEnabled, Type: spi.Bool, Default: "false", Profiles: map[Profile]string{ProfileDev: "true"},
			Help: "Serve plain HTTP on http-port when no TLS material is given. start refuses to run without TLS material unless this is true: set it only behind a TLS-terminating proxy. Setting it together with https-certificate-file is refused (one public listener)."},
		{Name: keyHTTPSPort, Type: spi.Int, Default: "8443",
			Help: "Port of the HTTPS listener, used when https-certificate-file is set; 0 picks a free port."},
		{Name: keyHTTPSCertificateFile, Type: spi.String,
			Help: "PEM file of the server certificate (and its chain) for HTTPS; with https-certificate-key-file. start requires TLS material unless http-enabled=true."},
		{Name: keyHTTPSCertificateKeyFile, Type: spi.String,
			Help: "PEM file of the private key of https-certificate-file."},
		{Name: keyHTTPSProtocols, Type: List, Default: "TLSv1.3,TLSv1.2",
			Help: "TLS versions HTTPS accepts: TLSv1.3 and TLSv1.2. Older versions are refused."},
		{Name: keyHTTPSReloadPeriod, Type: spi.Duration, Default: "1m",
			Help: "How often the certificate and key files are checked for a change (their modification time and size) and reloaded, at the next TLS handshake after the period; a pair that does not load keeps the one in use and is logged. At least 1s; -1 disables reloading."},
		{Name: keyHostnameStrict, Type: spi.Bool, Default: "true", Profiles: map[Profile]string{ProfileDev: "false"},
			Help: "Require hostname under start. false lets start run without it: tokens then carry the bound address (a loopback one when bound to all interfaces) and a warning says so."},
		{Name: keyProxyHeaders, Type: spi.Enum, Allowed: []string{"forwarded", "xforwarded"},
			Help: "Trust the reverse proxy's headers for the client address and scheme: `forwarded` (RFC 7239 Forwarded) or `xforwarded` (X-Forwarded-For, X-Forwarded-Proto). Unset: those headers are ignored and the client address is the connection's."},
		{Name: keyProxyTrustedAddresses, Type: List,
			Help: "Addresses or CIDR ranges of the proxies whose headers proxy-headers trusts; a request from any other address has its headers ignored. Unset: every peer is trusted, so only the proxy must be able to reach sessiond."},
		{Name: keyManagementPort, Type: spi.Int, Default: "9000",
			Help: "Port of the management interface under start: /health/* and /metrics are served there only (over HTTPS when the public listener is), and the public listener answers 404 for them. start-dev serves them on its one port. 0 picks a free port."},
		{Name: keyManagementRelativePath, Type: spi.String, Default: "/",
			Help: "Path prefix of the management interface's routes, e.g. `/management` serves `/management/health/ready`."},
		{Name: keyFeatures, Type: List,
			Help: "Features to enable, comma-separated."},
		{Name: keyFeaturesDisabled, Type: List,
			Help: "Features to disable, comma-separated."},
		{Name: keyLogLevel, Type: spi.Enum, Default: "info", Allowed: []string{"trace", "debug", "info", "warn", "error"},
			Help: "Lowest level logged, for sessiond and its plugins."},
		{Name: keyLogFormat, Type: spi.Enum, Default: "text", Allowed: []string{"text", "json"},
			Help: "Log format on standard error."},
		{Name: keyNodeID, Type: spi.String,
			Help: "Name of this node among the nodes sharing a store; defaults to `<hostname>-<pid>`."},
		{Name: keyRealmFile, Type: List,
			Help: "Realm JSON files to load, comma-separated; start-dev uses a built-in demo realm when unset."},
		{Name: keyPluginDir, Type: spi.String, Default: DefaultPluginDir, Profiles: map[Profile]string{ProfileDev: DefaultDevPluginDir},
			Help: "Directory of third-party plugin binaries: relative plugin command paths are resolved against it, and a relative plugin-dir against the working directory. Not the repository's plugins/ folder, which holds Go source (before, plugin-dir defaulted to plugins; set --plugin-dir=plugins to keep binaries there). It and the folders down to each plugin binary must be writable by their owner alone, root or sessiond's user; a plugin's symlink may not lead out of it."},
		{Name: keyPluginSocketDir, Type: spi.String, Default: "/tmp",
			Help: "Directory for plugin unix sockets; keep it short, a socket path is limited to about 108 bytes."},
		{Name: keyPluginRestartBackoff, Type: spi.Duration, Default: "100ms",
			Help: "Delay before a crashed plugin is first restarted; it doubles with each further failure up to 30s."},
		{Name: keyHostname, Type: spi.String,
			Help: "Public base URL of sessiond (e.g. `https://sso.example.com`); token issuers are `<hostname>/realms/<realm>`. Required by start unless hostname-strict=false. A name without scheme gets `https://` (under start-dev serving plain HTTP, `http://`). Unset under start-dev: the bound address."},
		{Name: keyFrontendToken, Type: spi.String, Secret: true,
			Help: "Bearer credential of the login front-end, which opens sessions. Unset: start-dev generates one and prints it once; start refuses every front-end call. start refuses one shorter than 32 characters, equal to another credential, or a development one."},
		{Name: keyAdminToken, Type: spi.String, Secret: true,
			Help: "Bearer credential of the bootstrap administrator (session explanations, and the admin API). Unset: start-dev generates one and prints it once; start refuses every admin call. start refuses one shorter than 32 characters, equal to another credential, or a development one."},
		{Name: keyAdminViewerToken, Type: spi.String, Secret: true,
			Help: "Bearer credential that may only view the admin API (its GET routes: sessions, statistics, not-before policies, push deliveries); acting routes answer 403 to it. Unset: no view-only access. start refuses one shorter than 32 characters, equal to another credential, or a development one."},
		{Name: keyAdminConsoleEnabled, Type: spi.Bool, Default: "true",
			Help: "Serve the admin console at `/admin/console/` on the public listener, beside the admin API it is a front of (docs/admin-console.md): sign in with admin-token or admin-viewer-token. `false` leaves it out (the path then answers as any unknown admin path)."},
		{Name: keyConsoleOIDCRealm, Type: spi.String,
			Help: "Also let operators sign in to the admin console through OpenID Connect against this realm of sessiond itself (docs/admin-console.md): the console is a client of it (admin-console-oidc-client) and takes the role from the ID token's admin-console-oidc-role-claim. Unset: the credentials only."},
		{Name: keyConsoleOIDCClient, Type: spi.String,
			Help: "The admin console's clientId in admin-console-oidc-realm: a client whose redirect URIs hold `<base URL>/admin/console/oidc/callback` (confidential, its secret from the realm file, or public with PKCE, which is always used). Required with admin-console-oidc-realm."},
		{Name: keyConsoleOIDCClaim, Type: spi.String, Default: "roles",
			Help: "The ID token claim (a string or a list of strings, as the login front-end gives it at accept) that holds the operator's console role."},
		{Name: keyConsoleOIDCRole, Type: spi.String,
			Help: "The value of admin-console-oidc-role-claim that makes an operator signed in through OpenID Connect an administrator of the console. Required with admin-console-oidc-realm."},
		{Name: keyConsoleOIDCViewRole, Type: spi.String,
			Help: "The value of admin-console-oidc-role-claim that lets an operator signed in through OpenID Connect view the console only. Unset: no view-only sign-in through OpenID Connect."},
		{Name: keyShutdownTimeout, Type: spi.Duration, Default: "10s",
			Help: "How long a shutdown waits for requests in flight and plugins to finish."},
		{Name: keyCleanupInterval, Type: spi.Duration, Default: "15m",
			Help: "How often expired user and client sessions are removed from the store (Keycloak's scheduled-task interval is 900 s); the first pass runs at start-up. At least 1s."},
		{Name: keyCleanupBatchSize, Type: spi.Int, Default: "1000",
			Help: "Most expired user sessions one cleanup statement removes; a pass repeats batches, pausing between them, so live traffic is not held up. Also the page size of the recompute of stored expiries after a realm's timeouts change. From 1 to 100000."},
		{Name: keyGroupCommitInFlight, Type: spi.Int, Default: "1",
			Help: "Most session writes of one kind (refresh touches, rotations, client-session writes, creations) a node has in flight to the user-sessions store at once. Concurrent refreshes beyond that queue and share the next write, and so one commit (group commit); each is answered only after its own write has committed. More in flight lets commits overlap (PostgreSQL flushes the log of concurrent commits together), which helps when each commit waits on a slow disk or a distant server and the node has CPU to spare; each write costs CPU, and where the CPU is the limit more in flight is slower (hence the default of one at a time). Each write in flight holds one of the store's connections (the postgres provider's max-open-conns), so keep it well below that. From 1 to 64."},
		{Name: keyCacheMaxEntries, Type: spi.Int, Default: "10000",
			Help: "Most user sessions (online and offline) kept in the in-process session cache; the least recently used is forgotten first, never deleted from the store. The offline preload stops when the cache is full. About 350 bytes a cached session, most of it outside the Go heap (not under GOMEMLIMIT). From 1 to 1000000000."},
		{Name: keyVerifiedTokenCache, Type: spi.Int, Default: "32768",
			Help: "Most tokens whose signature check a node remembers (core/token's verified-token cache, keyed by a SHA-256 of the token, never the token), so that a token presented again skips the signature verification; its expiry, issuer, key and session are checked on every use all the same. The least recently used half is forgotten first. 0 turns the cache off. From 0 to 10000000."},
		{Name: keyMetricsEnabled, Type: spi.Bool, Default: "false",
			Help: "Serve Prometheus metrics at `GET /metrics` (Keycloak's key), on the management interface under start and on the one port under start-dev: sessions per realm and client, refreshes, refusals and token endpoint latency, cleanup, preload, plugins, push deliveries."},
		{Name: keyEventLogFile, Type: spi.String,
			Help: "File the security event log (logins, refreshes, refusals, logouts, admin actions) is appended to as JSON lines for a SIEM; `-` is standard output. Unset: events go to the log under `sessiond.events`."},

		{Name: keyPushMaxAttempts, Type: spi.Int, Default: "10",
			Help: "Attempts a revocation push delivery gets, the first included, before it is marked failed (the admin API lists failed deliveries). From 1 to 1000."},
		{Name: keyPushBackoffInitial, Type: spi.Duration, Default: "5s",
			Help: "Wait before a revocation push to a client that is down is retried; it doubles with each further failure up to push-backoff-max, less a random part of up to half. Also how often each node looks for due deliveries. At least 100ms."},
		{Name: keyPushBackoffMax, Type: spi.Duration, Default: "10m",
			Help: "Longest wait between two attempts of a revocation push delivery; a value below push-backoff-initial counts as push-backoff-initial. At least 100ms."},
		{Name: keyPushLease, Type: spi.Duration, Default: "1m",
			Help: "How long a node holds the deliveries it is attempting before another node sharing the store may take them over. An attempt is cut off at three quarters of it, so that its outcome is recorded before the lease ends; the rest of a batch is retried later. At least 1s, and at least twice the revocation-push provider's timeout."},
		{Name: keyPushBatchSize, Type: spi.Int, Default: "100",
			Help: "Most due revocation push deliveries one retry pass takes at once. From 1 to 10000."},

		{Name: keyAuthFailureLimit, Type: spi.Int, Default: "20",
			Help: "Failed authentications (OAuth client, front-end or admin credential) an address may make per auth-failure-window; past it, its attempts are answered 429 with Retry-After before the credential is compared, until a failure's worth of the window has passed (window / limit). Successful ones cost nothing. Addresses sharing a proxy share the limit unless the proxy's headers are trusted. 0 turns the per-address limit off. From 0 to 1000000."},
		{Name: keyAuthFailureClientLimit, Type: spi.Int, Default: "100",
			Help: "Wrong secrets one confidential client may be sent, from any address, per auth-failure-window; past it, attempts for the client are answered 429, except from addresses that authenticated it in the last hour (its own servers keep working while someone else guesses). 0 turns the per-client limit off; with auth-failure-limit also 0 nothing is ever slowed. From 0 to 1000000."},
		{Name: keyAuthFailureWindow, Type: spi.Duration, Default: "1m",
			Help: "The window of auth-failure-limit and auth-failure-client-limit: a caller that keeps failing gets that many failures per window. From 1s to 24h."},
		{Name: keyLoginRequestLimit, Type: spi.Int, Default: "100",
			Help: "Logins an address may start per login-request-window at the authorization endpoint (each writes a pending login to the store that lives until the realm's login timeout, and needs no authentication). Past it, the browser is shown an error page with 429 and Retry-After and nothing is written, until a login's worth of the window has passed (window / limit); the refusals are audited (auth_refused, kind login) and counted. prompt=none requests are not counted (they write no pending login). IPv6 addresses count by their /64. A person starts a handful a minute; 100 leaves room for a NAT of many people, and bounds the pending logins one address can hold to limit + limit per window of login timeout. Addresses sharing a proxy share the limit unless the proxy's headers are trusted. 0 turns it off. From 0 to 1000000."},
		{Name: keyLoginRequestWindow, Type: spi.Duration, Default: "1m",
			Help: "The window of login-request-limit. From 1s to 24h."},

		{Name: keyLegacyTokens, Type: spi.Enum, Default: "accept", Allowed: []string{"accept", "refuse"},
			Help: "Tokens in the format sessiond issued before access tokens carried `typ: at+jwt` and refresh tokens were signed with a realm secret: `accept` takes such refresh and offline tokens where a refresh token belongs (refresh, logout, revocation, introspection with `token_type_hint=refresh_token`) and answers with tokens in the current format, and such access tokens at introspection until they expire; `refuse` takes none. The first one seen in a realm is logged."},

		{Name: keyKeyRotationInterval, Type: spi.Duration, Default: "720h",
			Help: "How old a realm's active keys (the published signing key and the refresh token secret) grow before each node's background check replaces them; the old ones keep verifying for as long as a token they signed can live (access token lifespan for the published key, the longest session idle timeout for the secret), then leave the JWKS. Nodes sharing a store rotate once between them. `0` turns automatic rotation off; `POST /admin/realms/<realm>/keys/rotate` and `sessiond admin keys rotate` rotate on demand. At least 1m."},

		{Name: keyKEKFile, Type: spi.String,
			Help: "File holding the key-encryption key: 32 random bytes in base64 (make one with `head -c 32 /dev/urandom | base64 > kek && chmod 600 kek`). Realm private keys and refresh token secrets are stored encrypted with it (AES-256-GCM); keys found in plain text are encrypted at first use. Every node sharing a store needs the same key. `start` refuses to run without this or key-encryption-key; start-dev stores keys in plain text without it."},
		{Name: keyKEK, Type: spi.String, Secret: true,
			Help: "The key-encryption key itself, in the format of key-encryption-key-file; meant for the environment (`SESSIOND_KEY_ENCRYPTION_KEY`). Set one of the two."},

		// Built-in defaults; a profile can pick another one here.
		{Name: selectionKey(spi.UserSessions), Type: spi.String, Default: "postgres", Profiles: map[Profile]string{ProfileDev: "embedded"},
			Help: "Provider of the user-sessions SPI (session storage): `postgres` for production, `embedded` (one local file, nothing to install) under start-dev."},
		{Name: selectionKey(spi.OfflinePreload), Type: spi.String, Default: "lazy",
			Help: "Provider of the offline-preload SPI (how offline sessions reach the cache)."},
		{Name: selectionKey(spi.CacheLifespan), Type: spi.String, Default: "default",
			Help: "Provider of the cache-lifespan SPI (how long a session stays cached)."},
		{Name: selectionKey(spi.RevocationPush), Type: spi.String, Default: "log-only",
			Help: "Provider of the revocation-push SPI (how a not-before policy reaches clients)."},
	}
}

// Where plugin binaries live by default: a system folder under start (owned by root, as
// the rules on plugin folders want), bin/plugins under start-dev, where `go build -o
// bin/plugins/` puts them from a checkout. Neither is plugins/, the Go source folder.
const (
	DefaultPluginDir    = "/usr/lib/sessiond/plugins"
	DefaultDevPluginDir = "bin/plugins"
)

func selectionKey(spiName string) string { return "spi-" + spiName + "-provider" }

// SelectionAlias is a key of the seed (Keycloak) that, rather than setting an option of a
// provider, picks the provider of an SPI: a boolean, true selecting IfTrue and false
// IfFalse. It is written and layered like any key (file, env, flag; a higher layer wins,
// and one layer may not set it together with the selection key it stands for).
type SelectionAlias struct {
	Key             string
	SPI             string
	IfTrue, IfFalse string
}

// SelectionAliases lists the selection aliases. An option alias (spi.Option.Aliases) maps
// a key onto one option of one provider and cannot say "use this provider"; these can.
func SelectionAliases() []SelectionAlias {
	return []SelectionAlias{
		// Keycloak: --spi-user-sessions-infinispan-preload-offline-sessions-from-database=true
		// preloads offline sessions at start-up (false, its default since 17, loads them lazily).
		{Key: "spi-user-sessions-infinispan-preload-offline-sessions-from-database", SPI: spi.OfflinePreload, IfTrue: "database", IfFalse: "lazy"},
	}
}

func selectionAlias(key string) (SelectionAlias, bool) {
	for _, a := range SelectionAliases() {
		if a.Key == key {
			return a, true
		}
	}
	return SelectionAlias{}, false
}

// Feature declares a feature toggle.
type Feature struct {
	Name    string
	Default bool
	Help    string
}

// Feature names that the runtime branches on.
const (
	FeaturePersistentUserSessions = "persistent-user-sessions"
	FeatureTransientSessions      = "transient-sessions"
)

// KnownFeatures lists every feature toggle.
func KnownFeatures() []Feature {
	return []Feature{
		{Name: FeaturePersistentUserSessions, Default: true,
			Help: "Online user sessions are written to the store and survive a restart; when off they live in the cache only and the 2-minute idle grace window applies."},
		{Name: FeatureTransientSessions, Default: true,
			Help: "Logins may ask for a transient session, which is never stored and cannot be refreshed or introspected."},
	}
}

// Features is the state of every known feature.
type Features map[string]bool

// Enabled reports whether the feature is on. Unknown names are off.
func (f Features) Enabled(name string) bool { return f[name] }

// The reserved per-provider options sessiond itself reads.
const (
	optInProcess = "in-process" // built-ins: run inside sessiond instead of as a plugin process
	optCommand   = "command"    // third-party: plugin binary, relative to plugin-dir
	optSHA256    = "sha256"     // third-party: hex SHA-256 the binary must have
)

func reservedOption(name string) bool {
	return name == optInProcess || name == optCommand || name == optSHA256
}

// reservedOptions are the host options of a provider, declared like its own, for
// show-config and the reference.
func reservedOptions(thirdParty bool) []spi.Option {
	if thirdParty {
		return []spi.Option{
			{Name: optCommand, Type: spi.String, Help: "Plugin binary of this third-party provider, relative to plugin-dir unless absolute; registers the provider. A regular file writable by its owner alone (root or sessiond's user), run with none of sessiond's environment but PATH, HOME, locale and time zone."},
			{Name: optSHA256, Type: spi.String, Help: "Hex SHA-256 the plugin binary must have; required with command."},
		}
	}
	return []spi.Option{
		{Name: optInProcess, Type: spi.Bool, Default: "false", Help: "Run this built-in provider inside the sessiond process instead of as a plugin process."},
	}
}
