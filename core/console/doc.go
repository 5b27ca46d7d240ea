// Package console is sessiond's admin console: server-rendered pages at /admin/console/
// over the same admin service (core/admin) the JSON API calls, with the same audit.
//
// An operator signs in with the administrator or view-only credential; the console keeps a
// session of its own in this node's memory (a random id in an HttpOnly, SameSite=Strict
// cookie, never the credential), and every form carries that session's CSRF token. No
// script: the pages are plain HTML with an embedded stylesheet.
package console
