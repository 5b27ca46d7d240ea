package conf

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// ConsoleOIDC is the admin console's OpenID Connect sign-in (core/console): against Realm
// of sessiond itself, as client Client, with the role in the ID token's RoleClaim.
type ConsoleOIDC struct {
	Realm, Client, RoleClaim, AdminRole, ViewerRole string
}

// Settings is the configuration resolved against the providers' descriptors, typed and
// checked.
type Settings struct {
	Profile              Profile
	HTTPHost             string
	HTTPPort             int
	Features             Features
	LogLevel             string // trace, debug, info, warn, error
	LogFormat            string // text, json
	NodeID               string
	RealmFiles           []string
	PluginDir            string
	PluginSocketDir      string
	PluginRestartBackoff time.Duration
	ShutdownTimeout      time.Duration
	// CleanupInterval is how often expired sessions are removed; CleanupBatchSize the most
	// user sessions one delete removes (core/cleanup Options).
	CleanupInterval  time.Duration
	CleanupBatchSize int
	// GroupCommitInFlight is core/groupcommit's Options.MaxInFlight: the most session
	// writes of one kind in flight to the store at once (0: the package's default).
	GroupCommitInFlight int
	// CacheMaxEntries bounds the in-process session cache (core/cache Options.MaxEntries).
	CacheMaxEntries int
	// VerifiedTokenCache bounds the verified-token cache, as core/token's
	// Options.VerifiedTokens: 0 is its default (Settings not resolved from a
	// configuration), negative turns it off (the key's 0).
	VerifiedTokenCache int
	// MetricsEnabled serves /metrics; EventLogFile is the JSON-lines event log ("-" is
	// standard output, "" means the event log goes to the logger).
	MetricsEnabled bool
	EventLogFile   string
	// The revocation-push outbox (core/push Options): attempts per delivery, the backoff
	// between them, the lease a node holds deliveries under, the deliveries one pass takes.
	PushMaxAttempts                    int
	PushBackoffInitial, PushBackoffMax time.Duration
	PushLease                          time.Duration
	PushBatchSize                      int
	// The failed-authentication limits (core/authfail Options): failures per address and
	// per client in each AuthFailureWindow; 0 turns a limit off.
	AuthFailureLimit, AuthFailureClientLimit int
	AuthFailureWindow                        time.Duration
	// The limit of logins an address may start (core/authfail Options.LoginLimit) in
	// each LoginRequestWindow; 0 turns it off.
	LoginRequestLimit  int
	LoginRequestWindow time.Duration
	// Hostname is the public base URL ("" means derive it from the bound address).
	// HostnameStrict is false when start may run without one.
	Hostname       string
	HostnameStrict bool
	// Listeners: the public one (HTTPS with TLS material, else plain HTTP) and, under
	// start, the management interface (serving.go).
	Listen Listen
	// FrontendToken and AdminToken are bearer credentials ("" means none configured).
	FrontendToken, AdminToken string
	// AdminViewerToken is the view-only admin credential ("" means none).
	AdminViewerToken string
	// AdminConsoleEnabled serves the admin console (core/console).
	AdminConsoleEnabled bool
	// ConsoleOIDC is the admin console's OpenID Connect sign-in; Realm "" means none.
	ConsoleOIDC ConsoleOIDC
	// RefuseLegacyTokens refuses tokens in the format from before at+jwt and realm secrets
	// (legacy-tokens=refuse; core/token Options.RefuseLegacy).
	RefuseLegacyTokens bool
	// KeyRotationInterval is the age at which realm keys are rotated; 0 means never
	// automatically.
	KeyRotationInterval time.Duration
	// KeyEncryptionKeyFile and KeyEncryptionKey supply the key-encryption key (at most one
	// is set; see KeyEncryptionKeyBytes).
	KeyEncryptionKeyFile, KeyEncryptionKey string
	SPIs                                   map[string]SPISettings // by SPI name, one for each of spi.Names()

	// Unchecked are spi-* keys that no known provider claims while a registered
	// third-party provider has not described itself (it was not started), so they may
	// be its aliases. They are ignored; values masked.
	Unchecked []Entry
	// Warnings are settings that are accepted but do nothing (an option of a provider that
	// is not selected), each with its key and source; Start logs them once.
	Warnings []Problem

	effective []Entry
}

