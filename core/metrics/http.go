package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// grantTypes are the grant_type label values kept as sent; any other becomes "other", an
// absent or unreadable one "none".
var grantTypes = map[string]bool{
	"refresh_token": true, "authorization_code": true, "client_credentials": true, "password": true,
	"urn:ietf:params:oauth:grant-type:token-exchange": true, "urn:ietf:params:oauth:grant-type:device_code": true,
}

// Instrument measures next's answers to the token endpoint
// (POST /realms/{realm}/protocol/openid-connect/token) by grant_type and status code; other
// requests pass through untouched.
//
// The grant type is read after next has answered, from the form next parsed: net/http hands
// one *http.Request down through a ServeMux, so r.PostForm is what the handler read, and
// the body is never read twice.
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !isTokenPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		gt := "none"
		if r.PostForm != nil {
			if v := r.PostForm.Get("grant_type"); grantTypes[v] {
				gt = v
			} else if v != "" {
				gt = "other"
			}
		}
		m.tokenLatency.WithLabelValues(gt, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	})
}

// isTokenPath matches /realms/{realm}/protocol/openid-connect/token with one path segment
// for the realm.
func isTokenPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/realms/")
	if !ok {
		return false
	}
	realm, ok := strings.CutSuffix(rest, "/protocol/openid-connect/token")
	return ok && realm != "" && !strings.Contains(realm, "/")
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
