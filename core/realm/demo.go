package realm

// Demo names of the built-in realm that start-dev serves.
const (
	DemoRealm  = "demo"
	DemoClient = "demo-app"
)

// Demo returns the realm start-dev serves: "demo", Keycloak's default timeouts, and one
// confidential client "demo-app" allowed offline access, whose secret the caller generates
// at start so no fixed credential ships in the binary.
func Demo(secret string) *Realm {
	return &Realm{
		Name:    DemoRealm,
		Enabled: true,
		Clients: []*Client{{
			ID:            DemoClient,
			ClientID:      DemoClient,
			Secret:        Secret(secret),
			Enabled:       true,
			RedirectURIs:  []string{"http://localhost:8080/callback", "http://127.0.0.1:8080/callback"},
			OfflineAccess: true,
		}},
		Source: "built-in",
	}
}

// AccountConsoleClientID is the client the account console signs in as (Keycloak's).
const AccountConsoleClientID = "account-console"

// AccountConsoleClient is the account console's client for a realm whose issuer is issuer,
// as Keycloak creates it in every realm: public, PKCE with S256, its one redirect URI the
// console's callback. start-dev adds it to the demo realm; a realm file lists it to serve
// the console (docs/account-console.md).
func AccountConsoleClient(issuer string) *Client {
	return &Client{
		ID: AccountConsoleClientID, ClientID: AccountConsoleClientID, PublicClient: true, Enabled: true,
		PKCEMethod: "S256", RedirectURIs: []string{issuer + "/account/callback"},
	}
}