// SPISettings is the configuration of one SPI.
type SPISettings struct {
	Provider  string                      // id of the selected provider
	Providers map[string]ProviderSettings // every built-in and registered provider, by id
}

// ProviderSettings is the configuration of one provider.
type ProviderSettings struct {
	ID         string
	ThirdParty bool // registered by its command and sha256 keys
	Described  bool // its options were checked against its descriptor
	InProcess  bool // built-ins: run inside sessiond rather than as a plugin process
	Command    string
	SHA256     string // lower-case hex
	// Config holds the provider's own options, checked and normalised: bools "true" or
	// "false", ints in decimal, durations in Go syntax ("1m30s", so time.ParseDuration
	// reads them), unset options with their default. A provider that has not described
	// itself gets its values as written.
	Config spi.Config
}

// Effective lists every key with its effective value and source, for show-config.
// Secret values are masked.
func (s *Settings) Effective() []Entry { return slices.Clone(s.effective) }

// Registrations is what must be started before the configuration can be resolved.
type Registrations struct {
	Selected   map[string]string // SPI → id of the selected provider
	ThirdParty []Registration    // every registered plugin, selected or not
}

// Registration is a third-party provider registered by its command and sha256 keys.
type Registration struct {
	SPI, ID string
	Command string // joined to plugin-dir when relative
	SHA256  string // lower-case hex
}

// Registrations reads which provider each SPI selects and which third-party providers
// are registered. It checks everything that does not need a provider's descriptor
// (server options, features, the command/sha256 pairs); Resolve checks the rest.
func (l *Loaded) Registrations() (Registrations, error) {
	s, probs := l.resolve(nil, false)
	if err := probs.err(); err != nil {
		return Registrations{}, err
	}
	regs := Registrations{Selected: map[string]string{}}
	for _, name := range spi.Names() {
		ss := s.SPIs[name]
		regs.Selected[name] = ss.Provider
		for _, id := range sortedIDs(ss.Providers) {
			if p := ss.Providers[id]; p.ThirdParty {
				regs.ThirdParty = append(regs.ThirdParty, Registration{SPI: name, ID: id, Command: p.Command, SHA256: p.SHA256})
			}
		}
	}
	return regs, nil
}

