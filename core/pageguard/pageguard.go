// Package pageguard is what every server-rendered console page of sessiond shares at its
// door: the security headers, the refusal of text no store can hold, and the browser's half
// of the CSRF defence. The admin console and the account console serve through it alike.
package pageguard

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// MaxForm bounds a console form's body: the forms hold a token and a few words.
const MaxForm = 16 << 10

// SetHeaders sets the headers of a console page: no script, forms only to itself, never
// framed, cached, sniffed or sent as a referrer.
func SetHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// CheckText refuses a NUL or invalid UTF-8 in the path, the query or a POST's form (read
// here, at most MaxForm bytes), before any route sees it. Errors wrap spi.ErrInvalid.
func CheckText(r *http.Request) error {
	if err := usersessions.CheckText("the path", r.URL.Path); err != nil {
		return err
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("malformed query: %w", spi.ErrInvalid)
	}
	if err := checkValues("query parameter", q); err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		return nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, MaxForm)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("malformed form: %w", spi.ErrInvalid)
	}
	return checkValues("form field", r.PostForm)
}

func checkValues(what string, vs url.Values) error {
	for k, v := range vs {
		if err := usersessions.CheckText(what+" name", k); err != nil {
			return err
		}
		for _, x := range v {
			if err := usersessions.CheckText(what+" "+k, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// SameOrigin is the browser's half of the CSRF defence: a POST that says it comes from
// another site (Sec-Fetch-Site) or another origin (Origin) is refused, whatever it
// carries. A request that says neither (an old browser, a script) still needs the token.
//
// Sec-Fetch-Site, where the browser sends it, decides: the pages are served with
// Referrer-Policy: no-referrer, under which a browser sends "Origin: null" with their own
// forms. Without it, Origin must be the page's: the host the request was sent to, or
// hostname, sessiond's configured public base URL ("" when unset; a proxy that does not
// pass the Host header on).
func SameOrigin(r *http.Request, hostname string) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Host == r.Host || (hostname != "" && strings.EqualFold(origin, hostname))
}
