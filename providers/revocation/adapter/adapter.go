// Package adapter is the revocation-push provider that speaks Keycloak's OIDC adapter
// protocol, and OpenID Connect Back-Channel Logout 1.0 for clients that registered a
// back-channel logout URL.
//
// A not-before push POSTs the realm-signed action the core put in Notice.Token (a compact
// JWS of {id, expiration, resource, action: "PUSH_NOT_BEFORE", notBefore}) as a text/plain
// body to <admin URL>/k_push_not_before; a logout action ("LOGOUT", with adapterSessionIds
// and notBefore) goes to <admin URL>/k_logout the same way. The adapter checks the signature
// against the realm's keys. A back-channel logout POSTs the form logout_token=<JWT> to the
// client's back-channel logout URL. HTTP 200 or 204 is success, as in Keycloak and the
// specification; a 5xx, 408, 429, timeout or I/O error is worth retrying; any other status
// is not. Redirects are not followed. Tokens are never logged.
//
// A result's Target names the client as Keycloak's push-revocation answer does: its admin
// URL for an adapter action (the protocol fixes the path under it), its back-channel
// logout URL for a logout token; never with user information.
package adapter

import (
	"context"
	"net/url"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/providers/revocation/internal/httppush"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// ID is the provider id of this package.
const ID = "adapter"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptTimeout       = httppush.OptTimeout
	OptMaxConcurrent = httppush.OptMaxConcurrent
)

// The paths under a client's admin URL, as Keycloak's adapters serve them.
const (
	PathPushNotBefore = "k_push_not_before"
	PathLogout        = "k_logout"
)

// Content types of the two request kinds.
const (
	ContentTypeAction = "text/plain"
	ContentTypeForm   = httppush.ContentTypeForm
)

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
		Help: "Keycloak's OIDC adapter protocol: realm-signed not-before and logout actions POSTed to <admin URL>/k_push_not_before and /k_logout, " +
			"and OpenID Connect back-channel logout tokens POSTed to clients' back-channel logout URLs; 200 or 204 is success.",
		Options: httppush.Options(),
	}
}

// Configure implements spi.Provider.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
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
	return Deliver(ctx, p.sender, n)
}

// Deliver sends one notice of Keycloak's adapter protocol or a back-channel logout with
// sender, as this provider does; a provider that speaks more (ssf) sends these with it.
func Deliver(ctx context.Context, sender *httppush.Sender, n revocationpush.Notice) revocationpush.Result {
	if n.Token == "" {
		return revocationpush.Result{Error: "notice carries no signed token"}
	}
	switch n.Action {
	case revocationpush.PushNotBefore, revocationpush.Logout:
		if n.AdminURL == "" {
			return revocationpush.Result{Error: "client has no admin URL"}
		}
		path := PathPushNotBefore
		if n.Action == revocationpush.Logout {
			path = PathLogout
		}
		target, err := url.JoinPath(n.AdminURL, path)
		if err != nil {
			return revocationpush.Result{Target: redact.URL(n.AdminURL), Error: "admin URL is not a URL"}
		}
		r := sender.Post(ctx, httppush.Request{URL: target, ContentType: ContentTypeAction, Body: []byte(n.Token), Accept: ok})
		r.Target = redact.URL(n.AdminURL) // Keycloak's managementUrl; the error names the full URL
		return r
	case revocationpush.BackchannelLogout:
		if n.LogoutURL == "" {
			return revocationpush.Result{Error: "client has no back-channel logout URL"}
		}
		return sender.Post(ctx, httppush.BackchannelLogout(n.LogoutURL, n.Token))
	default:
		return revocationpush.Result{Error: "unknown action " + strconv.Quote(n.Action)}
	}
}

// ok is success for both protocols: Keycloak counts 200 and 204, and Back-Channel Logout
// 1.0 answers 200, or 204 where a framework substitutes it.
func ok(status int) bool { return status == 200 || status == 204 }