// Resolve checks every key against descs (the built-in providers' descriptors and those
// of the third-party providers started so far) and returns the typed settings, or an
// *Error listing every problem.
func (l *Loaded) Resolve(descs []spi.Descriptor) (*Settings, error) {
	s, probs := l.resolve(descs, true)
	if err := probs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// setting is the value a key got from the highest layer that set it.
type setting struct {
	key   string // as written
	value string
	bare  bool
	src   Source
	layer int
}

type resolver struct {
	l      *Loaded
	c      *catalog
	values map[ref]setting
	probs  problems
	s      *Settings
}

func (l *Loaded) resolve(descs []spi.Descriptor, described bool) (*Settings, problems) {
	r := &resolver{l: l, values: map[ref]setting{}, s: &Settings{Profile: l.profile, SPIs: map[string]SPISettings{}}}
	r.c = newCatalog(descs, described, &r.probs)
	for _, ly := range l.layers {
		for _, k := range ly.k.Keys() {
			r.c.register(k)
		}
	}
	r.collect()
	server := r.server()
	r.listen()
	if l.serving {
		r.serve()
	}
	r.features(server)
	for _, name := range spi.Names() {
		r.spi(name)
	}
	if described {
		r.pushLease()
	}
	r.s.effective = append(r.s.effective, r.s.Unchecked...)
	return r.s, r.probs
}

// collect places every key of every layer; a higher layer overrides a lower one
// whatever spelling (alias, "--" form, env) each used.
func (r *resolver) collect() {
	var known []string
	for li, ly := range r.l.layers {
		for _, key := range ly.k.Keys() {
			st := setting{key: key, value: ly.k.String(key), bare: ly.bare[key], src: ly.src[key], layer: li}
			p := r.c.place(key)
			if !p.ok {
				if known == nil {
					known = r.c.keys()
				}
				sug := suggest(key, known)
				// Once the built-ins are described, a key close to a known one is a typo,
				// even while a plugin that might claim unknown keys has not described itself.
				if p.deferrable && (sug == "" || !r.c.described) {
					r.s.Unchecked = append(r.s.Unchecked, Entry{Key: key, Value: mask(st.value, true), Source: st.src})
					continue
				}
				msg := "unknown option " + st.src.spell(key)
				if sug != "" {
					msg += "; did you mean " + st.src.spell(sug) + "?"
				}
				if p.why != "" {
					msg += " (" + p.why + ")"
				}
				r.probs.add(st.src, key, "%s", msg)
				continue
			}
			if a, ok := selectionAlias(key); ok {
				// A boolean that stands for a provider selection.
				v := "true"
				if !st.bare {
					v = strings.ToLower(strings.TrimSpace(st.value))
				}
				switch v {
				case "true":
					st.value = a.IfTrue
				case "false":
					st.value = a.IfFalse
				default:
					r.probs.add(st.src, key, "invalid value %q for %s: want true (selects %s provider %s) or false (selects %s)",
						st.value, st.src.spell(key), a.SPI, a.IfTrue, a.IfFalse)
					continue
				}
				st.bare = false
			}
			if prev, dup := r.values[p.ref]; dup && prev.layer == li {
				r.probs.add(st.src, key, "%s and %s (%s) both set %s; keep one", st.src.spell(key), prev.src.spell(prev.key), prev.src, p.ref.key())
				continue
			}
			r.values[p.ref] = st
		}
	}
}

// value is the checked, normalised value of an option, its source, and whether it is
// usable (problems are recorded).
func (r *resolver) value(rf ref, def string, typ spi.OptionType, allowed []string) (string, Source, bool) {
	st, set := r.values[rf]
	if !set {
		if def == "" {
			return "", Source{}, true
		}
		st = setting{key: rf.key(), value: def}
	}
	if st.bare {
		if typ != spi.Bool {
			r.probs.add(st.src, st.key, "%s needs a value: %s=<value>", st.src.spell(st.key), st.src.spell(st.key))
			return "", st.src, false
		}
		st.value = "true"
	}
	v, want := checkValue(typ, allowed, st.value)
	if want != "" {
		r.invalid(st, want)
		return "", st.src, false
	}
	return v, st.src, true
}

func (r *resolver) invalid(st setting, want string) {
	r.probs.add(st.src, st.key, "invalid value %q for %s: want %s", st.value, st.src.spell(st.key), want)
}

func (r *resolver) entry(key, value string, src Source, secret bool) {
	r.s.effective = append(r.s.effective, Entry{Key: key, Value: mask(value, secret), Source: src})
}

// server sets the server options and returns their values by name.
func (r *resolver) server() map[string]string {
	vals := map[string]string{}
	for _, o := range ServerOptions() {
		if strings.HasPrefix(o.Name, "spi-") {
			continue // provider selections are printed with their SPI
		}
		v, src, ok := r.value(ref{option: o.Name}, o.DefaultFor(r.l.profile), o.Type, o.Allowed)
		r.entry(o.Name, v, src, o.Secret)
		if !ok {
			continue
		}
		vals[o.Name] = v
		st := r.values[ref{option: o.Name}]
		switch o.Name {
		case keyHTTPHost:
			r.s.HTTPHost = v
		case keyHTTPEnabled, keyHTTPSPort, keyHTTPSCertificateFile, keyHTTPSCertificateKeyFile, keyHTTPSProtocols,
			keyHTTPSReloadPeriod, keyProxyHeaders, keyProxyTrustedAddresses, keyManagementPort, keyManagementRelativePath:
			r.listenOption(o.Name, v, st)
		case keyHostnameStrict:
			r.s.HostnameStrict = v == "true"
		case keyHTTPPort:
			n, _ := strconv.Atoi(v)
			if n < 0 || n > 65535 {
				r.invalid(st, "a port from 0 to 65535")
			}
			r.s.HTTPPort = n
		case keyLogLevel:
			r.s.LogLevel = v
		case keyLogFormat:
			r.s.LogFormat = v
		case keyNodeID:
			r.s.NodeID = v
			if v == "" {
				r.s.NodeID = fmt.Sprintf("%s-%d", r.l.hostname, r.l.pid)
			}
		case keyRealmFile:
			r.s.RealmFiles = splitList(v)
		case keyPluginDir:
			r.s.PluginDir = v
		case keyPluginSocketDir:
			// go-plugin puts a socket at <dir>/plugin<digits>/plugin<digits> and the kernel
			// limits the path to 108 bytes.
			if len(v) > 70 {
				r.invalid(st, "a directory path of at most 70 bytes (unix socket paths are limited to 108)")
			}
			r.s.PluginSocketDir = v
		case keyPluginRestartBackoff:
			r.s.PluginRestartBackoff, _ = time.ParseDuration(v)
			if r.s.PluginRestartBackoff <= 0 {
				r.invalid(st, "a positive duration")
			}
		case keyHostname:
			if v != "" {
				v = r.withScheme(v)
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
					r.invalid(st, "an absolute http(s) URL with no path, e.g. https://sso.example.com")
				}
				v = strings.TrimSuffix(v, "/")
			}
			r.s.Hostname = v
		case keyFrontendToken:
			r.s.FrontendToken = v
		case keyAdminToken:
			r.s.AdminToken = v
		case keyAdminViewerToken:
			r.s.AdminViewerToken = v
		case keyAdminConsoleEnabled:
			r.s.AdminConsoleEnabled = v == "true"
		case keyConsoleOIDCRealm:
			r.s.ConsoleOIDC.Realm = v
			for _, need := range []string{keyConsoleOIDCClient, keyConsoleOIDCRole} {
				if v != "" && r.values[ref{option: need}].value == "" {
					r.probs.add(st.src, st.key, "%s needs %s too", st.src.spell(keyConsoleOIDCRealm), need)
				}
			}
		case keyConsoleOIDCClient:
			r.s.ConsoleOIDC.Client = v
		case keyConsoleOIDCClaim:
			r.s.ConsoleOIDC.RoleClaim = v
		case keyConsoleOIDCRole:
			r.s.ConsoleOIDC.AdminRole = v
		case keyConsoleOIDCViewRole:
			r.s.ConsoleOIDC.ViewerRole = v
		case keyShutdownTimeout:
			r.s.ShutdownTimeout, _ = time.ParseDuration(v)
			if r.s.ShutdownTimeout < 0 {
				r.invalid(st, "a duration of 0 or more")
			}
		case keyCleanupInterval:
			r.s.CleanupInterval, _ = time.ParseDuration(v)
			if r.s.CleanupInterval < minCleanupInterval {
				r.invalid(st, "a duration of at least "+minCleanupInterval.String())
			}
		case keyGroupCommitInFlight:
			r.s.GroupCommitInFlight, _ = strconv.Atoi(v)
			if r.s.GroupCommitInFlight < 1 || r.s.GroupCommitInFlight > maxGroupCommitInFlight {
				r.invalid(st, fmt.Sprintf("a whole number from 1 to %d", maxGroupCommitInFlight))
			}
		case keyCacheMaxEntries:
			r.s.CacheMaxEntries, _ = strconv.Atoi(v)
			if r.s.CacheMaxEntries < 1 || r.s.CacheMaxEntries > maxCacheMaxEntries {
				r.invalid(st, fmt.Sprintf("a whole number from 1 to %d", maxCacheMaxEntries))
			}
		case keyVerifiedTokenCache:
			r.s.VerifiedTokenCache, _ = strconv.Atoi(v)
			if r.s.VerifiedTokenCache < 0 || r.s.VerifiedTokenCache > maxVerifiedTokenCache {
				r.invalid(st, fmt.Sprintf("a whole number from 0 to %d", maxVerifiedTokenCache))
			}
			if r.s.VerifiedTokenCache == 0 {
				r.s.VerifiedTokenCache = -1 // off
			}
		case keyMetricsEnabled:
			r.s.MetricsEnabled = v == "true"
		case keyEventLogFile:
			r.s.EventLogFile = v
		case keyPushMaxAttempts:
			r.s.PushMaxAttempts, _ = strconv.Atoi(v)
			if r.s.PushMaxAttempts < 1 || r.s.PushMaxAttempts > maxPushMaxAttempts {
				r.invalid(st, fmt.Sprintf("a whole number from 1 to %d", maxPushMaxAttempts))
			}
		case keyPushBackoffInitial:
			r.s.PushBackoffInitial, _ = time.ParseDuration(v)
			if r.s.PushBackoffInitial < minPushBackoffInitial {
				r.invalid(st, "a duration of at least "+minPushBackoffInitial.String())
			}
		case keyPushBackoffMax:
			r.s.PushBackoffMax, _ = time.ParseDuration(v)
			if r.s.PushBackoffMax < minPushBackoffInitial {
				r.invalid(st, "a duration of at least "+minPushBackoffInitial.String())
			}
		case keyPushLease:
			r.s.PushLease, _ = time.ParseDuration(v)
			if r.s.PushLease < minPushLease {
				r.invalid(st, "a duration of at least "+minPushLease.String())
			}
		case keyPushBatchSize:
			r.s.PushBatchSize, _ = strconv.Atoi(v)
			if r.s.PushBatchSize < 1 || r.s.PushBatchSize > maxPushBatchSize {
				r.invalid(st, fmt.Sprintf("a whole number from 1 to %d", maxPushBatchSize))
			}
		case keyAuthFailureLimit, keyAuthFailureClientLimit, keyLoginRequestLimit:
			n, _ := strconv.Atoi(v)
			if n < 0 || n > maxAuthFailureLimit {
				r.invalid(st, fmt.Sprintf("a whole number from 0 (off) to %d", maxAuthFailureLimit))
			}
			*map[string]*int{keyAuthFailureLimit: &r.s.AuthFailureLimit, keyAuthFailureClientLimit: &r.s.AuthFailureClientLimit,
				keyLoginRequestLimit: &r.s.LoginRequestLimit}[o.Name] = n
		case keyAuthFailureWindow, keyLoginRequestWindow:
			d, _ := time.ParseDuration(v)
			if d < minAuthFailureWindow || d > maxAuthFailureWindow {
				r.invalid(st, "a duration from "+minAuthFailureWindow.String()+" to 24h")
			}
			*map[string]*time.Duration{keyAuthFailureWindow: &r.s.AuthFailureWindow, keyLoginRequestWindow: &r.s.LoginRequestWindow}[o.Name] = d
		case keyLegacyTokens:
			r.s.RefuseLegacyTokens = v == "refuse"
		case keyKEKFile:
			r.s.KeyEncryptionKeyFile = v
		case keyKEK:
			r.s.KeyEncryptionKey = v
			if f := r.values[ref{option: keyKEKFile}]; v != "" && f.value != "" {
				r.probs.add(st.src, st.key, "%s and %s are both set; set one", st.src.spell(keyKEK), f.src.spell(keyKEKFile))
			}
		case keyKeyRotationInterval:
			r.s.KeyRotationInterval, _ = time.ParseDuration(v)
			if r.s.KeyRotationInterval != 0 && r.s.KeyRotationInterval < minKeyRotationInterval {
				r.invalid(st, "0 (off) or a duration of at least "+minKeyRotationInterval.String())
			}
		case keyCleanupBatchSize:
			r.s.CleanupBatchSize, _ = strconv.Atoi(v)
			if r.s.CleanupBatchSize < 1 || r.s.CleanupBatchSize > maxCleanupBatchSize {
				r.invalid(st, fmt.Sprintf("a whole number from 1 to %d", maxCleanupBatchSize))
			}
		}
	}
	r.consoleOIDCUsed()
	return vals
}

