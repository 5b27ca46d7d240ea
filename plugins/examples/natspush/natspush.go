// Package natspush is a revocation-push provider for sessiond that publishes each notice to
// NATS: the second worked example of a third-party provider (see
// docs/plugin-author-guide.md).
//
// A notice for client C of realm R goes to the subject "<subject-prefix>.R.C" as a JSON
// Message; the client's adapter (or a relay in front of it) subscribes to its own subject,
// or to "<subject-prefix>.R.>" for a whole realm, and checks Message.Token against the
// realm's keys before acting on it. Realm and client ids are escaped into single subject
// tokens (see Token).
//
// With jetstream=false (the default) a notice counts as delivered once the NATS server has
// taken it (the connection was flushed): at most once, to whoever is subscribed at that
// moment. With jetstream=true it counts as delivered once a JetStream stream that captures
// those subjects acknowledged it; the notice id travels as Nats-Msg-Id, so a notice pushed
// again after a lost acknowledgement is stored once.
package natspush

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// ID is the provider id: the <id> of --spi-revocation-push-<id>-… keys.
const ID = "nats"

// Version is this provider's own version.
const Version = "0.1.0"

// Option names.
const (
	OptURL           = "url"
	OptToken         = "token"
	OptSubjectPrefix = "subject-prefix"
	OptTimeout       = "timeout"
	OptJetStream     = "jetstream"
)

// Headers set on every message besides the JSON body.
const (
	HeaderAction = "Sessiond-Action"
	HeaderRealm  = "Sessiond-Realm"
)

// Message is the JSON body of a published notice.
type Message struct {
	ID         string   `json:"id"`     // delivery id, stable across retries
	Action     string   `json:"action"` // PUSH_NOT_BEFORE, LOGOUT or BACKCHANNEL_LOGOUT
	Realm      string   `json:"realm"`
	Client     string   `json:"client"`
	AdminURL   string   `json:"admin_url,omitempty"`
	LogoutURL  string   `json:"logout_url,omitempty"`
	NotBefore  int64    `json:"not_before,omitempty"` // unix seconds
	SessionIDs []string `json:"session_ids,omitempty"`
	// Token is the realm-signed JWS of the adapter action, or the back-channel
	// logout_token; verify it before acting.
	Token   string `json:"token,omitempty"`
	Expires int64  `json:"expires,omitempty"` // unix seconds: the token's expiry
}

// Provider publishes revocation notices to NATS. It is safe for concurrent use.
type Provider struct {
	log hclog.Logger

	mu      sync.RWMutex
	nc      *nats.Conn
	js      jetstream.JetStream // nil unless jetstream=true
	prefix  string
	timeout time.Duration
}

var _ revocationpush.Provider = (*Provider)(nil)

// New returns an unconfigured provider; it does no I/O.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.RevocationPush,
		ID:      ID,
		Version: Version,
		Help:    "Publishes revocation notices to NATS subjects <subject-prefix>.<realm>.<client> (example third-party plugin).",
		Options: []spi.Option{
			{Name: OptURL, Type: spi.String, Default: nats.DefaultURL, Secret: true,
				Help: "NATS server URL, or several separated by commas. It may carry a user and password (nats://user:password@host:4222): masked in show-config, and logged without them."},
			{Name: OptToken, Type: spi.String, Secret: true,
				Help: "NATS authentication token."},
			{Name: OptSubjectPrefix, Type: spi.String, Default: "sessiond.revocation",
				Help: "Subjects are <subject-prefix>.<realm>.<client>."},
			{Name: OptTimeout, Type: spi.Duration, Default: "5s",
				Help: "How long one push may wait for the server to take, or a stream to acknowledge, its notices."},
			{Name: OptJetStream, Type: spi.Bool, Default: "false",
				Help: "Publish through JetStream: a notice is delivered once a stream capturing its subject stored it."},
		},
	}
}

// Configure implements spi.Provider. A NATS server that is down does not stop sessiond
// from starting: the connection keeps trying, and pushes meanwhile fail with Retry.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
	c := sdk.ReadConfig(p.Describe(), cfg)
	url, token, prefix := c.String(OptURL), c.String(OptToken), c.String(OptSubjectPrefix)
	timeout, useJS := c.Duration(OptTimeout), c.Bool(OptJetStream)
	if err := c.Err(); err != nil {
		return err
	}
	if prefix == "" || strings.ContainsAny(prefix, " \t\r\n*>") || strings.HasPrefix(prefix, ".") || strings.HasSuffix(prefix, ".") {
		return fmt.Errorf("spi-revocation-push-nats-%s=%q is not a subject prefix: %w", OptSubjectPrefix, prefix, spi.ErrInvalid)
	}
	if timeout <= 0 {
		return fmt.Errorf("spi-revocation-push-nats-%s must be positive: %w", OptTimeout, spi.ErrInvalid)
	}
	opts := []nats.Option{
		nats.Name("sessiond revocation-push"),
		nats.Timeout(timeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		// No reconnect buffer: a notice published while the connection is down fails at
		// once and is retried by sessiond, rather than sent later behind its back.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			p.log.Warn("disconnected from NATS; pushes fail until it is back", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { p.log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted()) }),
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		// nats's own errors quote the URL as given, password included. With
		// RetryOnFailedConnect, Connect fails only on what it was given.
		msg := err.Error()
		for _, u := range strings.Split(url, ",") {
			if u = strings.TrimSpace(u); u != "" {
				msg = strings.ReplaceAll(msg, u, redact.URL(u))
			}
		}
		return fmt.Errorf("spi-revocation-push-nats-url=%q: %s: %w", shownURLs(url), msg, spi.ErrInvalid)
	}
	var js jetstream.JetStream
	if useJS {
		if js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return fmt.Errorf("jetstream: %w", err)
		}
	}
	p.mu.Lock()
	old := p.nc
	p.nc, p.js, p.prefix, p.timeout = nc, js, prefix, timeout
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	p.log.Info("publishing revocation notices to NATS", "url", shownURLs(url), "subjects", prefix+".<realm>.<client>", "jetstream", useJS,
		"connected", nc.IsConnected())
	return nil
}

