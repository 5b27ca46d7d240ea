package conf

import (
	"crypto/tls"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Listen is how sessiond listens: one public listener, HTTPS when TLS material is given and
// plain HTTP otherwise, and under start a management interface for health and metrics.
type Listen struct {
	// HTTPEnabled serves plain HTTP on the http-port when there is no TLS material.
	HTTPEnabled bool
	HTTPSPort   int
	// CertFile and KeyFile are the PEM files of the HTTPS listener ("" for none; both or
	// neither are set). ReloadPeriod is how often they are checked for a change; 0 never.
	CertFile, KeyFile string
	ReloadPeriod      time.Duration
	// MinTLS and MaxTLS bound the TLS versions (tls.VersionTLS12, tls.VersionTLS13).
	MinTLS, MaxTLS uint16
	// ProxyHeaders is "", "forwarded" or "xforwarded": which proxy headers give the client
	// address and scheme. ProxyTrusted, when not empty, limits that to requests from these
	// peers.
	ProxyHeaders string
	ProxyTrusted []netip.Prefix
	// Management says whether health and metrics are served on their own listener
	// (ManagementPort, routes under ManagementPath) rather than on the public one: under
	// start.
	Management     bool
	ManagementPort int
	ManagementPath string // "/" or "/prefix" without a trailing slash
}

// TLS reports whether the public listener (and the management interface) serve HTTPS.
func (l Listen) TLS() bool { return l.CertFile != "" }

// MinCredentialLength is the shortest front-end or admin credential start accepts: the
// length of the ones start-dev generates (24 random bytes, base64url), about 190 bits when
// random, so that guessing one over the network is hopeless while any password manager or
// `openssl rand -base64 32` makes one.
const MinCredentialLength = 32

// DevelopmentCredentials are the credentials the README and the guides show for start-dev;
// start refuses them whatever their length.
var DevelopmentCredentials = []string{"fe-dev-token", "admin-dev-token"}

// minReloadPeriod keeps the certificate check from becoming a stat per handshake.
const minReloadPeriod = time.Second

// tlsVersions are the https-protocols values: Keycloak's names.
var tlsVersions = map[string]uint16{"TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}

// listenOption reads one option of the listeners into r.s.Listen.
func (r *resolver) listenOption(name, v string, st setting) {
	ls := &r.s.Listen
	switch name {
	case keyHTTPEnabled:
		ls.HTTPEnabled = v == "true"
	case keyHTTPSPort:
		ls.HTTPSPort = r.port(v, st)
	case keyManagementPort:
		ls.ManagementPort = r.port(v, st)
	case keyHTTPSCertificateFile:
		ls.CertFile = v
	case keyHTTPSCertificateKeyFile:
		ls.KeyFile = v
	case keyHTTPSProtocols:
		for _, p := range splitList(v) {
			ver, ok := tlsVersions[p]
			if !ok {
				r.invalid(st, "TLSv1.3, TLSv1.2 or both, comma-separated (older versions are not accepted)")
				continue
			}
			if ls.MinTLS == 0 || ver < ls.MinTLS {
				ls.MinTLS = ver
			}
			ls.MaxTLS = max(ls.MaxTLS, ver)
		}
		if ls.MinTLS == 0 && len(splitList(v)) == 0 {
			r.invalid(st, "TLSv1.3, TLSv1.2 or both")
		}
	case keyHTTPSReloadPeriod:
		d, _ := time.ParseDuration(v)
		switch {
		case d == -time.Second:
			ls.ReloadPeriod = 0
		case d < minReloadPeriod:
			r.invalid(st, "a duration of at least "+minReloadPeriod.String()+", or -1 to never reload")
		default:
			ls.ReloadPeriod = d
		}
	case keyProxyHeaders:
		ls.ProxyHeaders = v
	case keyProxyTrustedAddresses:
		for _, a := range splitList(v) {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				ip, ierr := netip.ParseAddr(a)
				if ierr != nil {
					r.probs.add(st.src, st.key, "invalid address %q in %s: want IP addresses or CIDR ranges, e.g. 10.0.0.5,192.168.0.0/16", a, st.src.spell(st.key))
					continue
				}
				p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
			}
			ls.ProxyTrusted = append(ls.ProxyTrusted, p.Masked())
		}
	case keyManagementRelativePath:
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?#{} ") {
			r.invalid(st, "an absolute path such as / or /management")
		}
		ls.ManagementPath = strings.TrimSuffix(path.Clean("/"+v), "/")
		if ls.ManagementPath == "" {
			ls.ManagementPath = "/"
		}
	}
}

func (r *resolver) port(v string, st setting) int {
	n, _ := strconv.Atoi(v)
	if n < 0 || n > 65535 {
		r.invalid(st, "a port from 0 to 65535")
	}
	return n
}

// withScheme normalises a hostname given without scheme: https, except under start-dev
// serving plain HTTP.
func (r *resolver) withScheme(v string) string {
	if strings.Contains(v, "://") {
		return v
	}
	if r.l.profile == ProfileDev && !r.s.Listen.TLS() {
		return "http://" + v
	}
	return "https://" + v
}

