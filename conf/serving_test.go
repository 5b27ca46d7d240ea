package conf

import (
	"crypto/tls"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// strongCreds are start-worthy credentials: long, distinct.
var strongCreds = []string{
	"--frontend-token=" + strings.Repeat("f", MinCredentialLength),
	"--admin-token=" + strings.Repeat("a", MinCredentialLength),
}

// serveStart resolves args for serving under start.
func serveStart(t *testing.T, profile Profile, args ...string) (*Settings, error) {
	t.Helper()
	inDir(t, "")
	l, err := Load(profile, append([]string{testKEKFlag}, args...), nil)
	if err != nil {
		return nil, err
	}
	return l.ForServing().Resolve(testDescs())
}

// testKEKFlag gives start the key-encryption key it requires, so that the other serving
// rules can be tested one at a time.
var testKEKFlag = "--key-encryption-key=" + base64.StdEncoding.EncodeToString(make([]byte, 32))

func TestStartWithoutTLSOrHostnameRefusesSayingWhatToSet(t *testing.T) {
	_, err := serveStart(t, ProfileStart)
	if err == nil {
		t.Fatal("start with neither TLS nor hostname was accepted")
	}
	if ps := problemsOf(t, err); len(ps) != 2 {
		t.Errorf("want the two problems at once, got %d:\n%v", len(ps), err)
	}
	mustContainAll(t, err.Error(),
		"start needs TLS: set https-certificate-file and https-certificate-key-file, or http-enabled=true behind a TLS-terminating proxy",
		"start needs hostname", "hostname=https://sso.example.com", "hostname-strict=false")
}

func TestStartServingRules(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // nil: accepted
	}{
		{"http-enabled and hostname", []string{"--http-enabled=true", "--hostname=https://sso.example.com"}, nil},
		{"TLS and hostname", []string{"--https-certificate-file=c.pem", "--https-certificate-key-file=k.pem", "--hostname=sso.example.com"}, nil},
		{"hostname-strict false", []string{"--http-enabled=true", "--hostname-strict=false"}, nil},
		{"certificate without key", []string{"--https-certificate-file=c.pem", "--hostname=https://a.example"},
			[]string{"flag --https-certificate-file: --https-certificate-file is set but --https-certificate-key-file is not"}},
		{"http-enabled with TLS", []string{"--http-enabled=true", "--https-certificate-file=c.pem", "--https-certificate-key-file=k.pem", "--hostname=https://a.example"},
			[]string{"one public listener"}},
		{"short credential", []string{"--http-enabled=true", "--hostname=https://a.example", "--frontend-token=short"},
			[]string{"--frontend-token has 5 characters: start needs at least 32"}},
		{"development front-end credential", []string{"--http-enabled=true", "--hostname=https://a.example", "--frontend-token=fe-dev-token"},
			[]string{`--frontend-token is the development credential "fe-dev-token"`}},
		{"development admin credential", []string{"--http-enabled=true", "--hostname=https://a.example", "--admin-token=admin-dev-token"},
			[]string{`--admin-token is the development credential "admin-dev-token"`}},
		{"equal credentials", []string{"--http-enabled=true", "--hostname=https://a.example",
			"--frontend-token=" + strings.Repeat("x", 40), "--admin-viewer-token=" + strings.Repeat("x", 40)},
			[]string{"--admin-viewer-token is the same as frontend-token"}},
		{"management port equals public port", []string{"--http-enabled=true", "--hostname=https://a.example", "--http-port=9000"},
			[]string{"http-management-port=9000 is also the public listener's port"}},
		{"old TLS version", []string{"--http-enabled=true", "--hostname=https://a.example", "--https-protocols=TLSv1.1"},
			[]string{"--https-protocols", "older versions are not accepted"}},
		{"trusted proxies without proxy headers", []string{"--http-enabled=true", "--hostname=https://a.example", "--proxy-trusted-addresses=10.0.0.1"},
			[]string{"--proxy-trusted-addresses is set but --proxy-headers is not"}},
		{"bad trusted address", []string{"--http-enabled=true", "--hostname=https://a.example", "--proxy-headers=forwarded", "--proxy-trusted-addresses=proxy.local"},
			[]string{`invalid address "proxy.local"`}},
		{"reload period too short", []string{"--http-enabled=true", "--hostname=https://a.example", "--https-certificates-reload-period=100ms"},
			[]string{"at least 1s, or -1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := serveStart(t, ProfileStart, append(append([]string{}, strongCreds...), tc.args...)...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if ps := problemsOf(t, err); len(ps) != 1 {
				t.Errorf("want one problem, got %d:\n%v", len(ps), err)
			}
			mustContainAll(t, err.Error(), tc.want...)
		})
	}
}

