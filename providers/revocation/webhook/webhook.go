// Package webhook is the revocation-push provider that POSTs each notice as JSON, signed
// with HMAC-SHA256 over a timestamp and the body, to the client's admin URL or one fixed URL.
//
// # Receiving
//
// Every request is a POST with Content-Type application/json, the JSON of a Message as its
// body, and a Sessiond-Signature header:
//
//	Sessiond-Signature: t=1772366400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// t is the Unix time the request was signed at; v1 is the lower-case hex HMAC-SHA256, keyed
// with the shared secret (the provider's secret option), of the bytes of t, a full stop, and
// the raw body exactly as received. A receiver written in Go calls Verify on the raw body
// before decoding it:
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	err := webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.DefaultTolerance)
//	if err != nil {
//		http.Error(w, "bad signature", http.StatusBadRequest) // 4xx: not retried
//		return
//	}
//
// Elsewhere: split the header on commas, compute the HMAC of t + "." + body, compare it in
// constant time with each v1 value (there may be several while a secret is rotated), and
// refuse a t further than the tolerance from the receiver's clock, so that a request
// captured on the way cannot be replayed later. Within the window a retried delivery keeps
// its Message.ID: receivers that must act once keep the ids they have seen for the window.
//
// Answer 2xx once the notice is acted on. A 5xx, 408, 429, timeout or connection error makes
// sessiond retry with backoff; any other status marks the delivery failed at once.
//
// # Sending
//
// The target is the url option when set, otherwise the client's admin URL. Without the
// url option, a client with no admin URL but a back-channel logout URL (an OpenID Connect
// relying party with no webhook receiver) still gets its session logouts, the standard
// way: the logout token POSTed as the form logout_token=<JWT> to that URL, 200 or 204
// being success, as the adapter provider sends it. Any other notice for a client with no
// target fails without a retry. A result, and so the push-revocation answer, names the
// URL posted to, without user information. Redirects are not followed. The secret never
// appears in logs or show-config, nor does a password in the url option.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/providers/revocation/internal/httppush"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// ID is the provider id of this package.
const ID = "webhook"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptURL           = "url"
	OptSecret        = "secret"
	OptTimeout       = httppush.OptTimeout
	OptMaxConcurrent = httppush.OptMaxConcurrent
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
const SignatureHeader = "Sessiond-Signature"

// DefaultTolerance is how far from the receiver's clock a signature time is accepted.
const DefaultTolerance = 5 * time.Minute

// Message is the JSON body of a request.
type Message struct {
	// ID is the delivery id: the same on every retry of one notice.
	ID     string `json:"id"`
	Action string `json:"action"` // PUSH_NOT_BEFORE, LOGOUT or BACKCHANNEL_LOGOUT
	Realm  string `json:"realm"`
	Client string `json:"client"` // the client's clientId
	// NotBefore is the policy in Unix seconds: tokens issued before it are no longer valid.
	// 0 when the notice carries none.
	NotBefore int64 `json:"notBefore"`
	// SessionIDs are the sessions ended, for LOGOUT and BACKCHANNEL_LOGOUT; absent when a
	// logout concerns every session of the realm.
	SessionIDs []string `json:"sessionIds,omitempty"`
	IssuedAt   int64    `json:"issuedAt"` // Unix seconds when this request was made
	// Token is the realm-signed adapter action or logout token of the notice, for receivers
	// that also check the realm's keys (its JWKS); the signature header already
	// authenticates the request.
	Token string `json:"token,omitempty"`
}

// Errors of Verify; test with errors.Is.
var (
	ErrMalformed = errors.New("signature header is missing or malformed")
	ErrSignature = errors.New("signature does not match")
	ErrTimestamp = errors.New("signature time is outside the tolerance window")
)

// Provider POSTs signed JSON. It is safe for concurrent use once configured.
type Provider struct {
	log    hclog.Logger
	now    func() time.Time
	url    string
	secret string
	sender *httppush.Sender
}

var _ revocationpush.Provider = (*Provider)(nil)

// New returns an unconfigured provider; it does no I/O. Configure must succeed before Push.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, now: time.Now, sender: httppush.New(httppush.DefaultTimeout, httppush.DefaultMaxConcurrent)}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.RevocationPush,
		ID:      ID,
		Version: Version,
		Help: "POSTs each revocation notice as JSON to the client's admin URL (or one fixed url), signed with HMAC-SHA256 " +
			"over a timestamp and the body in the Sessiond-Signature header (t=…,v1=…); any 2xx is success.",
		Options: append([]spi.Option{
			{Name: OptURL, Type: spi.String,
				Help: "One URL that receives every notice, instead of each client's admin URL."},
			{Name: OptSecret, Type: spi.String, Secret: true,
				Help: "Shared secret the signature is keyed with; required. Receivers verify with the same secret."},
		}, httppush.Options()...),
	}
}

