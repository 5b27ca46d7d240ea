package main

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The admin CLI never sends the credential in clear over the network, and reaches a
// sessiond with a self-signed certificate when told which to trust.

func TestAdminCLIRefusesCleartextToNonLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url    string
		refuse bool
	}{
		{"http://sso.example.com:8080", true},
		{"http://192.0.2.10:8080", true},
		{"http://[2001:db8::1]:8080", true},
		{"http://127.0.0.1:1", false},
		{"http://[::1]:1", false},
		{"http://localhost:1", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := adminMain([]string{"stats", "--realm=demo", "--url=" + tc.url, "--timeout=2s"}, &out, &errOut, []string{"SESSIOND_ADMIN_TOKEN=t"})
			refused := code == 2 && strings.Contains(errOut.String(), "would cross the network in clear; use https://")
			if refused != tc.refuse {
				t.Errorf("exit %d, stderr %q; want refused=%v", code, errOut.String(), tc.refuse)
			}
		})
	}
}

// tlsAdminAPI is an https stand-in for the admin API whose certificate is written to a
// PEM file; it records the credential it was sent.
func tlsAdminAPI(t *testing.T) (srv *httptest.Server, cacert string, got *string) {
	t.Helper()
	got = new(string)
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*got = r.Header.Get("Authorization")
		jsonAnswer(w, "[]")
	}))
	t.Cleanup(srv.Close)
	cacert = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cacert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, cacert, got
}

func TestAdminCLIOverHTTPSWithCACert(t *testing.T) {
	t.Parallel()
	srv, cacert, got := tlsAdminAPI(t)
	for _, tc := range []struct {
		name  string
		extra []string
		code  int
		want  string
	}{
		{"untrusted certificate", nil, 1, "certificate"},
		{"--cacert", []string{"--cacert=" + cacert}, 0, ""},
		{"--insecure-skip-verify", []string{"--insecure-skip-verify"}, 0, ""},
		{"--cacert without a certificate", []string{"--cacert=" + filepath.Join(filepath.Dir(cacert), "none.pem")}, 2, "--cacert"},
		{"both", []string{"--cacert=" + cacert, "--insecure-skip-verify"}, 2, "keep one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			*got = ""
			var out, errOut bytes.Buffer
			args := append([]string{"stats", "--realm=demo", "--url=" + srv.URL}, tc.extra...)
			code := adminMain(args, &out, &errOut, []string{"SESSIOND_ADMIN_TOKEN=the-credential"})
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.code, tc.want)
			}
			if sent := *got == "Bearer the-credential"; sent != (tc.code == 0) {
				t.Errorf("credential sent: %q", *got)
			}
		})
	}
	var errOut bytes.Buffer
	if code := adminMain([]string{"stats", "--realm=demo", "--url=http://127.0.0.1:1", "--cacert=" + cacert}, &bytes.Buffer{}, &errOut, []string{"SESSIOND_ADMIN_TOKEN=t"}); code != 2 || !strings.Contains(errOut.String(), "are for an https:// --url") {
		t.Errorf("--cacert with http://: exit %d, %q", code, errOut.String())
	}
}
