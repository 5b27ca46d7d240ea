// Package redact is the one way sessiond shows a URL that may carry credentials: in logs, in
// admin answers, in reports of revocation pushes and in configuration errors.
package redact

import (
	"net/url"
	"strings"
)

// URL returns raw without its user information: "https://user:secret@host/p" becomes
// "https://host/p". The user name goes too, not only the password that url.URL.Redacted
// masks, because a bare user name is often itself the credential (a token as user). A raw
// string that does not parse as a URL loses whatever precedes the last "@" of its authority,
// so that a malformed URL is not echoed with its password either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.Opaque == "" {
		if u.User == nil {
			return raw
		}
		u.User = nil
		return u.String()
	}
	// Not a URL (or an opaque one, "scheme:user:pass@host"): cut by hand.
	rest, prefix := raw, ""
	if i := strings.Index(rest, "//"); i >= 0 {
		prefix, rest = rest[:i+2], rest[i+2:]
	} else if i := strings.Index(rest, ":"); i >= 0 && u != nil && u.Opaque != "" {
		prefix, rest = rest[:i+1], rest[i+1:]
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	return prefix + rest[at+1:]
}