// listen checks the listener options against each other, in every profile.
func (r *resolver) listen() {
	ls := &r.s.Listen
	ls.Management = r.l.profile == ProfileStart
	cert := r.values[ref{option: keyHTTPSCertificateFile}]
	key := r.values[ref{option: keyHTTPSCertificateKeyFile}]
	switch {
	case ls.CertFile != "" && ls.KeyFile == "":
		r.probs.add(cert.src, cert.key, "%s is set but %s is not: HTTPS needs the certificate and its private key",
			cert.src.spell(cert.key), cert.src.spell(keyHTTPSCertificateKeyFile))
	case ls.KeyFile != "" && ls.CertFile == "":
		r.probs.add(key.src, key.key, "%s is set but %s is not: HTTPS needs the certificate and its private key",
			key.src.spell(key.key), key.src.spell(keyHTTPSCertificateFile))
	}
	en, enSet := r.values[ref{option: keyHTTPEnabled}]
	switch {
	case enSet && ls.HTTPEnabled && ls.CertFile != "":
		r.probs.add(en.src, en.key, "%s=true together with %s: sessiond has one public listener, HTTPS when the certificate is set; drop %s, or the certificate to serve plain HTTP",
			en.src.spell(en.key), en.src.spell(keyHTTPSCertificateFile), en.src.spell(en.key))
	case enSet && !ls.HTTPEnabled && !ls.TLS() && r.l.profile == ProfileDev:
		// Under start, serve says what to set instead.
		r.probs.add(en.src, en.key, "%s=false without %s: sessiond would have nothing to listen on; set the certificate files, or drop %s",
			en.src.spell(en.key), en.src.spell(keyHTTPSCertificateFile), en.src.spell(en.key))
	}
	if ls.Management {
		public := r.s.HTTPPort
		if ls.TLS() {
			public = ls.HTTPSPort
		}
		if public != 0 && public == ls.ManagementPort {
			st := r.values[ref{option: keyManagementPort}]
			if st.key == "" {
				st.key = keyManagementPort
			}
			r.probs.add(st.src, st.key, "%s=%d is also the public listener's port: the management interface needs its own", st.src.spell(st.key), ls.ManagementPort)
		}
	}
	if len(ls.ProxyTrusted) > 0 && ls.ProxyHeaders == "" {
		st := r.values[ref{option: keyProxyTrustedAddresses}]
		r.probs.add(st.src, st.key, "%s is set but %s is not: set proxy-headers=forwarded or xforwarded to say which headers the proxy sends",
			st.src.spell(st.key), st.src.spell(keyProxyHeaders))
	}
}

// serve applies the rules of serving under start; start-dev relaxes every one of them
// (and says so when it starts).
func (r *resolver) serve() {
	if r.l.profile != ProfileStart {
		return
	}
	ls := r.s.Listen
	if !ls.TLS() && !ls.HTTPEnabled {
		r.probs.add(Source{}, keyHTTPSCertificateFile, "start needs TLS: set %s and %s, or %s=true behind a TLS-terminating proxy",
			keyHTTPSCertificateFile, keyHTTPSCertificateKeyFile, keyHTTPEnabled)
	}
	if r.s.Hostname == "" && r.s.HostnameStrict {
		r.probs.add(Source{}, keyHostname, "start needs %s, the public URL tokens are issued for (e.g. %s=https://sso.example.com); or %s=false to issue them for the bound address",
			keyHostname, keyHostname, keyHostnameStrict)
	}
	if r.s.KeyEncryptionKeyFile == "" && r.s.KeyEncryptionKey == "" {
		// In production realm keys are never stored in plain text, where anyone reading the
		// database could forge tokens; start-dev stores them so and warns.
		r.probs.add(Source{}, keyKEKFile, "start needs a key-encryption key to store realm keys encrypted: set %s to a file holding %s (mode 600), or the environment variable SESSIOND_KEY_ENCRYPTION_KEY; every node sharing the store needs the same key",
			keyKEKFile, kekHowTo)
	}
	creds := []struct {
		key string
		val string
	}{{keyFrontendToken, r.s.FrontendToken}, {keyAdminToken, r.s.AdminToken}, {keyAdminViewerToken, r.s.AdminViewerToken}}
	for i, c := range creds {
		if c.val == "" {
			continue
		}
		st := r.values[ref{option: c.key}]
		name := st.src.spell(c.key)
		switch n := len(c.val); {
		case slices.Contains(DevelopmentCredentials, c.val):
			r.probs.add(st.src, c.key, "%s is the development credential %q: start needs a random one of at least %d characters (e.g. openssl rand -base64 32)",
				name, c.val, MinCredentialLength)
		case n < MinCredentialLength:
			r.probs.add(st.src, c.key, "%s has %d characters: start needs at least %d (e.g. openssl rand -base64 32)", name, n, MinCredentialLength)
		}
		for _, o := range creds[:i] {
			if o.val == c.val {
				r.probs.add(st.src, c.key, "%s is the same as %s: each credential must be its own, or one role could act as the other", name, o.key)
			}
		}
	}
}
