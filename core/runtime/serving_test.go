package runtime

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/internal/testcert"
	"github.com/sessiond/sessiond/internal/testlog"
)

// These tests start the runtime as `sessiond start` (and start-dev) serves: its listeners,
// TLS, the management interface, the proxy headers and the server's timeouts.

// without drops the flags starting with any of prefixes.
func without(args []string, prefixes ...string) []string {
	var out []string
next:
	for _, a := range args {
		for _, p := range prefixes {
			if strings.HasPrefix(a, p) {
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}

func status(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestManagementPortServesHealthAndMetricsAndThePublicOneDoesNot(t *testing.T) {
	e := newEnv(t)
	rt := e.start(Options{}, nil, "--metrics-enabled=true", "--http-management-relative-path=/management")
	mgmt := rt.ManagementURL()
	if !strings.HasSuffix(mgmt, "/management") || strings.HasPrefix(mgmt, base(rt)) {
		t.Fatalf("management URL %q: want its own port and the relative path", mgmt)
	}
	c := http.DefaultClient
	for _, path := range []string{"/health", "/health/live", "/health/ready", "/metrics"} {
		if code := status(t, c, base(rt)+path); code != http.StatusNotFound {
			t.Errorf("public GET %s = %d, want 404", path, code)
		}
		if code := status(t, c, mgmt+path); code != http.StatusOK {
			t.Errorf("management GET %s = %d, want 200", path, code)
		}
	}
	// The API is on the public listener only.
	discovery := "/realms/" + testRealm + "/.well-known/openid-configuration"
	if code := status(t, c, base(rt)+discovery); code != http.StatusOK {
		t.Errorf("public discovery = %d", code)
	}
	if code := status(t, c, mgmt+discovery); code != http.StatusNotFound {
		t.Errorf("management discovery = %d, want 404", code)
	}
}

func TestStartDevServesHealthAndMetricsOnItsOnePort(t *testing.T) {
	e := newEnv(t)
	var logs testlog.Buffer
	rt := e.run(Options{Profile: conf.ProfileDev}, hclog.New(&hclog.LoggerOptions{Output: &logs}),
		without(append(e.args(), "--metrics-enabled=true", "--frontend-token=fe-dev-token"), "--http-enabled", "--http-management-port", "--hostname"))
	if rt.ManagementURL() != "" {
		t.Errorf("start-dev has a management interface at %s", rt.ManagementURL())
	}
	for _, path := range []string{"/health/ready", "/metrics"} {
		if code := status(t, http.DefaultClient, base(rt)+path); code != http.StatusOK {
			t.Errorf("start-dev GET %s = %d, want 200", path, code)
		}
	}
	if n := logs.Count("start-dev relaxes start's rules"); n != 1 {
		t.Errorf("start-dev logs what it relaxes %d times, want once:\n%s", n, logs.String())
	}
	if iss := issuer(t, http.DefaultClient, base(rt)); iss != base(rt)+"/realms/"+testRealm {
		t.Errorf("start-dev issuer %q, want the bound address %s", iss, base(rt))
	}
}

func issuer(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	resp, err := c.Get(base + "/realms/" + testRealm + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct{ Issuer string }
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Issuer
}

// Bound to every interface without a hostname (hostname-strict=false), tokens carry a
// loopback address, never 0.0.0.0, and the log warns.
func TestIssuerIsNeverAnUnspecifiedAddress(t *testing.T) {
	e := newEnv(t)
	var logs testlog.Buffer
	rt := e.run(Options{}, hclog.New(&hclog.LoggerOptions{Output: &logs}),
		append(without(e.args(), "--hostname", "--http-host"), "--http-host=0.0.0.0", "--hostname-strict=false"))
	port := rt.Addr().(*net.TCPAddr).Port
	want := fmt.Sprintf("http://127.0.0.1:%d/realms/%s", port, testRealm)
	if iss := issuer(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d", port)); iss != want {
		t.Errorf("issuer %q, want %q", iss, want)
	}
	if !strings.Contains(logs.String(), "[WARN]  hostname is not set (hostname-strict=false)") {
		t.Errorf("no warning about the issuer:\n%s", logs.String())
	}
}

// The proxy headers reach the handlers (here: the address of a refused admin call's audit
// event) only when proxy-headers says which.
func TestProxyHeadersGiveTheClientAddressOnlyWhenConfigured(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"not configured", nil, "ip=127.0.0.1"},
		{"forwarded", []string{"--proxy-headers=forwarded"}, "ip=203.0.113.9"},
		{"forwarded, peer not trusted", []string{"--proxy-headers=forwarded", "--proxy-trusted-addresses=10.0.0.0/8"}, "ip=127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var logs testlog.Buffer
			rt := e.start(Options{}, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info}),
				append(tc.extra, "--admin-token=admin-token-of-the-runtime-tests-0123456789")...)
			req, _ := http.NewRequest(http.MethodPost, base(rt)+"/admin/realms/"+testRealm+"/logout-all", nil)
			req.Header.Set("Authorization", "Bearer wrong")
			req.Header.Set("Forwarded", "for=203.0.113.9;proto=https")
			if code, _ := do(t, req); code != http.StatusUnauthorized {
				t.Fatalf("wrong credential: %d", code)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(logs.String(), tc.want) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("the refused call's event lacks %s:\n%s", tc.want, logs.String())
			}
		})
	}
}

