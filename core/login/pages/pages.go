// Package pages renders the few HTML pages sessiond shows a browser itself (an authorization
// request it cannot send back to its client, the logout confirmation, the form post to a
// client): server-side html/template, with their stylesheet embedded, and one script.
package pages

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
)

//go:embed *.html
var files embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"submitScript": func() template.JS { return submitScript },
}).ParseFS(files, "*.html"))

// submitScript posts a FormPost page's form on load. It is the only script a page of
// sessiond's runs, allowed by its hash in the page's Content-Security-Policy.
const submitScript = "document.forms[0].submit()"

// submitScriptHash is submitScript's CSP hash source.
var submitScriptHash = func() string {
	sum := sha256.Sum256([]byte(submitScript))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// Error is the page of a refused request that must not be redirected.
type Error struct {
	Title       string
	Description string
}

// Confirm is the logout confirmation page: a form that posts its fields back. Next is the
// validated post-logout redirect the answer to that post leads to, if any.
type Confirm struct {
	Action string
	Fields map[string]string
	Next   string
}

// LoggedOut is the page after a logout: it loads the front-channel logout URLs of the
// session's clients in hidden iframes, then goes on to Next (a post-logout redirect) if set.
type LoggedOut struct {
	FrontChannel []string
	Next         string
}

// FormPost is the page of OAuth 2.0 Form Post Response Mode: a form of Fields that the
// browser posts to Action (the client's redirect URI) as soon as it loads.
type FormPost struct {
	Action string
	Fields url.Values
}

// Render writes the page name with data and status. The pages set no cookie and are never
// framed or cached.
func Render(w http.ResponseWriter, status int, name string, data any) {
	var formTo, frames []string
	switch d := data.(type) {
	case LoggedOut:
		frames = d.FrontChannel
	case Confirm:
		formTo = []string{d.Next}
	case FormPost:
		formTo = []string{d.Action}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	csp := ContentSecurityPolicy(formTo, frames)
	if _, ok := data.(FormPost); ok {
		csp += "; script-src " + submitScriptHash
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = templates.ExecuteTemplate(w, name, data)
}

// ContentSecurityPolicy is the policy of a page sessiond serves: no script, its own
// stylesheet, forms posted to sessiond itself, and never framed. formTo are the URLs the
// answer to a form may redirect to (a client's validated redirect URI): browsers apply
// form-action to every redirect after a form's submission, so without their origins the
// browser would refuse to follow sessiond's redirect back to the client. frames are URLs the
// page loads in iframes.
func ContentSecurityPolicy(formTo, frames []string) string {
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'" + sources(formTo) + "; frame-ancestors 'none'"
	if f := sources(frames); f != "" {
		csp += "; frame-src" + f
	}
	return csp
}

// sources are the CSP source expressions of the URLs' origins (a scheme source for a URL
// without a host, such as a native app's private-use scheme), each with a leading space.
func sources(urls []string) string {
	out := ""
	for _, u := range urls {
		p, err := url.Parse(u)
		switch {
		case u == "" || err != nil || p.Scheme == "":
		case p.Host == "":
			out += " " + p.Scheme + ":"
		default:
			out += " " + p.Scheme + "://" + p.Host
		}
	}
	return out
}
