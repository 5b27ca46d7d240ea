package postgres_test

import (
	"net/url"
	"testing"

	"github.com/sessiond/sessiond/internal/tcpproxy"
)

// proxy sits between a test's provider and PostgreSQL, so the test can take the database
// away and bring it back.
type proxy struct {
	*tcpproxy.Proxy
	url string // the database URL, pointing at the proxy
}

func newProxy(t *testing.T, databaseURL string) *proxy {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tcpproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	through, err := p.URL(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	return &proxy{Proxy: p, url: through}
}
