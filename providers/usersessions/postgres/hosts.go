package postgres

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/sessiond/sessiond/spi"
)

// splitHosts turns a URL naming several servers in its authority, as libpq writes it
// (postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write), into the form
// lib/pq reads: no host in the authority, the lists in the host and port parameters. lib/pq
// takes the lists there, and in the key=value form, and tries the hosts in order with the
// target_session_attrs check; the authority form it would look up as one host name
// ("lookup h1:5432,h2: no such host"). A URL naming one server is returned as it is.
func splitHosts(raw string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, nil
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, authority = authority[:at+1], authority[at+1:]
	}
	if !strings.Contains(authority, ",") {
		return raw, nil
	}
	var hosts, ports []string
	anyPort := false
	for _, item := range strings.Split(authority, ",") {
		host, port, err := splitHostPort(item)
		if err != nil {
			return "", fmt.Errorf("option %s: host %q of the URL: %v: %w", OptURL, item, err, spi.ErrInvalid)
		}
		hosts, ports = append(hosts, host), append(ports, port)
		anyPort = anyPort || port != ""
	}
	path, query, _ := strings.Cut(tail, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("option %s: the URL's parameters: %v: %w", OptURL, err, spi.ErrInvalid)
	}
	for _, k := range []string{"host", "hostaddr", "port"} {
		if q.Has(k) {
			return "", fmt.Errorf("option %s: the URL names several hosts and also a %s parameter; give the hosts in one place: %w", OptURL, k, spi.ErrInvalid)
		}
	}
	q.Set("host", strings.Join(hosts, ","))
	if anyPort {
		for i, p := range ports {
			if p == "" {
				ports[i] = "5432" // lib/pq defaults only the later items of a list
			}
		}
		q.Set("port", strings.Join(ports, ","))
	}
	return scheme + "://" + userinfo + path + "?" + q.Encode(), nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(item string) (host, port string, err error) {
	switch {
	case item == "":
		return "", "", fmt.Errorf("empty")
	case strings.HasPrefix(item, "[") && strings.HasSuffix(item, "]"):
		return item[1 : len(item)-1], "", nil
	case strings.HasPrefix(item, "["), strings.Count(item, ":") == 1:
		return net.SplitHostPort(item)
	case strings.Contains(item, ":"):
		return "", "", fmt.Errorf("an IPv6 address needs brackets")
	}
	return item, "", nil
}