// Short, equal and development credentials are all refused, each by name, in one report.
func TestStartRefusesShortEqualAndDevelopmentCredentials(t *testing.T) {
	_, err := serveStart(t, ProfileStart, "--http-enabled=true", "--hostname=https://a.example",
		"--frontend-token=fe-dev-token", "--admin-token=admin-dev-token", "--admin-viewer-token=admin-dev-token")
	if err == nil {
		t.Fatal("accepted")
	}
	mustContainAll(t, err.Error(), "configuration has 4 problems",
		`--frontend-token is the development credential "fe-dev-token"`,
		`--admin-token is the development credential "admin-dev-token"`,
		`--admin-viewer-token is the development credential "admin-dev-token"`,
		"--admin-viewer-token is the same as admin-token")
}

func TestStartDevWithHTTPDisabledAndNoCertificateIsRefused(t *testing.T) {
	_, err := serveStart(t, ProfileDev, "--http-enabled=false")
	if err == nil || !strings.Contains(err.Error(), "--http-enabled=false without --https-certificate-file: sessiond would have nothing to listen on") {
		t.Errorf("start-dev with nothing to listen on: %v", err)
	}
}

func TestStartDevRelaxesEveryServingRule(t *testing.T) {
	s, err := serveStart(t, ProfileDev, "--frontend-token=fe-dev-token", "--admin-token=fe-dev-token")
	if err != nil {
		t.Fatalf("start-dev refused: %v", err)
	}
	if !s.Listen.HTTPEnabled || s.Listen.TLS() || s.Listen.Management || s.HTTPHost != "127.0.0.1" {
		t.Errorf("start-dev listens %+v on %s; want plain HTTP on 127.0.0.1, no management interface", s.Listen, s.HTTPHost)
	}
}

// Without ForServing (show-config, plugins list) start's serving rules do not apply.
func TestShowConfigDoesNotApplyTheServingRules(t *testing.T) {
	inDir(t, "")
	if _, err := loadResolve(ProfileStart, []string{"--frontend-token=x"}, nil, testDescs()); err != nil {
		t.Fatalf("resolve without serving: %v", err)
	}
}

func TestListenSettings(t *testing.T) {
	s, err := serveStart(t, ProfileStart, append(strongCreds,
		"--https-certificate-file=c.pem", "--https-certificate-key-file=k.pem", "--hostname=sso.example.com",
		"--https-protocols=TLSv1.3", "--https-certificates-reload-period=-1", "--proxy-headers=xforwarded",
		"--proxy-trusted-addresses=10.0.0.1, 192.168.0.0/16", "--http-management-relative-path=/management/")...)
	if err != nil {
		t.Fatal(err)
	}
	ls := s.Listen
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16")}
	if !ls.TLS() || ls.HTTPSPort != 8443 || ls.MinTLS != tls.VersionTLS13 || ls.MaxTLS != tls.VersionTLS13 || ls.ReloadPeriod != 0 ||
		ls.ProxyHeaders != "xforwarded" || len(ls.ProxyTrusted) != 2 || ls.ProxyTrusted[0] != want[0] || ls.ProxyTrusted[1] != want[1] ||
		!ls.Management || ls.ManagementPort != 9000 || ls.ManagementPath != "/management" {
		t.Errorf("listen settings %+v", ls)
	}
	if s.Hostname != "https://sso.example.com" {
		t.Errorf("hostname without scheme became %q; want https://sso.example.com", s.Hostname)
	}
	d, err := serveStart(t, ProfileStart, append(strongCreds, "--http-enabled=true", "--hostname-strict=false")...)
	if err != nil {
		t.Fatal(err)
	}
	if d.Listen.MinTLS != tls.VersionTLS12 || d.Listen.MaxTLS != tls.VersionTLS13 || d.Listen.ReloadPeriod != time.Minute || d.Listen.ManagementPath != "/" {
		t.Errorf("defaults %+v", d.Listen)
	}
	dev, err := serveStart(t, ProfileDev, "--hostname=localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Hostname != "http://localhost:8080" {
		t.Errorf("start-dev's plain-HTTP hostname without scheme became %q; want http://localhost:8080", dev.Hostname)
	}
}
