package runtime

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/console"
	"github.com/sessiond/sessiond/core/consolesession"
	"github.com/sessiond/sessiond/core/eventlog"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// adminService builds the admin API's service, after the not-before policies and the push
// outbox. Listings read store (the sessions' store as the core sees it: the cache answers
// reads by key only); reads by key and every removal go through the session cache, so that
// this node's cache and, through the change feed, the other nodes' forget what was removed.
func (rt *Runtime) adminService(store usersessions.Provider, keys admin.Keys, now func() time.Time) *admin.Service {
	d := admin.Deps{
		Store:    store,
		Sessions: rt.cache,
		Realms:   rt.realms,
		Keys:     keys,
		Push:     rt.adminPush(),
		// observe, which runs first, always sets an audit sink: the event log file, or
		// the "events" logger.
		Audit:  eventAudit{rt.obs.events},
		Events: rt.obs.events,
		Ends:   rt.sessionEnds(),
		Now:    now,
		Log:    rt.log.Named("admin"),
	}
	if rt.policies != nil { // an interface holding a nil pointer would not read as "none"
		d.Policies = rt.policies
	}
	return admin.New(d)
}

// eventAudit hands admin actions to the event log (a file, or the "events" logger).
type eventAudit struct{ sink auditor }

func (a eventAudit) Record(e admin.AuditEvent) {
	outcome := eventlog.OutcomeSuccess
	if e.Outcome != admin.OutcomeSuccess {
		outcome = eventlog.OutcomeFailure
	}
	a.sink.Audit(eventlog.AuditEvent{
		Time: e.Time, Actor: e.Actor, Action: e.Action, Realm: e.Realm, Target: e.Target, IP: e.IP,
		Outcome: outcome, Reason: auditReason(e),
	})
}

// auditReason says why an action was refused or failed, or what went wrong beside a
// success (clients that could not be notified); "" for a clean success.
func auditReason(e admin.AuditEvent) string {
	if e.Outcome == admin.OutcomeSuccess {
		return e.Detail
	}
	return fmt.Sprintf("%s (HTTP %d): %s", e.Outcome, e.Status, e.Detail)
}

// console builds the admin console over the admin service the JSON API uses, with the same
// credentials and the same failed-authentication guard. The configuration's start-up
// warnings are shown on its realm settings page.
//
// Its sign-in sessions are cookies MACed with a key kept in the store's records (sealed
// with the key-encryption key when one is set), so that every node sharing the store
// serves them and a restart keeps them.
func (rt *Runtime) console(adm *admin.Service, sessions *session.Service, guard *authfail.Guard, frontend, adminToken string,
	records consolesession.Records, kek *token.KEK, issuer func(string) string, now func() time.Time) (*console.Console, error) {
	var warnings []string
	for _, w := range rt.settings.Warnings {
		warnings = append(warnings, w.Error())
	}
	d := console.Deps{
		Admin: adm, Explain: sessions, Realms: rt.realms, Guard: guard, Now: now, Log: rt.log.Named("console"),
		Credentials: admin.Credentials{Admin: adminToken, Viewer: rt.settings.AdminViewerToken, Frontend: frontend},
		Warnings:    warnings, Hostname: rt.settings.Hostname, Records: records,
	}
	if kek != nil { // an interface holding a nil pointer would not read as "none"
		d.KEK = kek
	}
	if o := rt.settings.ConsoleOIDC; o.Realm != "" {
		// The realm and the client must be there: a sign-in that can never work is refused
		// at start, with the reason.
		_, c, ok := rt.realms.Client(o.Realm, o.Client)
		if !ok {
			return nil, fmt.Errorf("admin-console-oidc-realm %q with admin-console-oidc-client %q: no such realm or client in the realm file", o.Realm, o.Client)
		}
		d.OIDC = &console.OIDC{Realm: o.Realm, Issuer: issuer(o.Realm), ClientID: c.ClientID, ClientSecret: c.Secret,
			RoleClaim: o.RoleClaim, AdminRole: o.AdminRole, ViewerRole: o.ViewerRole}
		rt.log.Info("the admin console also signs operators in through OpenID Connect", "realm", o.Realm, "client", o.Client,
			"role_claim", o.RoleClaim, "redirect_uri", strings.TrimSuffix(d.OIDC.Issuer, "/realms/"+url.PathEscape(o.Realm))+console.Path+"oidc/callback")
	}
	return console.New(d), nil
}
