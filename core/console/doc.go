// Package console is sessiond's admin console: server-rendered pages at /admin/console/
// over the same admin service (core/admin) the JSON API calls, with the same audit.
//
// An operator signs in with the administrator or view-only credential, or through OpenID
// Connect against a realm of sessiond with a role claim (oidc.go); the console keeps a
// session of its own in an HttpOnly, SameSite=Strict cookie MACed with a key the nodes
// sharing the store read (core/consolesession; never the credential), so that any node
// serves it, and every form carries that session's CSRF token. No script: the pages are
// plain HTML with an embedded stylesheet.
package console