// consoleOIDCUsed refuses the admin console's OIDC options where they would do nothing:
// without admin-console-oidc-realm, or with the console turned off.
func (r *resolver) consoleOIDCUsed() {
	realmSet := r.s.ConsoleOIDC.Realm != ""
	for _, key := range []string{keyConsoleOIDCRealm, keyConsoleOIDCClient, keyConsoleOIDCClaim, keyConsoleOIDCRole, keyConsoleOIDCViewRole} {
		st, set := r.values[ref{option: key}]
		switch {
		case !set || st.value == "":
		case !r.s.AdminConsoleEnabled:
			r.probs.add(st.src, st.key, "%s has no effect: %s is false; remove it or turn the console on", st.src.spell(key), keyAdminConsoleEnabled)
		case !realmSet && key != keyConsoleOIDCRealm:
			r.probs.add(st.src, st.key, "%s has no effect without %s (the realm operators sign in with); set it or remove this", st.src.spell(key), keyConsoleOIDCRealm)
		}
	}
}

func (r *resolver) features(server map[string]string) {
	r.s.Features = Features{}
	var names []string
	for _, f := range KnownFeatures() {
		r.s.Features[f.Name] = f.Default
		names = append(names, f.Name)
	}
	enabled := map[string]bool{}
	for _, key := range []string{keyFeatures, keyFeaturesDisabled} {
		st := r.values[ref{option: key}]
		on := key == keyFeatures
		for _, f := range splitList(server[key]) {
			if _, ok := r.s.Features[f]; !ok {
				r.probs.add(st.src, key, "unknown feature %q in %s; the features are %s", f, st.src.spell(key), strings.Join(names, ", "))
				continue
			}
			if !on && enabled[f] {
				en := r.values[ref{option: keyFeatures}]
				r.probs.add(st.src, key, "feature %q is both enabled (%s) and disabled (%s)", f, en.src, st.src)
				continue
			}
			enabled[f] = on
			r.s.Features[f] = on
		}
	}
}

