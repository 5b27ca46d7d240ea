// Package logonly is the revocation-push provider that delivers nothing: it logs each notice
// and reports it undelivered, so a realm without a push target still sees what would be sent.
package logonly

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/providers/internal/optionless"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// ID is the provider id of this package.
const ID = "log-only"

// Version is this provider's own version.
const Version = "1.0.0"

// NotDelivered is the Result.Error of every notice. Results say OK=false so that an operator
// pressing "push" is never told a client was reached when it was not.
const NotDelivered = "log-only provider does not deliver; choose a delivering revocation-push provider"

// Provider logs notices. It has no options.
type Provider struct {
	optionless.Base
}

var _ revocationpush.Provider = (*Provider)(nil)

// New returns the provider; notices are logged to log at info level.
func New(log hclog.Logger) *Provider {
	return &Provider{optionless.New(spi.Descriptor{
		SPI:     spi.RevocationPush,
		ID:      ID,
		Version: Version,
		Help:    "Logs each revocation notice and delivers nothing; every push is reported as failed.",
	}, log)}
}

// Push implements revocationpush.Provider. Retry is false: trying again cannot help until
// the operator chooses another provider. The token itself is not logged.
func (p *Provider) Push(_ context.Context, notices []revocationpush.Notice) ([]revocationpush.Result, error) {
	out := make([]revocationpush.Result, len(notices))
	for i, n := range notices {
		target := n.AdminURL
		if n.Action == revocationpush.BackchannelLogout {
			target = n.LogoutURL
		}
		target = redact.URL(target) // a password in a client's URL is never shown
		p.Log.Info("revocation notice not delivered (log-only provider)",
			"id", n.ID, "action", n.Action, "realm", n.RealmID, "client", n.ClientID,
			"target", target, "not_before", n.NotBefore, "sessions", len(n.SessionIDs))
		out[i] = revocationpush.Result{NoticeID: n.ID, Target: target, Error: NotDelivered}
	}
	return out, nil
}
