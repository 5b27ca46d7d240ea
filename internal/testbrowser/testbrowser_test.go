package testbrowser

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestErrorsReportWhatThePagesReport loads a clean page, then pages that fail in each way
// Errors is meant to catch, in one browser: a test that asserts "no errors" can then fail.
func TestErrorsReportWhatThePagesReport(t *testing.T) {
	mux := http.NewServeMux()
	page := func(body string, csp string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if csp != "" {
				w.Header().Set("Content-Security-Policy", csp)
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><html><head><title>t</title><link rel=icon href=data:,></head><body><p id=done>%s</p></body></html>", body)
		}
	}
	mux.HandleFunc("/clean", page("clean", ""))
	mux.HandleFunc("/throws", page(`<script>throw new Error("boom-exception")</script>`, ""))
	mux.HandleFunc("/console", page(`<script>console.error("boom-console")</script>`, ""))
	mux.HandleFunc("/csp", page(`<script>document.title="ran"</script>`, "default-src 'none'"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := New(t)
	tests := []struct {
		path string
		want string // in the new errors; "" for none
	}{
		{"/clean", ""},
		{"/throws", "boom-exception"},
		{"/console", "boom-console"},
		{"/csp", "Content Security Policy"},
	}
	for _, tt := range tests {
		before := len(b.Errors())
		if err := b.Do(chromedp.Navigate(srv.URL+tt.path), chromedp.WaitVisible(chromedp.CSS("#done"))); err != nil {
			t.Fatalf("load %s: %v", tt.path, err)
		}
		got := strings.Join(b.Errors()[before:], "\n")
		switch {
		case tt.want == "" && got != "":
			t.Errorf("%s: Errors() = %q, want none", tt.path, got)
		case tt.want != "" && !strings.Contains(got, tt.want):
			t.Errorf("%s: Errors() = %q, want one with %q", tt.path, got, tt.want)
		}
	}
}