// spi resolves one SPI: its selected provider and every provider it knows.
func (r *resolver) spi(name string) {
	key := selectionKey(name)
	o := r.c.server[key]
	id, src, _ := r.value(ref{option: key}, o.DefaultFor(r.l.profile), o.Type, o.Allowed)
	id, src = r.aliasSelection(name, id, src)
	r.entry(key, id, src, false)
	ss := SPISettings{Provider: id, Providers: map[string]ProviderSettings{}}
	ids := r.c.ids(name)
	sort.Strings(ids)
	if r.c.described && !slices.Contains(ids, id) {
		st, set := r.values[ref{option: key}]
		if !set {
			st = setting{key: key}
		}
		r.probs.add(src, key, "unknown %s provider %q in %s; %s; a plugin is registered with %s and %s",
			name, id, src.spell(st.key), r.c.knownProviders(name),
			src.spell(providerKey(name, "<id>", optCommand)), src.spell(providerKey(name, "<id>", optSHA256)))
	}
	for _, pid := range ids {
		ss.Providers[pid] = r.provider(name, pid)
	}
	r.s.SPIs[name] = ss
	r.unselected(name, id, src)
}

// unselected warns about every option set for a provider of the SPI other than the selected
// one: it does nothing while that provider is not selected (Keycloak warns likewise). A
// plugin's registration (command, sha256) is left alone: registering plugins that are not
// selected yet is how `plugins list` shows them.
func (r *resolver) unselected(spiName, selected string, selSrc Source) {
	key := selectionKey(spiName)
	for _, rf := range sortedRefs(r.values) {
		if rf.spi != spiName || rf.provider == selected || rf.option == optCommand || rf.option == optSHA256 {
			continue
		}
		st := r.values[rf]
		r.s.Warnings = append(r.s.Warnings, Problem{Source: st.src, Key: st.key, Msg: fmt.Sprintf(
			"%s has no effect: it is an option of %s provider %q, and %s is %q (%s); select %s=%s to use it, or remove it",
			st.src.spell(st.key), spiName, rf.provider, key, selected, selSrc, key, rf.provider)})
	}
}

