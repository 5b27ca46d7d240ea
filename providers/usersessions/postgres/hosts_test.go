package postgres

import (
	"errors"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

// TestURLWithSeveralHostsBecomesHostAndPortLists: the libpq URL form with several
// host:port pairs reaches lib/pq as the host and port lists it understands; one host is
// left alone; hosts given twice are refused with the reason.
func TestURLWithSeveralHostsBecomesHostAndPortLists(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		invalid        bool
	}{
		{"one host", "postgres://u:pw@db:5432/s?sslmode=disable", "postgres://u:pw@db:5432/s?sslmode=disable", false},
		{"two hosts with ports", "postgres://u:pw@127.0.0.1:5440,127.0.0.1:5441/s?target_session_attrs=read-write",
			"postgres://u:pw@/s?host=127.0.0.1%2C127.0.0.1&port=5440%2C5441&target_session_attrs=read-write", false},
		{"without ports", "postgresql://a,b/s", "postgresql:///s?host=a%2Cb", false},
		{"one port of two", "postgres://a,b:6000/s", "postgres:///s?host=a%2Cb&port=5432%2C6000", false},
		{"IPv6", "postgres://[::1]:5440,[fe80::1]/s", "postgres:///s?host=%3A%3A1%2Cfe80%3A%3A1&port=5440%2C5432", false},
		{"no path", "postgres://a:1,b:2", "postgres://?host=a%2Cb&port=1%2C2", false},
		{"an empty host", "postgres://a,,b/s", "", true},
		{"IPv6 without brackets", "postgres://::1,b/s", "", true},
		{"hosts twice", "postgres://a,b/s?host=c", "", true},
		{"ports twice", "postgres://a:1,b:2/s?port=3", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitHosts(tc.in)
			if tc.invalid {
				if !errors.Is(err, spi.ErrInvalid) {
					t.Fatalf("splitHosts(%q) = %q, %v; want spi.ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("splitHosts(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
