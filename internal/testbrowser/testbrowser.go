// Package testbrowser starts Debian's Chromium headless for a test that drives a real browser
// over the DevTools protocol (chromedp), and records what the pages report as errors.
//
// A test that needs it fails, never skips, when Chromium is absent: .ci/services installs it.
package testbrowser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ExecPath is where Debian's chromium package puts the browser.
const ExecPath = "/usr/bin/chromium"

// Timeout bounds everything one Browser does after its start: generous for two shared cores
// under the whole suite (a login, SSO and two logouts took 27 s at a load of 15), short
// enough that a hung page fails the test rather than the test binary's timeout.
const Timeout = 2 * time.Minute

// Browser is one headless Chromium with a fresh profile, owned by a test.
type Browser struct {
	t        testing.TB
	tab      context.Context // the tab's chromedp context, no deadline (that would stop the browser)
	deadline time.Time

	mu     sync.Mutex
	errors []string
	output bytes.Buffer // Chromium's own stdout and stderr
}

// New starts Chromium for t with the flags a closed network needs (no QUIC, no background
// or component downloads, no sync) and a profile in t.TempDir(). t's cleanup stops it; when
// t has failed by then, it first saves a screenshot of the page and logs its path.
func New(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ExecPath); err != nil {
		t.Fatalf("testbrowser: Debian's Chromium is needed at %s (%v): run .ci/services, which installs it with apt", ExecPath, err)
	}
	b := &Browser{t: t}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ExecPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(lockedWriter{b}),
	)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	})
	// The start is bounded too: a Chromium that never answers fails here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Listen(tab, b.record) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("testbrowser: start %s: %v\n%s", ExecPath, err, b.chromiumOutput())
		}
	case <-time.After(Timeout):
		cancelTab()
		<-started
		t.Fatalf("testbrowser: %s did not start in %s\n%s", ExecPath, Timeout, b.chromiumOutput())
	}
	b.tab, b.deadline = tab, time.Now().Add(Timeout)
	t.Cleanup(b.screenshotIfFailed) // runs before the browser stops
	return b
}

// Do runs actions in the browser's tab, in order, before the Browser's deadline (Timeout
// after its start).
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := b.Context()
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Context is the tab's context bounded by the Browser's deadline, for chromedp.Run and
// chromedp.Call.
func (b *Browser) Context() (context.Context, context.CancelFunc) {
	return context.WithDeadline(b.tab, b.deadline)
}

// Errors returns what the pages reported since the start: uncaught exceptions, console.error
// calls and the browser's own error log entries (a refused Content-Security-Policy, a failed
// resource load).
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *Browser) record(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		msg += " at " + d.URL
	case *runtime.EventConsoleAPICalled:
		if ev.Type != "error" && ev.Type != "assert" {
			return
		}
		var args []string
		for _, a := range ev.Args {
			args = append(args, string(a.Value))
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

// screenshotIfFailed saves the page as it was when the test failed, in a folder the test's
// cleanup does not remove (t.TempDir's would be gone before anyone could look), and logs
// the path and the page's address.
func (b *Browser) screenshotIfFailed() {
	if !b.t.Failed() {
		return
	}
	if errs := b.Errors(); len(errs) > 0 {
		b.t.Logf("testbrowser: the pages reported:\n%s", strings.Join(errs, "\n"))
	}
	// A fresh bound: the test may have failed because the deadline passed.
	ctx, cancel := context.WithTimeout(b.tab, 10*time.Second)
	defer cancel()
	location, _ := chromedp.Run(ctx, chromedp.Location())
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; any other quality is JPEG
	if err != nil {
		b.t.Logf("testbrowser: no screenshot of %s: %v", location, err)
		return
	}
	dir, err := os.MkdirTemp("", "testbrowser-")
	if err == nil {
		path := filepath.Join(dir, strings.ReplaceAll(b.t.Name(), "/", "_")+".png")
		if err = os.WriteFile(path, png, 0o644); err == nil {
			b.t.Logf("testbrowser: screenshot of %s at the failure: %s", location, path)
		}
	}
	if err != nil {
		b.t.Logf("testbrowser: screenshot not saved: %v", err)
	}
}

func (b *Browser) chromiumOutput() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.output.String()
}

// lockedWriter collects Chromium's output, which its own goroutine writes.
type lockedWriter struct{ b *Browser }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.output.Write(p)
}