// Configure implements spi.Provider.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
	c := sdk.ReadConfig(p.Describe(), cfg)
	target, secret := c.String(OptURL), c.String(OptSecret)
	if err := c.Err(); err != nil {
		return err
	}
	key := "spi-" + spi.RevocationPush + "-" + ID + "-"
	if secret == "" {
		return fmt.Errorf("%s%s is required: set it to the secret receivers verify the %s header with: %w", key, OptSecret, SignatureHeader, spi.ErrInvalid)
	}
	if target != "" {
		if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s%s=%q is not an absolute http(s) URL: %w", key, OptURL, redact.URL(target), spi.ErrInvalid)
		}
	}
	sender, err := httppush.Read(p.Describe(), cfg)
	if err != nil {
		return err
	}
	p.sender.Close()
	p.url, p.secret, p.sender = target, secret, sender
	return nil
}

// Close implements spi.Provider.
func (p *Provider) Close(context.Context) error {
	p.sender.Close()
	return nil
}

// Push implements revocationpush.Provider: one request per notice, several at once.
func (p *Provider) Push(ctx context.Context, notices []revocationpush.Notice) ([]revocationpush.Result, error) {
	if p.secret == "" {
		return nil, fmt.Errorf("webhook provider is not configured: %w", spi.ErrUnavailable)
	}
	return p.sender.PushAll(ctx, p.log, notices, p.push), nil
}

func (p *Provider) push(ctx context.Context, n revocationpush.Notice) revocationpush.Result {
	target := p.url
	if target == "" {
		target = n.AdminURL
	}
	if target == "" && n.Action == revocationpush.BackchannelLogout && n.LogoutURL != "" {
		if n.Token == "" {
			return revocationpush.Result{Target: redact.URL(n.LogoutURL), Error: "notice carries no logout token"}
		}
		return p.sender.Post(ctx, httppush.BackchannelLogout(n.LogoutURL, n.Token))
	}
	if target == "" {
		return revocationpush.Result{Error: "no url option and the client has no admin URL"}
	}
	now := p.now()
	m := Message{ID: n.ID, Action: n.Action, Realm: n.RealmID, Client: n.ClientID, SessionIDs: n.SessionIDs, IssuedAt: now.Unix(), Token: n.Token}
	if !n.NotBefore.IsZero() {
		m.NotBefore = n.NotBefore.Unix()
	}
	body, err := json.Marshal(m)
	if err != nil {
		return revocationpush.Result{Target: redact.URL(target), Error: err.Error()}
	}
	header := http.Header{SignatureHeader: {Signature(p.secret, now, body)}}
	return p.sender.Post(ctx, httppush.Request{URL: target, ContentType: "application/json", Body: body, Header: header,
		Accept: func(status int) bool { return status >= 200 && status < 300 }})
}

// Signature returns the SignatureHeader value for body signed at t with secret.
func Signature(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a SignatureHeader value against the raw body: one of its v1 signatures must
// be the HMAC-SHA256 of t + "." + body keyed with secret (ErrSignature), and t must lie
// within tolerance of now, either side (ErrTimestamp), so that a captured request cannot be
// replayed after the window. A header without t or v1 is ErrMalformed. An empty secret or a
// tolerance ≤ 0 verifies nothing.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" || tolerance <= 0 {
		return fmt.Errorf("webhook: verify needs a secret and a positive tolerance: %w", ErrSignature)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("webhook: t given twice: %w", ErrMalformed)
			}
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	signed, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("webhook: %s needs t=<unix seconds> and v1=<hex>: %w", SignatureHeader, ErrMalformed)
	}
	want := mac(secret, ts, body)
	matched := false
	for _, s := range sigs {
		// Every candidate is compared, so the time taken does not say which one matched.
		matched = hmac.Equal(s, want) || matched
	}
	if !matched {
		return fmt.Errorf("webhook: %w", ErrSignature)
	}
	if d := now.Sub(time.Unix(signed, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: signed at %s, %s from now, beyond the %s tolerance: %w",
			time.Unix(signed, 0).UTC().Format(time.RFC3339), d.Round(time.Second), tolerance, ErrTimestamp)
	}
	return nil
}
