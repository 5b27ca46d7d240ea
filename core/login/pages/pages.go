// Package pages renders the few HTML pages sessiond shows a browser itself (an authorization
// request it cannot send back to its client, the logout confirmation): server-side
// html/template, with their stylesheet embedded, and no script.
package pages

import (
	"embed"
	"html/template"
	"net/http"
	"net/url"
)

//go:embed *.html
var files embed.FS

var templates = template.Must(template.ParseFS(files, "*.html"))

// Error is the page of a refused request that must not be redirected.
type Error struct {
	Title       string
	Description string
}

// Confirm is the logout confirmation page: a form that posts its fields back.
type Confirm struct {
	Action string
	Fields map[string]string
}

// LoggedOut is the page after a logout: it loads the front-channel logout URLs of the
// session's clients in hidden iframes, then goes on to Next (a post-logout redirect) if set.
type LoggedOut struct {
	FrontChannel []string
	Next         string
}

// Render writes the page name with data and status. The pages set no cookie and are never
// framed or cached.
func Render(w http.ResponseWriter, status int, name string, data any) {
	frames := ""
	if lo, ok := data.(LoggedOut); ok {
		for _, u := range lo.FrontChannel {
			if p, err := url.Parse(u); err == nil {
				frames += " " + p.Scheme + "://" + p.Host
			}
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
	if frames != "" {
		csp += "; frame-src" + frames
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = templates.ExecuteTemplate(w, name, data)
}