// A client that sends its body slowly is cut off at the read timeout instead of holding
// the connection for as long as it likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	e := newEnv(t)
	rt := e.start(Options{readTimeout: time.Second}, nil)
	conn, err := net.Dial("tcp", rt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /realms/%s/protocol/openid-connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n", testRealm)
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn)) // until the server closes
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 1000; i++ {
		select {
		case took := <-closed:
			if took > 3*time.Second {
				t.Errorf("connection closed after %s, want about the 1s read timeout", took)
			}
			return
		case <-tick.C:
			if _, err := conn.Write([]byte("a")); err != nil {
				return // closed by the server
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a slow sender held the connection for 10s")
		}
	}
	t.Fatal("the whole slow body was read")
}

// With TLS material, start serves HTTPS on the public listener and on the management
// interface, with the certificate given, refuses TLS 1.1, and issues tokens for the
// hostname.
func TestStartServesHTTPSOnBothListeners(t *testing.T) {
	e := newEnv(t)
	pair := testcert.Write(t, t.TempDir(), "sessiond-test")
	rt := e.run(Options{}, nil, append(without(e.args(), "--http-enabled", "--http-port", "--hostname"),
		"--https-port=0", "--https-certificate-file="+pair.CertFile, "--https-certificate-key-file="+pair.KeyFile,
		"--hostname=localhost"))
	if !strings.HasPrefix(rt.URL(), "https://127.0.0.1:") || !strings.HasPrefix(rt.ManagementURL(), "https://127.0.0.1:") {
		t.Fatalf("listeners %s and %s, want both https", rt.URL(), rt.ManagementURL())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.Pool()}}}
	if code := status(t, c, rt.ManagementURL()+"/health/ready"); code != http.StatusOK {
		t.Errorf("management over TLS: %d", code)
	}
	if iss := issuer(t, c, rt.URL()); iss != "https://localhost/realms/"+testRealm {
		t.Errorf("issuer %q, want https://localhost/realms/%s (hostname without scheme gets https)", iss, testRealm)
	}
	if status(t, http.DefaultClient, strings.Replace(rt.URL(), "https", "http", 1)+"/health/live") != http.StatusBadRequest {
		t.Error("plain HTTP to the HTTPS listener was not refused")
	}
	old := &tls.Config{RootCAs: pair.Pool(), MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", rt.Addr().String(), old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}