// aliasSelection applies the rule for Keycloak's spellings of a provider's options (option
// aliases such as spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override):
// in Keycloak they take effect on their own, so here setting one selects the provider whose
// option it is, unless the SPI's provider is selected explicitly. Selected explicitly as
// another provider, the alias could do nothing: that is refused, naming both keys.
func (r *resolver) aliasSelection(spiName, id string, src Source) (string, Source) {
	var first *setting
	var wants string
	for _, rf := range sortedRefs(r.values) {
		st := r.values[rf]
		if rf.spi != spiName || r.c.aliases[st.key] != rf {
			continue
		}
		if first == nil {
			first, wants = &st, rf.provider
		} else if rf.provider != wants {
			r.probs.add(st.src, st.key, "%s sets an option of %s provider %q and %s (%s) one of %q; only one provider of an SPI is used",
				st.src.spell(st.key), spiName, rf.provider, first.src.spell(first.key), first.src, wants)
			return id, src
		}
	}
	if first == nil {
		return id, src
	}
	key := selectionKey(spiName)
	sel, explicit := r.values[ref{option: key}]
	switch {
	case !explicit:
		return wants, first.src
	case id != wants:
		r.probs.add(first.src, first.key, "%s sets an option of %s provider %q, but %s (%s) selects %q, so it would do nothing; select %s=%s or remove %s",
			first.src.spell(first.key), spiName, wants, sel.src.spell(sel.key), sel.src, id, key, wants, first.src.spell(first.key))
	}
	return id, src
}

