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
