// Package tlscert serves sessiond's TLS certificate from PEM files and reloads it when the
// files change, so a renewed certificate is taken up without a restart.
//
// The check is lazy: the first handshake after the reload period stats both files and,
// when either changed (modification time, size or inode), loads the pair again. A pair
// that does not load (a key written before its certificate, a typo) keeps the pair in use
// and is logged; the next period tries again. No goroutine: nothing to stop.
package tlscert

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Files is a certificate and key pair that is reloaded when the files change.
type Files struct {
	certFile, keyFile string
	period            time.Duration // 0: never reload
	log               hclog.Logger
	now               func() time.Time

	cert atomic.Pointer[tls.Certificate]

	mu        sync.Mutex // held by the one handshake that checks the files
	checked   time.Time
	stamp     [2]fileStamp // of the pair in use
	lastError string       // of the last failed reload, so that it is logged once
}

// fileStamp is what says a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// Load reads the pair; period is how often a handshake checks whether the files changed
// (0: never).
func Load(certFile, keyFile string, period time.Duration, log hclog.Logger) (*Files, error) {
	f := &Files{certFile: certFile, keyFile: keyFile, period: period, log: log, now: time.Now}
	stamp, err := f.stat()
	if err != nil {
		return nil, err
	}
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cert.Store(c)
	f.stamp, f.checked = stamp, f.now()
	return f, nil
}

// Config is a server TLS configuration over the pair, accepting TLS versions from min to
// max.
func (f *Files) Config(minVersion, maxVersion uint16) *tls.Config {
	return &tls.Config{
		MinVersion:     minVersion,
		MaxVersion:     maxVersion,
		GetCertificate: f.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// GetCertificate is tls.Config's: the pair in use, reloaded first when the period is over
// and the files changed.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if f.period > 0 && f.mu.TryLock() { // a handshake beside the checking one takes the pair in use
		if f.now().Sub(f.checked) >= f.period {
			f.reload()
		}
		f.mu.Unlock()
	}
	return f.cert.Load(), nil
}

// reload loads the pair when a file changed; f.mu is held.
func (f *Files) reload() {
	f.checked = f.now()
	stamp, err := f.stat()
	if err == nil && stamp == f.stamp {
		return
	}
	var c *tls.Certificate
	if err == nil {
		c, err = f.load()
	}
	if err != nil {
		if msg := err.Error(); msg != f.lastError {
			f.lastError = msg
			f.log.Error("TLS certificate files changed but do not load; serving the certificate loaded before", "error", err)
		}
		return
	}
	f.cert.Store(c)
	f.stamp, f.lastError = stamp, ""
	f.log.Info("TLS certificate reloaded", "https-certificate-file", f.certFile, "not-after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

func (f *Files) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("https-certificate-file %s, https-certificate-key-file %s: %w", f.certFile, f.keyFile, err)
	}
	return &c, nil
}

func (f *Files) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, name := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return out, fmt.Errorf("TLS material: %w", err)
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			out[i].ino = st.Ino // a file replaced by rename may keep its time and size
		}
	}
	return out, nil
}