func (r *resolver) provider(s, id string) ProviderSettings {
	ps := ProviderSettings{ID: id, ThirdParty: r.c.thirdParty[s][id], Config: spi.Config{}}
	_, ps.Described = r.c.descs[s][id]
	for _, o := range r.c.options(s, id) {
		rf := ref{s, id, o.Name}
		v, src, ok := r.value(rf, o.Default, o.Type, o.Allowed)
		if o.Name == optSHA256 {
			v = strings.ToLower(v)
		}
		r.entry(r.c.keyFor(s, id, o.Name), v, src, o.Secret)
		if !ok {
			continue
		}
		switch o.Name {
		case optInProcess:
			ps.InProcess = v == "true"
		case optCommand:
			ps.Command = v
		case optSHA256:
			ps.SHA256 = v
		default:
			if v != "" {
				ps.Config[o.Name] = v
			}
		}
	}
	if ps.ThirdParty {
		r.thirdParty(s, &ps)
	}
	if !ps.Described {
		// Not described: pass its options through as written; their types are unknown,
		// so mask them in case one is a secret.
		for _, rf := range sortedRefs(r.values) {
			if rf.spi == s && rf.provider == id && !reservedOption(rf.option) {
				st := r.values[rf]
				ps.Config[rf.option] = st.value
				r.entry(r.c.keyFor(s, id, rf.option), mask(st.value, true), st.src, false)
			}
		}
	}
	return ps
}

