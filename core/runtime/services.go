package runtime

import (
	"fmt"
	"net/http"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// wire builds the services over the started providers and returns the HTTP handler.
// boundURL is the address actually listened on, the issuer base when no hostname is set.
func (rt *Runtime) wire(opts Options, boundURL string) (http.Handler, error) {
	store, ok := rt.providers.Get(spi.UserSessions).(usersessions.Provider)
	if !ok {
		return nil, fmt.Errorf("the user-sessions provider does not implement the user-sessions SPI")
	}
	keys, err := token.NewKeyManager(store, token.KeyOptions{Log: rt.log.Named("keys")})
	if err != nil {
		return nil, err
	}
	base := rt.settings.Hostname
	if base == "" {
		base = boundURL
	}
	tokens := token.New(keys, token.Options{IssuerBase: base})
	features := rt.settings.Features
	sessions := session.New(session.Deps{
		Store:              store,
		Realms:             rt.realms,
		Tokens:             tokens,
		PersistentSessions: features.Enabled(conf.FeaturePersistentUserSessions),
		TransientSessions:  features.Enabled(conf.FeatureTransientSessions),
		Log:                rt.log.Named("sessions"),
		Events:             eventLog{rt.log.Named("events")},
	})

	frontend, admin, err := rt.credentials(opts)
	if err != nil {
		return nil, err
	}
	return httpapi.New(rt.log.Named("http"), httpapi.Deps{
		Ready:         rt,
		Sessions:      sessions,
		Keys:          keys,
		Realms:        rt.realms,
		Issuer:        tokens.Issuer,
		FrontendToken: frontend,
		AdminToken:    admin,
	}), nil
}

// credentials returns the front-end and admin bearer credentials. start-dev generates the
// missing ones and shows them once on the operator's terminal, never in the log.
func (rt *Runtime) credentials(opts Options) (frontend, admin string, err error) {
	frontend, admin = rt.settings.FrontendToken, rt.settings.AdminToken
	for _, c := range []struct {
		name string
		val  *string
	}{{"frontend-token", &frontend}, {"admin-token", &admin}} {
		if *c.val != "" {
			continue
		}
		if opts.Profile != conf.ProfileDev {
			rt.log.Warn("credential not configured: its callers are refused", "option", c.name)
			continue
		}
		if *c.val, err = newSecret(); err != nil {
			return "", "", err
		}
		if opts.Stdout != nil {
			fmt.Fprintf(opts.Stdout, "start-dev: generated --%s=%s (shown once)\n", c.name, *c.val)
		}
	}
	return frontend, admin, nil
}

// eventLog writes the session event stream as structured log lines under
// "sessiond.events", one line an event, for a SIEM to ingest (JSON with log-format=json).
type eventLog struct {
	log interface{ Info(string, ...any) }
}

func (e eventLog) Emit(ev session.Event) {
	args := []any{"type", ev.Type, "realm", ev.Realm, "time", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	add := func(k, v string) {
		if v != "" {
			args = append(args, k, v)
		}
	}
	add("client", ev.ClientID)
	add("session", ev.SessionID)
	add("user", ev.UserID)
	add("reason", ev.Reason)
	add("reuse", ev.Reuse)
	if ev.Offline {
		args = append(args, "offline", true)
	}
	if ev.Transient {
		args = append(args, "transient", true)
	}
	if ev.EndedClientSession {
		args = append(args, "ended_client_session", true)
	}
	e.log.Info("event", args...)
}
