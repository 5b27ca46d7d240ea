// Package httppush is what the HTTP revocation-push providers share: their timeout and
// concurrency options, a bounded pool of POSTs, and the reading of an answer as an outcome.
package httppush

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// Option names, the same for every HTTP provider.
const (
	OptTimeout       = "timeout"
	OptMaxConcurrent = "max-concurrent-requests"
)

// Defaults and bounds of the options.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxConcurrent = 16
	maxConcurrent        = 1024
)

// drainLimit bounds how much of an answer body is read so the connection can be reused;
// the body itself is never used.
const drainLimit = 64 << 10

// Options declares the shared options for a provider's Descriptor.
func Options() []spi.Option {
	return []spi.Option{
		{Name: OptTimeout, Type: spi.Duration, Default: DefaultTimeout.String(),
			Help: "How long one request to a client may take, connecting included; a request that runs out is retried later."},
		{Name: OptMaxConcurrent, Type: spi.Int, Default: fmt.Sprint(DefaultMaxConcurrent),
			Help: fmt.Sprintf("Most requests one push sends at once; the others wait their turn. From 1 to %d.", maxConcurrent)},
	}
}

// Read returns a Sender configured by the shared options in cfg, checked against the
// provider's Descriptor d.
func Read(d spi.Descriptor, cfg spi.Config) (*Sender, error) {
	c := sdk.ReadConfig(d, cfg)
	timeout, most := c.Duration(OptTimeout), c.Int(OptMaxConcurrent)
	if err := c.Err(); err != nil {
		return nil, err
	}
	key := "spi-" + d.SPI + "-" + d.ID + "-"
	switch {
	case timeout <= 0:
		return nil, fmt.Errorf("%s%s=%s must be positive: %w", key, OptTimeout, timeout, spi.ErrInvalid)
	case most < 1 || most > maxConcurrent:
		return nil, fmt.Errorf("%s%s=%d must be from 1 to %d: %w", key, OptMaxConcurrent, most, maxConcurrent, spi.ErrInvalid)
	}
	return New(timeout, most), nil
}

// Sender POSTs to clients, at most a fixed number at once. It is safe for concurrent use.
type Sender struct {
	client *http.Client
	slots  chan struct{}
}

// New returns a Sender whose requests each take at most timeout, at most most at once.
func New(timeout time.Duration, most int) *Sender {
	return &Sender{
		client: &http.Client{
			Timeout: timeout,
			// A redirect would re-send a realm-signed body to wherever the answer points;
			// a client that moved registers its new URL instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		slots: make(chan struct{}, most),
	}
}

// Close drops idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// PushAll delivers every notice with push, at most the Sender's limit at once, and returns
// one result per notice, in order, once all have returned. Notices not started when ctx
// ends still get their call, which fails at once on the ended ctx, so every notice has a
// result. Each outcome is logged at debug level; tokens never are.
func (s *Sender) PushAll(ctx context.Context, log hclog.Logger, notices []revocationpush.Notice,
	push func(context.Context, revocationpush.Notice) revocationpush.Result) []revocationpush.Result {
	out := make([]revocationpush.Result, len(notices))
	one := func(i int) {
		n := notices[i]
		r := push(ctx, n)
		r.NoticeID = n.ID
		out[i] = r
		log.Debug("revocation notice pushed", "id", n.ID, "action", n.Action, "realm", n.RealmID, "client", n.ClientID,
			"target", r.Target, "ok", r.OK, "status", r.Status, "error", r.Error, "retry", r.Retry)
	}
	var wg sync.WaitGroup
	for i := range notices {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			one(i)
			continue
		}
		wg.Go(func() {
			defer func() { <-s.slots }()
			one(i)
		})
	}
	wg.Wait()
	return out
}

// Request is one POST.
type Request struct {
	URL         string
	ContentType string
	Body        []byte
	Header      http.Header // extra headers, may be nil
	// Accept says which statuses mean delivered.
	Accept func(status int) bool
	// Refusal, when set, reads the body of an answer Accept refused (at most 64 KiB of it)
	// for the receiver's own words, which the result's Error then adds; retry makes a
	// refusal worth retrying that the status alone would not (RFC 8935's invalid_key: the
	// receiver has not yet fetched a new key).
	Refusal func(status int, body []byte) (detail string, retry bool)
}

// Post sends r and reads the answer as an outcome (NoticeID left empty): delivered when
// Accept says so; otherwise worth retrying after an I/O error, a timeout, a 5xx, 408 or 429
// (the client is down, overloaded or asks to come back), and not after any other status.
// Target, and any URL in Error, is the URL without its user information (redact.URL); a
// user and password in the URL are sent as HTTP Basic credentials, as net/http would.
func (s *Sender) Post(ctx context.Context, r Request) revocationpush.Result {
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return revocationpush.Result{Target: redact.URL(r.URL), Error: "target is not an absolute http(s) URL"}
	}
	user := u.User
	u.User = nil // so that no error names it
	res := revocationpush.Result{Target: u.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if user != nil {
		password, _ := user.Password()
		req.SetBasicAuth(user.Username(), password)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", r.ContentType)
	resp, err := s.client.Do(req)
	if err != nil {
		// The error names the URL without its user information, never the body.
		res.Error, res.Retry = err.Error(), true
		return res
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, drainLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()
	res.Status = resp.StatusCode
	switch code := resp.StatusCode; {
	case r.Accept(code):
		res.OK = true
		return res
	case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		res.Error, res.Retry = fmt.Sprintf("HTTP %d from client", code), true
	case code >= 300 && code < 400:
		res.Error = fmt.Sprintf("HTTP %d from client (redirects are not followed; register the final URL)", code)
		return res
	default:
		res.Error = fmt.Sprintf("HTTP %d from client", code)
	}
	if r.Refusal != nil {
		detail, retry := r.Refusal(resp.StatusCode, body)
		if detail != "" {
			res.Error += ": " + detail
		}
		res.Retry = res.Retry || retry
	}
	return res
}

// ContentTypeForm is the content type of a back-channel logout request.
const ContentTypeForm = "application/x-www-form-urlencoded"

// BackchannelLogout is the request of OpenID Connect Back-Channel Logout 1.0: the form
// logout_token=<JWT> for the client's back-channel logout URL. 200 is success, as the
// specification has it, and 204, which some frameworks answer instead.
func BackchannelLogout(logoutURL, logoutToken string) Request {
	return Request{
		URL: logoutURL, ContentType: ContentTypeForm, Body: []byte(url.Values{"logout_token": {logoutToken}}.Encode()),
		Accept: func(status int) bool { return status == http.StatusOK || status == http.StatusNoContent },
	}
}