// thirdParty checks a plugin's registration: both keys, a well-formed digest, no
// in-process.
func (r *resolver) thirdParty(s string, ps *ProviderSettings) {
	cmd, hasCmd := r.values[ref{s, ps.ID, optCommand}]
	sum, hasSum := r.values[ref{s, ps.ID, optSHA256}]
	switch {
	case !hasCmd:
		r.probs.add(sum.src, sum.key, "%s is set but %s is not: a plugin is registered with both",
			sum.src.spell(sum.key), sum.src.spell(providerKey(s, ps.ID, optCommand)))
	case !hasSum:
		r.probs.add(cmd.src, cmd.key, "%s is set but %s is not: a plugin binary is only run when its SHA-256 is given",
			cmd.src.spell(cmd.key), cmd.src.spell(providerKey(s, ps.ID, optSHA256)))
	}
	if hasSum && ps.SHA256 != "" {
		b, err := hex.DecodeString(ps.SHA256)
		if err != nil || len(b) != 32 {
			r.invalid(sum, "64 hexadecimal digits (sha256sum prints them)")
		}
	}
	if hasCmd && ps.Command == "" {
		r.invalid(cmd, "the path of the plugin binary")
	}
	if ps.Command != "" && !filepath.IsAbs(ps.Command) {
		ps.Command = filepath.Join(r.s.PluginDir, ps.Command)
	}
	if st, set := r.values[ref{s, ps.ID, optInProcess}]; set {
		r.probs.add(st.src, st.key, "%s: only built-in providers run in-process; %s is a plugin", st.src.spell(st.key), ps.ID)
	}
}

// checkValue checks v against an option type and returns it normalised, or what is
// allowed instead.
func checkValue(t spi.OptionType, allowed []string, v string) (norm, want string) {
	switch t {
	case spi.Int:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return "", "a whole number"
		}
		return strconv.Itoa(n), ""
	case spi.Bool:
		switch b := strings.ToLower(strings.TrimSpace(v)); b {
		case "true", "false":
			return b, ""
		}
		return "", "true or false"
	case spi.Duration:
		d, ok := parseDuration(v)
		if !ok {
			return "", "a duration such as 30s, 5m or 1h30m, or whole seconds"
		}
		return d.String(), ""
	case spi.Enum:
		if slices.Contains(allowed, v) {
			return v, ""
		}
		return "", "one of " + strings.Join(allowed, ", ")
	case List:
		return strings.Join(splitList(v), ","), ""
	}
	return v, ""
}

// parseDuration reads Go duration syntax or whole seconds, as Keycloak's options give them.
func parseDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(time.Duration(1<<63-1)/time.Second) || n < -int64(time.Duration(1<<63-1)/time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func mask(v string, secret bool) string {
	if secret && v != "" {
		return "*****"
	}
	return v
}

func sortedIDs(m map[string]ProviderSettings) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sortedRefs(m map[ref]setting) []ref {
	refs := make([]ref, 0, len(m))
	for rf := range m {
		refs = append(refs, rf)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].key() < refs[j].key() })
	return refs
}

// pushLease checks push-lease against the request timeout of the selected revocation-push
// provider, for a built-in that has one (the HTTP providers' timeout option). The outbox
// cuts an attempt off at three quarters of the lease (core/push.AttemptBudget) so that its
// outcomes are recorded before another node may take the deliveries over; a lease under
// twice the timeout would cut off a client that answers within it, on every attempt.
func (r *resolver) pushLease() {
	ss := r.s.SPIs[spi.RevocationPush]
	ps, ok := ss.Providers[ss.Provider]
	if !ok || ps.ThirdParty || r.s.PushLease < minPushLease {
		return
	}
	timeout, err := time.ParseDuration(ps.Config[pushTimeoutOption])
	if err != nil || timeout <= 0 || r.s.PushLease >= 2*timeout {
		return
	}
	lease, leaseSet := r.values[ref{option: keyPushLease}]
	if !leaseSet {
		lease = setting{key: keyPushLease}
	}
	tref := ref{spi.RevocationPush, ss.Provider, pushTimeoutOption}
	to, toSet := r.values[tref]
	if !toSet {
		to = setting{key: tref.key()}
	}
	// Blame the one the operator set: the lease when both or neither were.
	blame := lease
	if toSet && !leaseSet {
		blame = to
	}
	r.probs.add(blame.src, blame.key, "%s=%s is shorter than twice %s=%s: an attempt is cut off at three quarters of the lease, before a slow client's request times out; make %s at least %s or the timeout shorter",
		lease.src.spell(lease.key), r.s.PushLease, to.src.spell(to.key), timeout, lease.src.spell(lease.key), 2*timeout)
}
