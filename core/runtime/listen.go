package runtime

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/forwarded"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/core/tlscert"
)

// listener is one of the runtime's HTTP listeners: the public one, or the management
// interface.
type listener struct {
	name   string // for logs and errors
	ln     net.Listener
	server *http.Server
	tls    *tls.Config // nil: plain HTTP
}

func (l *listener) url() string {
	scheme := "http"
	if l.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + l.ln.Addr().String()
}

// openListeners binds the public listener (HTTPS on https-port with TLS material, else plain
// HTTP on http-port) and, under start, the management interface on http-management-port,
// over HTTPS when the public one is. Nothing is served yet.
func (rt *Runtime) openListeners() (err error) {
	ls := rt.settings.Listen
	var tlsConfig *tls.Config
	port, portKeys := rt.settings.HTTPPort, "http-host, http-port"
	if ls.TLS() {
		files, err := tlscert.Load(ls.CertFile, ls.KeyFile, ls.ReloadPeriod, rt.log.Named("tls"))
		if err != nil {
			return err
		}
		tlsConfig = files.Config(ls.MinTLS, ls.MaxTLS)
		port, portKeys = ls.HTTPSPort, "http-host, https-port"
	}
	open := func(name string, port int, keys string) (*listener, error) {
		addr := net.JoinHostPort(rt.settings.HTTPHost, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s (%s): %w", addr, keys, err)
		}
		return &listener{name: name, ln: ln, tls: tlsConfig}, nil
	}
	if rt.public, err = open("public", port, portKeys); err != nil {
		return err
	}
	if ls.Management {
		if rt.management, err = open("management", ls.ManagementPort, "http-host, http-management-port"); err != nil {
			_ = rt.public.ln.Close()
			return err
		}
	}
	return nil
}

// closeListeners closes what openListeners opened, for a start that failed before serving.
func (rt *Runtime) closeListeners() {
	for _, l := range []*listener{rt.public, rt.management} {
		if l != nil {
			_ = l.ln.Close()
		}
	}
}

// issuerBase is the base URL of the tokens' issuers: the hostname, else the public
// listener's address. An unspecified address (0.0.0.0, ::) is no one's address: the
// loopback one of its family stands in, and start (hostname-strict=false) warns.
func (rt *Runtime) issuerBase(profile conf.Profile) string {
	if rt.settings.Hostname != "" {
		return rt.settings.Hostname
	}
	scheme := "http"
	if rt.public.tls != nil {
		scheme = "https"
	}
	ap, err := netip.ParseAddrPort(rt.public.ln.Addr().String())
	host := rt.public.ln.Addr().String()
	if err == nil && ap.Addr().IsUnspecified() {
		// Go binds both families for either unspecified address and reports [::]: the
		// configured host says which loopback the operator meant.
		ip := netip.MustParseAddr("127.0.0.1")
		if h, err := netip.ParseAddr(rt.settings.HTTPHost); err == nil && h.Is6() {
			ip = netip.IPv6Loopback()
		}
		host = netip.AddrPortFrom(ip, ap.Port()).String()
	}
	base := scheme + "://" + host
	if profile == conf.ProfileStart {
		rt.log.Warn("hostname is not set (hostname-strict=false): tokens carry the bound address as their issuer; set hostname to the URL clients reach sessiond at",
			"issuer-base", base)
	}
	return base
}

// serve builds the HTTP servers over the handlers and starts them: the API on the public
// listener behind the proxy-headers rewrite; under start, health and metrics on the
// management interface only.
func (rt *Runtime) serve(api *httpapi.Server) {
	ls := rt.settings.Listen
	public := rt.instrument(api)
	if ls.Management {
		prefix := strings.TrimSuffix(ls.ManagementPath, "/")
		mux := http.NewServeMux()
		mux.Handle("GET "+prefix+"/health", http.StripPrefix(prefix, api.Health()))
		mux.Handle("GET "+prefix+"/health/", http.StripPrefix(prefix, api.Health()))
		if h := rt.metricsHandler(); h != nil {
			mux.Handle("GET "+prefix+"/metrics", h)
		}
		rt.start(rt.management, mux)
	} else if h := rt.metricsHandler(); h != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", h)
		mux.Handle("/", public)
		public = mux
	}
	rt.start(rt.public, forwarded.Handler(forwarded.Options{Headers: ls.ProxyHeaders, Trusted: ls.ProxyTrusted}, public))
}

// start serves l with h in a goroutine whose end is reported on rt.serveDone.
func (rt *Runtime) start(l *listener, h http.Handler) {
	l.server = &http.Server{
		Handler:           h,
		TLSConfig:         l.tls.Clone(), // the server adds to it (HTTP/2); the listeners share l.tls
		ReadHeaderTimeout: httpapi.ReadHeaderTimeout,
		ReadTimeout:       rt.readTimeout,
		WriteTimeout:      httpapi.WriteTimeout,
		IdleTimeout:       httpapi.IdleTimeout,
		MaxHeaderBytes:    httpapi.MaxHeaderBytes,
		ErrorLog:          rt.log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	go func() {
		var err error
		if l.tls != nil {
			err = l.server.ServeTLS(l.ln, "", "")
		} else {
			err = l.server.Serve(l.ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			err = fmt.Errorf("%s listener: %w", l.name, err)
		}
		rt.serveDone <- err
	}()
}
