// Package ssf is the revocation-push provider of the OpenID Shared Signals Framework: it
// pushes the Security Event Tokens of SSF streams (CAEP session-revoked, stream
// verification) to each stream's receiver by RFC 8935, and carries the adapter provider's
// notices (Keycloak's adapter actions, OpenID Connect back-channel logout) as that provider
// does, so that choosing it loses neither.
//
// # Why the host signs
//
// A SET is signed with the realm's key, and providers run as plugin subprocesses. sessiond
// signs every SET itself, per attempt, and hands this provider the compact JWS in
// Notice.Token with the stream's endpoint in Notice.PushURL: realm keys never leave the
// sessiond process, the revocation-push SPI keeps its one call (no signing callback from
// plugin to host), and a third-party provider delivers SETs without any key handling.
//
// # Delivery (RFC 8935)
//
// A SET is POSTed to the stream's endpoint_url with Content-Type application/secevent+jwt,
// Accept application/json, and the stream's authorization_header, when it has one, as the
// Authorization header. 202 Accepted is success (and, for receivers that answer so, 200 and
// 204). A 400 carries the receiver's error code (RFC 8935 §2.3: invalid_request,
// invalid_key, invalid_issuer, invalid_audience, authentication_failed, access_denied),
// which the result's Error names; it is not retried, except invalid_key, which a receiver
// answers when it has not yet fetched a rotated key. A 5xx, 408, 429, timeout or I/O
// error is retried by the outbox, which keeps the SET's jti across retries so that a
// receiver counts each event once. Redirects are not followed. Tokens and the
// authorization header are never logged.
package ssf

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/providers/revocation/adapter"
	"github.com/sessiond/sessiond/providers/revocation/internal/httppush"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// ID is the provider id of this package.
const ID = "ssf"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptTimeout       = httppush.OptTimeout
	OptMaxConcurrent = httppush.OptMaxConcurrent
	// OptSessionExpired is read by sessiond, not by this provider: sessiond signals
	// sessions that end by expiring only when it is true (cleanup then removes expired
	// sessions one by one, so that one node tells of each).
	OptSessionExpired = "session-expired"
)

// ContentType is the media type of a pushed SET (RFC 8935 §2).
const ContentType = "application/secevent+jwt"

// ErrInvalidKey is the RFC 8935 §2.3 error code a receiver answers when it cannot validate
// the SET's signature: worth retrying, as the receiver may not yet have the new key.
const ErrInvalidKey = "invalid_key"

// Provider delivers notices over HTTP. It is safe for concurrent use once configured.
type Provider struct {
	log    hclog.Logger
	sender *httppush.Sender
}

var _ revocationpush.Provider = (*Provider)(nil)

// New returns the provider with its default options; it does no I/O.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, sender: httppush.New(httppush.DefaultTimeout, httppush.DefaultMaxConcurrent)}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.RevocationPush,
		ID:      ID,
		Version: Version,
		Help: "OpenID Shared Signals: realm-signed Security Event Tokens (CAEP session-revoked) pushed to each SSF stream's receiver (RFC 8935, 202 is success); " +
			"adapter actions and back-channel logout tokens as the adapter provider sends them.",
		Options: append(httppush.Options(), spi.Option{Name: OptSessionExpired, Type: spi.Bool, Default: "false",
			Help: "Also send session-revoked when a session ends by expiring (removed by cleanup, initiating_entity system); cleanup then removes expired sessions one store call each."}),
	}
}

// Configure implements spi.Provider.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
	c := sdk.ReadConfig(p.Describe(), cfg)
	_ = c.Bool(OptSessionExpired) // checked here, acted on by sessiond
	if err := c.Err(); err != nil {
		return err
	}
	sender, err := httppush.Read(p.Describe(), cfg)
	if err != nil {
		return err
	}
	p.sender.Close()
	p.sender = sender
	return nil
}

// Close implements spi.Provider.
func (p *Provider) Close(context.Context) error {
	p.sender.Close()
	return nil
}

// Push implements revocationpush.Provider: one request per notice, several at once.
func (p *Provider) Push(ctx context.Context, notices []revocationpush.Notice) ([]revocationpush.Result, error) {
	return p.sender.PushAll(ctx, p.log, notices, p.push), nil
}

func (p *Provider) push(ctx context.Context, n revocationpush.Notice) revocationpush.Result {
	if n.Action != revocationpush.SecurityEvent {
		return adapter.Deliver(ctx, p.sender, n)
	}
	switch {
	case n.Token == "":
		return revocationpush.Result{Error: "notice carries no signed SET"}
	case n.PushURL == "":
		return revocationpush.Result{Error: "stream has no push endpoint_url"}
	}
	h := http.Header{"Accept": {"application/json"}}
	if n.Authorization != "" {
		h.Set("Authorization", n.Authorization)
	}
	return p.sender.Post(ctx, httppush.Request{
		URL: n.PushURL, ContentType: ContentType, Body: []byte(n.Token), Header: h, Accept: accepted, Refusal: refusal,
	})
}

// accepted is RFC 8935's 202, and the 200 and 204 some receivers answer instead.
func accepted(status int) bool {
	return status == http.StatusAccepted || status == http.StatusOK || status == http.StatusNoContent
}

// errorBody is RFC 8935 §2.3's error response.
type errorBody struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// maxDetail bounds how much of a receiver's description a result keeps.
const maxDetail = 200

// refusal reads an RFC 8935 error response: its err code and description, and whether the
// code is worth retrying.
func refusal(_ int, body []byte) (string, bool) {
	var e errorBody
	if json.Unmarshal(body, &e) != nil || e.Err == "" {
		return "", false
	}
	detail := e.Err
	if d := strings.TrimSpace(e.Description); d != "" {
		if len(d) > maxDetail {
			d = strings.ToValidUTF8(d[:maxDetail], "") + "…"
		}
		detail += " (" + d + ")"
	}
	return detail, e.Err == ErrInvalidKey
}
