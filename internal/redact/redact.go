// Package redact is the one way sessiond shows a URL or connection string that may carry
// credentials: in logs, in admin answers, in reports of revocation pushes and in
// configuration errors.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a secret value that is shown in place (a query parameter's value), as
// url.URL.Redacted masks a password.
const Mask = "xxxxx"

// secretParams are query and connection-string parameters whose values are credentials:
// libpq's password and sslpassword, and the names web hooks and admin URLs commonly carry
// a secret or token under. Matched without regard to case.
var secretParams = []string{
	"password", "sslpassword", "passwd", "pwd", "pass",
	"secret", "client_secret", "token", "access_token", "refresh_token", "api_key", "apikey",
}

// secret reports whether a parameter name carries a credential.
func secret(name string) bool {
	for _, s := range secretParams {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// URL returns raw without its user information and with the values of its secret query
// parameters masked: "https://user:secret@host/p?password=x&a=1" becomes
// "https://host/p?password=xxxxx&a=1". The user name goes too, not only the password that
// url.URL.Redacted masks, because a bare user name is often itself the credential (a token
// as user). A raw string that does not parse as a URL loses whatever precedes the last "@"
// of its authority, and its secret parameters are masked all the same, so that a malformed
// URL is not echoed with its password either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.Opaque == "" {
		if u.User == nil && !hasSecretParam(u.RawQuery) {
			return raw
		}
		u.User = nil
		u.RawQuery = maskQuery(u.RawQuery)
		return u.String()
	}
	// Not a URL (or an opaque one, "scheme:user:pass@host"): cut by hand.
	rest, prefix := raw, ""
	if i := strings.Index(rest, "//"); i >= 0 {
		prefix, rest = rest[:i+2], rest[i+2:]
	} else if i := strings.Index(rest, ":"); i >= 0 && u != nil && u.Opaque != "" {
		prefix, rest = rest[:i+1], rest[i+1:]
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = authority[at+1:]
	}
	if q := strings.Index(tail, "?"); q >= 0 {
		query, frag := tail[q+1:], ""
		if h := strings.Index(query, "#"); h >= 0 {
			query, frag = query[:h], query[h:]
		}
		tail = tail[:q+1] + maskQuery(query) + frag
	}
	return prefix + authority + tail
}

// hasSecretParam reports whether a raw query names a secret parameter.
func hasSecretParam(rawQuery string) bool {
	for _, kv := range strings.FieldsFunc(rawQuery, isQuerySep) {
		name, _, _ := strings.Cut(kv, "=")
		if n, err := url.QueryUnescape(name); err == nil && secret(n) || secret(name) {
			return true
		}
	}
	return false
}

func isQuerySep(r rune) bool { return r == '&' || r == ';' }

// maskQuery masks the values of the secret parameters of a raw query, keeping the rest
// (and the order) as written.
func maskQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	var b strings.Builder
	start := 0
	for i := 0; i <= len(rawQuery); i++ {
		if i < len(rawQuery) && !isQuerySep(rune(rawQuery[i])) {
			continue
		}
		kv := rawQuery[start:i]
		name, _, hasValue := strings.Cut(kv, "=")
		n, err := url.QueryUnescape(name)
		if hasValue && (secret(name) || err == nil && secret(n)) {
			kv = name + "=" + Mask
		}
		b.WriteString(kv)
		if i < len(rawQuery) {
			b.WriteByte(rawQuery[i])
		}
		start = i + 1
	}
	return b.String()
}

// ConnString returns a database connection string fit to show: a URL as URL redacts it
// (user information and secret query parameters such as password and sslpassword), and a
// libpq key=value string ("host=db user=app password='s3 cret'") with the values of its
// secret keys masked, quoted values included.
func ConnString(raw string) string {
	if strings.Contains(raw, "://") {
		return URL(raw)
	}
	var b strings.Builder
	i := 0
	for i < len(raw) {
		// Copy the separating white space, then read "key", "=" and the value.
		j := i
		for j < len(raw) && isSpace(raw[j]) {
			j++
		}
		b.WriteString(raw[i:j])
		i = j
		for j < len(raw) && raw[j] != '=' && !isSpace(raw[j]) {
			j++
		}
		key := raw[i:j]
		for j < len(raw) && isSpace(raw[j]) {
			j++
		}
		if j >= len(raw) || raw[j] != '=' {
			// Not key=value: keep the word and go on.
			b.WriteString(raw[i:j])
			i = j
			continue
		}
		j++ // "="
		for j < len(raw) && isSpace(raw[j]) {
			j++
		}
		valueStart := j
		if j < len(raw) && raw[j] == '\'' {
			j++
			for j < len(raw) && raw[j] != '\'' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(raw)) // the closing quote; an unclosed one runs to the end
		} else {
			for j < len(raw) && !isSpace(raw[j]) {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(raw))
		}
		b.WriteString(raw[i:valueStart])
		if secret(key) {
			b.WriteString(Mask)
		} else {
			b.WriteString(raw[valueStart:j])
		}
		i = j
	}
	return b.String()
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
