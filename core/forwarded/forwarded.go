// Package forwarded takes the client address and scheme of a request from the headers of
// the reverse proxy in front of sessiond, when the operator said which headers it sends
// (proxy-headers) and, optionally, from which addresses (proxy-trusted-addresses).
//
// It is one middleware at the top of the handler chain that rewrites r.RemoteAddr (and
// r.URL.Scheme), so every handler below reads the real client from the one place Go puts
// it. Without it, the headers are ignored: any client could write them.
package forwarded

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The kinds of headers (Keycloak's proxy-headers values).
const (
	Forwarded  = "forwarded"  // RFC 7239 Forwarded
	XForwarded = "xforwarded" // X-Forwarded-For and X-Forwarded-Proto
)

// Options say which headers to trust and from whom.
type Options struct {
	Headers string // Forwarded or XForwarded; "" leaves requests alone
	// Trusted are the proxies' addresses; empty trusts every peer (the operator lets only
	// the proxy reach sessiond).
	Trusted []netip.Prefix
}

// Handler returns next behind the rewrite. The headers are read only from a trusted peer.
// A proxy appends the address it saw to the end of the list; what is left of it came from
// the client and can be forged. So the client is the rightmost address that is not itself
// a trusted proxy (with Trusted empty: the rightmost one).
func Handler(opts Options, next http.Handler) http.Handler {
	if opts.Headers == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opts.trusts(peer(r.RemoteAddr)) {
			var hops []hop
			if opts.Headers == Forwarded {
				hops = parseForwarded(r.Header.Values("Forwarded"))
			} else {
				hops = parseXForwarded(r.Header.Values("X-Forwarded-For"), r.Header.Values("X-Forwarded-Proto"))
			}
			if h, ok := opts.client(hops); ok {
				// A copy: handlers must not modify the request they were given.
				r2 := r.WithContext(r.Context())
				u := *r.URL
				r2.URL = &u
				r2.RemoteAddr = h.addr
				if h.proto == "http" || h.proto == "https" {
					r2.URL.Scheme = h.proto
				}
				r = r2
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hop is one proxy's entry: the address it received the request from and its scheme.
type hop struct {
	addr  string // host:port, the port "0" when the proxy gave none
	ip    netip.Addr
	proto string
}

func (o Options) trusts(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	if len(o.Trusted) == 0 {
		return true
	}
	for _, p := range o.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// client is the rightmost hop that is not a trusted proxy; a hop whose address is not an
// IP (obfuscated, "unknown") ends the walk without a client.
func (o Options) client(hops []hop) (hop, bool) {
	for i := len(hops) - 1; i >= 0; i-- {
		h := hops[i]
		if !h.ip.IsValid() {
			return hop{}, false
		}
		if i > 0 && len(o.Trusted) > 0 && o.trusts(h.ip) {
			continue
		}
		return h, true
	}
	return hop{}, false
}

func peer(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		a, _ := netip.ParseAddr(remoteAddr)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// parseForwarded reads RFC 7239 elements: "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"".
func parseForwarded(values []string) []hop {
	var hops []hop
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			var h hop
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok {
					continue
				}
				val = strings.Trim(val, `"`)
				switch strings.ToLower(k) {
				case "for":
					h.addr, h.ip = node(val)
				case "proto":
					h.proto = strings.ToLower(val)
				}
			}
			hops = append(hops, h)
		}
	}
	return hops
}

// parseXForwarded pairs X-Forwarded-For addresses with X-Forwarded-Proto values from the
// right: the last proto is the one the nearest proxy set.
func parseXForwarded(fors, protos []string) []hop {
	var addrs, schemes []string
	for _, v := range fors {
		addrs = append(addrs, strings.Split(v, ",")...)
	}
	for _, v := range protos {
		schemes = append(schemes, strings.Split(v, ",")...)
	}
	hops := make([]hop, len(addrs))
	for i, a := range addrs {
		hops[i].addr, hops[i].ip = node(strings.TrimSpace(a))
	}
	for i, j := len(hops)-1, len(schemes)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		hops[i].proto = strings.ToLower(strings.TrimSpace(schemes[j]))
	}
	return hops
}

// node reads an address with or without port ("192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:80",
// "2001:db8::1") as host:port.
func node(v string) (string, netip.Addr) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		ip := ap.Addr().Unmap()
		return netip.AddrPortFrom(ip, ap.Port()).String(), ip
	}
	ip, err := netip.ParseAddr(strings.Trim(v, "[]"))
	if err != nil {
		return "", netip.Addr{}
	}
	ip = ip.Unmap()
	return net.JoinHostPort(ip.String(), "0"), ip
}
