package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/cleanup"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/core/push"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/ssf"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// startPush builds the revocation-push outbox over the store (the outbox lives in the
// store even when online sessions do not) and the configured revocation-push provider, and
// runs its retry worker until Stop. It needs the not-before policies started, and exposes
// the outbox's outcomes to the metrics.
func (rt *Runtime) startPush(store usersessions.Provider, keys *token.KeyManager, tokens *token.Service, now func() time.Time) error {
	provider, ok := rt.providers.Get(spi.RevocationPush).(revocationpush.Provider)
	if !ok {
		return errors.New("the revocation-push provider does not implement the revocation-push SPI")
	}
	if rt.policies == nil {
		return errors.New("the revocation-push outbox needs the not-before policies, which are not started")
	}
	s := rt.settings
	var sets push.SETs
	if s.SPIs[spi.RevocationPush].Provider == ssf.ProviderID {
		t, err := ssf.New(ssf.Deps{
			Store: store, Keys: keys, Realms: rt.realms, Queue: func() ssf.Queue { return rt.push },
			Issuer: tokens.Issuer, JWKS: func(realm string) string { return tokens.Issuer(realm) + "/protocol/openid-connect/certs" },
			NewID: push.NewID, Now: now, Log: rt.log.Named("ssf"),
		})
		if err != nil {
			return err
		}
		rt.ssf, sets = t, t
	}
	o, err := push.New(push.Deps{
		Store: store, Provider: provider, Realms: rt.realms, Keys: keys, Tokens: tokens, NotBefore: rt.policies,
		SETs: sets, Now: now, Log: rt.log.Named("push"),
	}, push.Options{
		MaxAttempts: s.PushMaxAttempts, BackoffInitial: s.PushBackoffInitial, BackoffMax: s.PushBackoffMax,
		Lease: s.PushLease, BatchSize: s.PushBatchSize,
	})
	if err != nil {
		return err
	}
	if err := rt.watchPush(o); err != nil {
		return err
	}
	rt.push = o
	rt.goBackground(o.Run)
	return nil
}

// sessionEnds is who hears of ended sessions: the SSF transmitter when it runs, else none.
func (rt *Runtime) sessionEnds() session.Ends {
	if rt.ssf == nil { // an interface holding a nil pointer would not read as "none"
		return nil
	}
	return rt.ssf
}

// cleanupDeps are the cleaner's dependencies: with the SSF transmitter as its Ends when the
// operator asked for session-revoked on expiry (spi-revocation-push-ssf-session-expired).
func (rt *Runtime) cleanupDeps(store cleanup.Store) cleanup.Deps {
	d := cleanup.Deps{Store: store, Log: rt.log.Named("cleanup")}
	ssfConf := rt.settings.SPIs[spi.RevocationPush].Providers[ssf.ProviderID].Config
	if rt.ssf != nil && ssfConf["session-expired"] == "true" {
		d.Ends = rt.ssf
		d.Realms = func() []string {
			var names []string
			for _, r := range rt.realms.List() {
				names = append(names, r.Name)
			}
			return names
		}
		rt.log.Info("SSF: sessions that expire are signalled as session-revoked; cleanup removes them one by one")
	}
	return d
}

// sharedSignals is the transmitter as the HTTP layer takes it; nil when it does not run.
func (rt *Runtime) sharedSignals() httpapi.SharedSignals {
	if rt.ssf == nil {
		return nil
	}
	return rt.ssf
}

// SSF returns the Shared Signals transmitter, nil unless the ssf provider pushes.
func (rt *Runtime) SSF() *ssf.Transmitter { return rt.ssf }

// Push returns the revocation-push outbox: the admin API pushes and lists deliveries
// through it, the metrics read its Counts.
func (rt *Runtime) Push() *push.Outbox { return rt.push }

// adminPush is the outbox as the admin service calls it; nil until startPush ran.
func (rt *Runtime) adminPush() admin.Push {
	if rt.push == nil {
		return nil
	}
	return outboxForAdmin{rt.push}
}

// outboxForAdmin converts the outbox's reports into the admin service's.
type outboxForAdmin struct{ o *push.Outbox }

func (a outboxForAdmin) PushNotBefore(ctx context.Context, realmName, clientID string) (admin.Report, error) {
	r, err := a.o.PushNotBefore(ctx, realmName, clientID)
	return admin.Report(r), err
}

func (a outboxForAdmin) LogoutAll(ctx context.Context, realmName string, notBefore time.Time) (admin.Report, error) {
	r, err := a.o.LogoutAll(ctx, realmName, notBefore)
	return admin.Report(r), err
}

func (a outboxForAdmin) Logout(ctx context.Context, realmName string, sessions []*usersessions.UserSession) (admin.Report, error) {
	r, err := a.o.Logout(ctx, realmName, sessions)
	return admin.Report(r), err
}

func (a outboxForAdmin) QueueLogout(ctx context.Context, realmName string, sessions []*usersessions.UserSession) (int, error) {
	return a.o.QueueLogout(ctx, realmName, sessions)
}

func (a outboxForAdmin) Deliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	return a.o.Deliveries(ctx, f)
}
