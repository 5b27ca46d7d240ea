package runtime

import (
	"time"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/accountconsole"
	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/consolesession"
	loginflow "github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// accountService builds the account API's service: tokens verified as the realm's access
// tokens, sessions read by key through the cache and listed from the store, and ended the
// admin service's way (back-channel logout, logout events).
func (rt *Runtime) accountService(store usersessions.Provider, tokens *token.Service, adm *admin.Service, notBefore *revocation.Policies,
	persistent bool, now func() time.Time) *account.Service {
	return account.New(account.Deps{Tokens: tokens, Sessions: rt.cache, Lister: store, End: adm, Realms: rt.realms, NotBefore: notBefore,
		PersistentSessions: persistent, Events: rt.obs.events, Now: now, Log: rt.log.Named("account")})
}

// accountConsole builds the account console over the account service; its sign-in redeems
// codes through the login service. Its sign-in sessions are cookies MACed with a key kept
// in the store's records (sealed with the key-encryption key when one is set), as the admin
// console's, so that every node sharing the store serves them and a restart keeps them.
func (rt *Runtime) accountConsole(svc *account.Service, logins *loginflow.Service, records consolesession.Records, kek *token.KEK,
	now func() time.Time) *accountconsole.Console {
	d := accountconsole.Deps{Account: svc, Logins: logins, Realms: rt.realms, Records: records,
		Hostname: rt.settings.Hostname, Now: now, Log: rt.log.Named("account-console")}
	if kek != nil { // an interface holding a nil pointer would not read as "none"
		d.KEK = kek
	}
	return accountconsole.New(d)
}

// addDemoAccountConsole gives start-dev's demo realm the account console's client, whose
// redirect URI needs the issuer, known once the listener is open.
func (rt *Runtime) addDemoAccountConsole(profile conf.Profile, issuer func(string) string) error {
	r, ok := rt.realms.Realm(realm.DemoRealm)
	if profile != conf.ProfileDev || !ok || r.Source != "built-in" {
		return nil
	}
	if _, has := r.Client(realm.AccountConsoleClientID); has {
		return nil
	}
	r = r.Clone()
	r.Clients = append(r.Clients, realm.AccountConsoleClient(issuer(r.Name)))
	_, err := rt.realms.Put(r)
	return err
}