// shownURLs is the url option fit for a log or an error: each server URL without its user
// information or secret parameters. (sessiond's own redaction; a plugin outside this
// repository can use net/url's URL.Redacted, which masks the password.)
func shownURLs(urls string) string {
	list := strings.Split(urls, ",")
	for i, u := range list {
		list[i] = redact.URL(strings.TrimSpace(u))
	}
	return strings.Join(list, ",")
}

// Close implements spi.Provider: it flushes what is buffered and closes the connection.
func (p *Provider) Close(context.Context) error {
	p.mu.Lock()
	nc := p.nc
	p.nc, p.js = nil, nil
	p.mu.Unlock()
	if nc != nil {
		nc.Drain() // flushes, then closes in the background
	}
	return nil
}

// Subject is the subject a notice for client of realm goes to under prefix.
func Subject(prefix, realm, client string) string {
	return prefix + "." + Token(realm) + "." + Token(client)
}

// Token escapes s into one NATS subject token: letters, digits, '-' and '_' stay, every
// other byte (the '.' that separates tokens, the wildcards '*' and '>', spaces, and so on)
// becomes '%' and two hex digits, as does '%' itself. An empty s is "%".
func Token(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Push implements revocationpush.Provider: one Result per notice, in order.
func (p *Provider) Push(ctx context.Context, notices []revocationpush.Notice) ([]revocationpush.Result, error) {
	p.mu.RLock()
	nc, js, prefix, timeout := p.nc, p.js, p.prefix, p.timeout
	p.mu.RUnlock()
	if nc == nil {
		return nil, fmt.Errorf("nats provider is not configured or is closed: %w", spi.ErrUnavailable)
	}
	// A caller that has gone is sent nothing: the flush below selects between the server's
	// answer and the context, and with both ready it could report a delivery the caller
	// stopped waiting for.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nats provider: push: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	results := make([]revocationpush.Result, len(notices))
	var sent []int // published on the plain connection, delivered once a flush succeeds
	for i, n := range notices {
		r := &results[i]
		r.NoticeID = n.ID
		if n.RealmID == "" || n.ClientID == "" {
			r.Error = "notice has no realm or no client: nowhere to publish it"
			continue
		}
		r.Target = Subject(prefix, n.RealmID, n.ClientID)
		msg := nats.NewMsg(r.Target)
		msg.Data = encode(n)
		msg.Header.Set(nats.MsgIdHdr, n.ID)
		msg.Header.Set(HeaderAction, n.Action)
		msg.Header.Set(HeaderRealm, n.RealmID)
		if js != nil {
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				r.Error, r.Retry = "jetstream: "+err.Error(), true
				continue
			}
			r.OK = true
			continue
		}
		if err := nc.PublishMsg(msg); err != nil {
			r.Error, r.Retry = "publish: "+err.Error(), true
			continue
		}
		sent = append(sent, i)
	}
	if len(sent) > 0 {
		err := nc.FlushWithContext(ctx)
		if err == nil {
			err = ctx.Err() // the answer and the deadline came together
		}
		for _, i := range sent {
			if err != nil {
				results[i].Error, results[i].Retry = "flush: "+err.Error(), true
			} else {
				results[i].OK = true
			}
		}
	}
	for _, r := range results {
		if !r.OK {
			p.log.Warn("revocation notice not published", "id", r.NoticeID, "subject", r.Target, "error", r.Error, "retry", r.Retry)
		}
	}
	return results, nil
}

func encode(n revocationpush.Notice) []byte {
	m := Message{ID: n.ID, Action: n.Action, Realm: n.RealmID, Client: n.ClientID, AdminURL: n.AdminURL, LogoutURL: n.LogoutURL,
		SessionIDs: n.SessionIDs, Token: n.Token}
	if !n.NotBefore.IsZero() {
		m.NotBefore = n.NotBefore.Unix()
	}
	if !n.Expires.IsZero() {
		m.Expires = n.Expires.Unix()
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings and numbers only
	}
	return b
}
