package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testcert"
	"github.com/sessiond/sessiond/internal/testlog"
)

// serve accepts TLS connections with f's configuration until the test ends.
func serve(t *testing.T, f *Files) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", f.Config(tls.VersionTLS12, tls.VersionTLS13))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// served is the certificate a real TLS client is shown, trusting pool.
func served(t *testing.T, addr string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestCertificateIsReloadedWhenTheFilesChange(t *testing.T) {
	dir := t.TempDir()
	first := testcert.Write(t, dir, "first")
	var logs testlog.Buffer
	f, err := Load(first.CertFile, first.KeyFile, 50*time.Millisecond, hclog.New(&hclog.LoggerOptions{Output: &logs}))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, f)
	pool := first.Pool()
	if got := served(t, addr, pool); got.Subject.CommonName != "first" {
		t.Fatalf("served %s, want first", got.Subject.CommonName)
	}

	second := testcert.Write(t, dir, "second")
	pool.AddCert(second.Cert)
	waitServed(t, addr, pool, "second")
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("the reload is not logged:\n%s", logs.String())
	}

	// A bad new pair keeps the one in use, and the log says why.
	if err := os.WriteFile(second.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for range 3 {
		if got := served(t, addr, pool); got.Subject.CommonName != "second" {
			t.Fatalf("after a broken certificate file, served %s; want second kept", got.Subject.CommonName)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("the broken pair is logged %d times, want once:\n%s", n, logs.String())
	}

	third := testcert.Write(t, dir, "third")
	pool.AddCert(third.Cert)
	waitServed(t, addr, pool, "third")
}

func waitServed(t *testing.T, addr string, pool *x509.CertPool, cn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := served(t, addr, pool)
		if got.Subject.CommonName == cn {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %s, want %s", got.Subject.CommonName, cn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNoReloadWithoutAPeriod(t *testing.T) {
	dir := t.TempDir()
	first := testcert.Write(t, dir, "first")
	f, err := Load(first.CertFile, first.KeyFile, 0, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, f)
	pool := first.Pool()
	second := testcert.Write(t, dir, "second")
	pool.AddCert(second.Cert)
	time.Sleep(50 * time.Millisecond)
	if got := served(t, addr, pool); got.Subject.CommonName != "first" {
		t.Errorf("served %s with reloading off, want first", got.Subject.CommonName)
	}
}

func TestLoadRefusesAMismatchedPairNamingTheFiles(t *testing.T) {
	a, b := testcert.Write(t, t.TempDir(), "a"), testcert.Write(t, t.TempDir(), "b")
	_, err := Load(a.CertFile, b.KeyFile, 0, hclog.NewNullLogger())
	if err == nil || !strings.Contains(err.Error(), "https-certificate-file "+a.CertFile) {
		t.Errorf("mismatched pair: %v", err)
	}
	_, err = Load(a.CertFile+".missing", a.KeyFile, 0, hclog.NewNullLogger())
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}
