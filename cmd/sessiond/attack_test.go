package main

// This file is one file because it is one suite: issue 15's attack list, tried from outside
// against the real binary as an attacker would, each attack a subtest named after it.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/internal/testcert"
)

// attackRealmsJSON are the suite's realms: "attack" rotates refresh tokens with no leeway
// and tells the client's back-channel logout URL (%[1]s) of every logout; "grace" rotates
// with a grace window; "notbefore" is the realm whose not-before policy a subtest moves;
// "other" is another realm with the same client, for tokens carried across. "victim" is
// the client the wrong-secret flood aims at, so that no other subtest shares its limit;
// "browser" the public client whose authorization requests the login flood sends (to a
// front-end that is never reached).
const attackRealmsJSON = `[
  {"realm": "attack", "accessTokenLifespan": 300, "offlineSessionIdleTimeout": 2592000,
   "revokeRefreshToken": true, "refreshTokenMaxReuse": 0, "loginFrontendUrl": "https://login.invalid/login",
   "clients": [
     {"clientId": "app", "secret": "app-secret", "optionalClientScopes": ["offline_access"],
      "attributes": {"backchannel.logout.url": "%[1]s/backchannel"}},
     {"clientId": "victim", "secret": "victim-secret"},
     {"clientId": "browser", "publicClient": true, "redirectUris": ["https://rp.invalid/cb"]}
   ]},
  {"realm": "grace", "revokeRefreshToken": true, "refreshTokenMaxReuse": 0,
   "refreshTokenRotationGraceWindow": 60,
   "clients": [{"clientId": "app", "secret": "app-secret"}]},
  {"realm": "notbefore", "clients": [{"clientId": "app", "secret": "app-secret"}]},
  {"realm": "other", "clients": [{"clientId": "app", "secret": "app-secret", "optionalClientScopes": ["offline_access"]}]}
]`

// target is the sessiond the attacks share: `sessiond start` with TLS, a hostname, strong
// credentials, a key-encryption key, PostgreSQL in a schema of its own and every provider a
// plugin process; its secrets reach it through the environment, as an operator's would.
type target struct {
	d          *daemon
	dir        string // its working directory: realm file, event log
	base, mgmt string // public and management https:// URLs
	hostname   string
	cert       testcert.Pair
	schema     string
	env        []string          // the environment it runs with
	secrets    map[string]string // what of env and its options no one else may see
	args       []string          // its options, none secret
	events     string            // the event log file
	logouts    *logoutReceiver
}

// logoutReceiver is the client's back-channel logout endpoint: it keeps the logout tokens.
type logoutReceiver struct {
	mu     sync.Mutex
	tokens []string
}

func (rc *logoutReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err == nil && r.PostForm.Get("logout_token") != "" {
		rc.mu.Lock()
		rc.tokens = append(rc.tokens, r.PostForm.Get("logout_token"))
		rc.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// tokenFor waits up to 10 s for the logout token of session sid.
func (rc *logoutReceiver) tokenFor(t *testing.T, sid string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rc.mu.Lock()
		tokens := slices.Clone(rc.tokens)
		rc.mu.Unlock()
		for _, tok := range tokens {
			var claims struct {
				Sid string `json:"sid"`
			}
			if json.Unmarshal(decodeSegment(t, tok, 1), &claims) == nil && claims.Sid == sid {
				return tok
			}
		}
	}
	t.Fatalf("no back-channel logout token for session %s reached the client", sid)
	return ""
}

// strongSecret is a random credential start accepts (32 characters or more).
func strongSecret(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b)
	return prefix + "-" + base64.RawURLEncoding.EncodeToString(b)
}

// newKEK is a key-encryption key in the format sessiond reads: 32 random bytes in base64.
func newKEK() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// withoutSessiondEnv is this process's environment without any SESSIOND_ variable, so that
// what a test sets is all sessiond gets.
func withoutSessiondEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			env = append(env, kv)
		}
	}
	return env
}

var mgmtLine = regexp.MustCompile(`management interface.*address=(https?://\S+)`)

// startTarget starts the shared sessiond.
func startTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{dir: t.TempDir(), logouts: &logoutReceiver{}}
	rp := httptest.NewServer(tg.logouts)
	t.Cleanup(rp.Close)
	tg.cert = testcert.Write(t, tg.dir, "sessiond attack suite")
	realmFile := filepath.Join(tg.dir, "realms.json")
	if err := os.WriteFile(realmFile, fmt.Appendf(nil, attackRealmsJSON, rp.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := url.Parse(pgSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	tg.schema = db.Query().Get("search_path")
	// The test database trusts its clients, so both passwords are ignored; they must show
	// nowhere all the same.
	userinfoPassword, queryPassword := strongSecret("db-userinfo-password"), strongSecret("db-query-password")
	db.User = url.UserPassword(db.User.Username(), userinfoPassword)
	q := db.Query()
	q.Set("password", queryPassword)
	db.RawQuery = q.Encode()

	port := freePort(t)
	tg.hostname = "https://localhost:" + port
	tg.events = filepath.Join(tg.dir, "events.jsonl")
	tg.secrets = map[string]string{
		"SESSIOND_FRONTEND_TOKEN":                 strongSecret("frontend"),
		"SESSIOND_ADMIN_TOKEN":                    strongSecret("admin"),
		"SESSIOND_KEY_ENCRYPTION_KEY":             newKEK(),
		"SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL": db.String(),
		"db-userinfo-password":                    userinfoPassword,
		"db-query-password":                       queryPassword,
	}
	tg.env = withoutSessiondEnv()
	for k, v := range tg.secrets {
		if strings.HasPrefix(k, "SESSIOND_") {
			tg.env = append(tg.env, k+"="+v)
		}
	}
	tg.args = []string{
		"--http-host=127.0.0.1", "--https-port=" + port, "--http-management-port=0",
		"--hostname=" + tg.hostname,
		"--https-certificate-file=" + tg.cert.CertFile, "--https-certificate-key-file=" + tg.cert.KeyFile,
		"--realm-file=" + realmFile,
		"--spi-user-sessions-provider=postgres",
		"--spi-revocation-push-provider=adapter",
		"--event-log-file=" + tg.events,
		// Behind a proxy at 127.0.0.1: each flood comes from an address of its own, so that
		// throttling one attacker slows no other subtest.
		"--proxy-headers=xforwarded", "--proxy-trusted-addresses=127.0.0.1",
	}
	tg.d = startCommandIn(t, tg.dir, tg.env, append([]string{"start"}, tg.args...)...)
	tg.base = tg.d.base
	m := mgmtLine.FindStringSubmatch(tg.d.log())
	if m == nil {
		t.Fatalf("sessiond start named no management interface:\n%s", tg.d.log())
	}
	tg.mgmt = m[1]
	return tg
}

// client is an HTTPS client trusting the target's certificate that fails t on any 5xx
// answer but a 503 with Retry-After (a provider restarting: documented and retriable).
func (tg *target) client(t *testing.T) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: tg.cert.Pool()}
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Timeout: 30 * time.Second, Transport: no5xx{t, tr}}
}

type no5xx struct {
	t    *testing.T
	next http.RoundTripper
}

func (n no5xx) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := n.next.RoundTrip(r)
	if err == nil && resp.StatusCode >= 500 && (resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "") {
		n.t.Errorf("%s %s answered %d", r.Method, r.URL.Path, resp.StatusCode)
	}
	return resp, err
}

// api is an apiClient on the target, as the client "app" and the front-end.
func (tg *target) api(t *testing.T) *apiClient {
	return &apiClient{base: tg.base, http: tg.client(t), frontend: tg.secrets["SESSIOND_FRONTEND_TOKEN"]}
}

// open opens a session in realm for user, an offline one when offline is set.
func (tg *target) open(t *testing.T, c *apiClient, realm, user string, offline bool) *apiResult {
	t.Helper()
	body := map[string]any{"client_id": persistClient, "user_id": user + "-id", "username": user, "ip_address": "127.0.0.1"}
	if offline {
		body["scope"], body["offline_access"] = "openid offline_access", true
	}
	r, err := c.frontendIn(realm, "/sessions", body)
	if err != nil {
		t.Fatalf("open session for %s in %s: %v", user, realm, err)
	}
	if r.status != http.StatusCreated || r.RefreshToken == "" || r.AccessToken == "" {
		t.Fatalf("open session for %s in %s = %s, want 201 with tokens", user, realm, r.summary())
	}
	return r
}

// adminDo calls the admin API with the administrator's credential.
func (tg *target) adminDo(t *testing.T, c *apiClient, method, path, body string) *apiResult {
	t.Helper()
	req, err := http.NewRequest(method, tg.base+"/admin/realms/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tg.secrets["SESSIOND_ADMIN_TOKEN"])
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	r, err := c.do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// accessTokenVerifier is what the README tells a resource server to do: go-oidc's verifier
// on the realm's discovered JWKS, then the JWS header's typ, at+jwt (RFC 9068).
type accessTokenVerifier struct {
	ctx      context.Context
	verifier *oidc.IDTokenVerifier
}

func (tg *target) verifier(t *testing.T, realm string) accessTokenVerifier {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), tg.client(t))
	p, err := oidc.NewProvider(ctx, tg.hostname+"/realms/"+realm)
	if err != nil {
		t.Fatalf("go-oidc discovery of realm %s: %v", realm, err)
	}
	return accessTokenVerifier{ctx, p.Verifier(&oidc.Config{ClientID: persistClient})}
}

// check returns why raw is not an access token of the realm; which tells the layer that
// refused it: "go-oidc" or "typ".
func (v accessTokenVerifier) check(raw string) (which string, err error) {
	if _, err := v.verifier.Verify(v.ctx, raw); err != nil {
		return "go-oidc", err
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return "typ", err
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		return "typ", fmt.Errorf("JWS typ %q, want at+jwt", typ)
	}
	return "", nil
}

// authLines are the event log's auth_refused lines for the address ip.
func (tg *target) eventLines(t *testing.T, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	f, err := os.Open(tg.events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("event log line %q: %v", sc.Text(), err)
		}
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitEvents waits up to 5 s for at least one event log line that match takes.
func (tg *target) waitEvents(t *testing.T, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls := tg.eventLines(t, match)
		if len(ls) > 0 || time.Now().After(deadline) {
			return ls
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postAs posts a form to a realm's OpenID Connect endpoint from the address ip (through
// the trusted proxy's X-Forwarded-For), authenticated as client with secret.
func postAs(t *testing.T, c *apiClient, ip, realm, endpoint, client, secret string, form url.Values) *apiResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/realms/"+realm+"/protocol/openid-connect/"+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", ip)
	if client != "" {
		req.SetBasicAuth(client, secret)
	}
	r, err := c.do(req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// segment is one base64url segment of a JWT.
func segment(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// TestAttack runs issue 15's attack list against `sessiond start` on PostgreSQL. Subtests
// that need no server of their own share one; the slow ones run beside the rest.
func TestAttack(t *testing.T) {
	t.Parallel()
	tg := startTarget(t)
	// Whatever a subtest's client saw: the server answered no request with a 5xx but a
	// documented 503, and nothing panicked. (Cleanups run last first: this one before the
	// server stops, after every subtest.)
	t.Cleanup(func() {
		for _, line := range strings.Split(tg.d.log(), "\n") {
			if strings.Contains(line, "request failed") && !strings.Contains(line, "status=503") || strings.Contains(line, "panic") {
				t.Errorf("sessiond logged: %s", line)
			}
		}
	})

	// First and alone, so that the store's counters see the probes and nothing else.
	t.Run("ReadinessProbeFloodCostsFewStoreRoundTrips", func(t *testing.T) { readinessFlood(t, tg) })

	// The slow senders spend their time waiting for the server's read timeouts
	// (httpapi.ReadHeaderTimeout, 10 s, and ReadTimeout, 30 s) on one idle connection each.
	// As parallel subtests they would hold two of go test's -parallel slots (GOMAXPROCS, 2
	// on CI) idle for that long while every other test of the package waited for one; so
	// they run beside the rest as plain subtests in goroutines of their own, which hold no
	// slot (as TestPluginNewToARunningProvider's do), started here and waited for before
	// the server stops (cleanups run last first).
	var slow sync.WaitGroup
	t.Cleanup(slow.Wait)
	begun := make(chan struct{}, 2) // t.Run may not be called once the cleanups have begun
	for _, a := range []struct {
		name string
		body bool
	}{{"SlowHeadersCutOff", false}, {"SlowBodyIsCutOff", true}} {
		slow.Go(func() {
			t.Run(a.name, func(t *testing.T) {
				begun <- struct{}{}
				slowSender(t, tg, a.body)
			})
		})
	}
	<-begun
	<-begun

	for _, a := range []struct {
		name string
		run  func(*testing.T, *target)
	}{
		{"RefreshTokenAsAccessToken", func(t *testing.T, tg *target) { tokenAsAccessToken(t, tg, false) }},
		{"OfflineTokenAsAccessToken", func(t *testing.T, tg *target) { tokenAsAccessToken(t, tg, true) }},
		{"LogoutTokenAsAccessToken", logoutTokenAsAccessToken},
		{"ReadmeAccessTokenCheck", readmeAccessTokenCheck},
		{"ForgedTokens", forgedTokens},
		{"UnknownRealmClientAndOversizedBody", unknownAndOversized},
		{"NULAndInvalidUTF8Get400", nulAndInvalidUTF8},
		{"DuplicateAndWrongCaseJSONKeysGet400", duplicateAndWrongCaseKeys},
		{"LogoutWithRetiredRefreshTokenRefused", logoutWithRetiredToken},
		{"LogoutWithNotBeforeRevokedTokenRefused", logoutWithNotBeforeRevoked},
		{"ConcurrentRefreshesWithinGraceKeepLineage", concurrentRefreshes},
		{"WrongSecretFloodIsThrottledAndAuditedInBoundedLines", wrongSecretFlood},
		{"UnauthenticatedFloodAuditBounded", unauthenticatedFlood},
		{"LoginRequestFloodStopsWritingPendingLogins", loginRequestFlood},
		{"SigningKeyInDatabaseIsEncrypted", keysEncrypted},
		{"KeyWithoutKEKCannotSign", keyWithoutKEK},
		{"PluginEnvironmentHasNoSecrets", pluginEnvironment},
		{"PasswordInPostgresURLNotLogged", passwordNotLogged},
		{"PublicListenerShowsNoInternals", noInternals},
		{"StartRefuses", startRefusals},
	} {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			a.run(t, tg)
		})
	}
}

// db is a connection to the target's database, in its schema, closed when t ends.
func (tg *target) db(t *testing.T) *sql.DB {
	db, err := sql.Open("postgres", tg.secrets["SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// readinessFlood probes readiness as several load balancers gone wild would, 400 probes
// from 8 callers however long the machine takes for them, and counts the store's reads of
// the session table in PostgreSQL's own statistics: each uncached probe is one.
func readinessFlood(t *testing.T, tg *target) {
	db := tg.db(t)
	scans := func() int64 {
		var n int64
		err := db.QueryRow(`SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables
			WHERE schemaname = $1 AND relname = 'user_session'`, tg.schema).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Statistics reach the view within about a second of a statement.
	time.Sleep(1500 * time.Millisecond)
	before := scans()
	c := tg.client(t)
	const want = 400
	var probes, notUp int
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for range want / 8 {
				resp, err := c.Get(tg.mgmt + "/health/ready")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				probes++
				if resp.StatusCode != http.StatusOK {
					notUp++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if notUp > 0 || probes != want {
		t.Fatalf("%d probes in %s, %d not 200: the flood did not happen as meant", probes, took, notUp)
	}
	var reads int64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if reads = scans() - before; reads > 0 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(1500 * time.Millisecond) // the last statistics of the flood
	reads = scans() - before
	t.Logf("%d readiness probes in %s read the session table %d times", probes, took.Round(time.Millisecond), reads)
	if reads == 0 {
		t.Fatal("the session table's statistics did not move: the store was never asked, or the count does not work")
	}
	// About one read a second; the statistics count the other subtests' reads of the table
	// too, so the bound is a tenth of the probes: far above one a second, far below one each.
	if reads > int64(probes)/10 {
		t.Errorf("%d readiness probes in %s cost %d reads of the store, want about one a second", probes, took, reads)
	}
}

// tokenAsAccessToken presents a refresh (or offline) token to a resource server that
// verifies access tokens offline, before and after revoking it.
func tokenAsAccessToken(t *testing.T, tg *target, offline bool) {
	c, v := tg.api(t), tg.verifier(t, "attack")
	s := tg.open(t, c, "attack", "kinds", offline)
	// The control: the access token of the same answer passes, so the verifier works.
	if which, err := v.check(s.AccessToken); err != nil {
		t.Fatalf("the access token is refused (%s): %v", which, err)
	}
	refused := func(when string) {
		t.Helper()
		which, err := v.check(s.RefreshToken)
		if err == nil {
			t.Fatalf("%s: the refresh token (offline=%v) passes as an access token", when, offline)
		}
		// Refresh tokens are signed with the realm secret, never with a published key:
		// go-oidc itself refuses them, with no typ check needed.
		if which != "go-oidc" {
			t.Errorf("%s: go-oidc accepted the refresh token; only the typ check refused it (%v)", when, err)
		}
	}
	refused("issued")
	r, err := c.oidcIn("attack", "revoke", url.Values{"token": {s.RefreshToken}, "token_type_hint": {"refresh_token"}})
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("revoke: %v %s", err, r.summary())
	}
	if active, r, err := c.introspectIn("attack", s.RefreshToken); err != nil || active {
		t.Fatalf("introspection after revocation: active=%v %s %v", active, r.summary(), err)
	}
	refused("revoked")
}

// logoutTokenAsAccessToken: a back-channel logout token is signed with the published key
// and has iss, aud and exp; a verifier that checks typ (RFC 9068) refuses it.
func logoutTokenAsAccessToken(t *testing.T, tg *target) {
	c, v := tg.api(t), tg.verifier(t, "attack")
	s := tg.open(t, c, "attack", "logout-token", false)
	if r := tg.adminDo(t, c, http.MethodDelete, "attack/sessions/"+s.SessionID, ""); r.status != http.StatusNoContent {
		t.Fatalf("admin logout = %s, want 204", r.summary())
	}
	lt := tg.logouts.tokenFor(t, s.SessionID)
	which, err := v.check(lt)
	if err == nil {
		t.Fatal("the logout token passes as an access token")
	}
	if which != "typ" {
		t.Logf("go-oidc refused the logout token itself: %v", err)
	} else if !strings.Contains(err.Error(), `"logout+jwt"`) {
		t.Errorf("the logout token's typ: %v, want logout+jwt", err)
	}
	if active, r, err := c.introspectIn("attack", lt); err != nil || active {
		t.Errorf("introspection of the logout token: active=%v %s %v", active, r.summary(), err)
	}
}

// forgedTokens sends tokens an attacker can make, where a refresh token, an access token
// and a client's token go: each is refused with an OAuth error, never a 5xx.
func forgedTokens(t *testing.T, tg *target) {
	c := tg.api(t)
	own := tg.open(t, c, "attack", "forger", false)
	other := tg.open(t, c, "other", "forger", false)
	parts := strings.Split(own.RefreshToken, ".")
	var jwks jose.JSONWebKeySet
	resp, err := c.http.Get(tg.base + "/realms/attack/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) == 0 {
		t.Fatal("the realm publishes no key")
	}
	pub, err := x509.MarshalPKIXPublicKey(jwks.Keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	hs := func(alg jose.SignatureAlgorithm, secret []byte, kid string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: secret},
			(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := obj.CompactSerialize()
		return s
	}
	forged := map[string]string{
		"alg none":                        segment(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".",
		"HS256 with the public key":       hs(jose.HS256, pub, jwks.Keys[0].KeyID),
		"HS512 with the public key":       hs(jose.HS512, pub, jwks.Keys[0].KeyID),
		"token of another realm":          other.RefreshToken,
		"kid of another realm":            other.AccessToken,
		"access token as refresh token":   own.AccessToken,
		"payload changed, signature kept": parts[0] + "." + segment(map[string]any{"typ": "Refresh", "sid": "x", "exp": 1 << 40}) + "." + parts[2],
		"oversized":                       parts[0] + "." + strings.Repeat("A", 60<<10) + "." + parts[2],
		"garbage":                         "not a token at all",
		"three garbage segments":          "eyJ.eyJ.eyJ",
		"header not JSON":                 base64.RawURLEncoding.EncodeToString([]byte("{{{")) + "." + parts[1] + "." + parts[2],
		"empty":                           "",
		"truncated":                       own.RefreshToken[:len(own.RefreshToken)/2],
		"JWE-shaped (five segments)":      "a.b.c.d.e",
		"signature of the access token":   parts[0] + "." + parts[1] + "." + strings.Split(own.AccessToken, ".")[2],
		"a segment too many":              strings.Replace(own.RefreshToken, ".", "..", 1),
	}
	for _, name := range slices.Sorted(maps.Keys(forged)) {
		tok := forged[name]
		t.Run(name, func(t *testing.T) {
			r, err := c.refreshIn("attack", tok)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusBadRequest || (r.Error != "invalid_grant" && r.Error != "invalid_request") {
				t.Errorf("refresh = %s, want 400 invalid_grant or invalid_request", r.summary())
			}
			r, err = c.logoutIn("attack", tok)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusBadRequest || r.Error == "" {
				t.Errorf("logout = %s, want 400 with an OAuth error", r.summary())
			}
			if active, r, err := c.introspectIn("attack", tok); err != nil || active != (tok == own.AccessToken) {
				t.Errorf("introspection = active %v, %s, %v; want inactive (but for the access token)", active, r.summary(), err)
			}
			if tok == "" {
				return
			}
			// Where the front-end's and the administrator's credential go.
			for _, path := range []string{"/realms/attack/sessions", "/admin/realms/attack/sessions"} {
				method := http.MethodGet
				if !strings.HasPrefix(path, "/admin") {
					method = http.MethodPost
				}
				req, _ := http.NewRequest(method, c.base+path, strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", "198.51.100.1") // its own address: these count as failures
				r, err := c.do(req)
				if err != nil {
					t.Fatal(err)
				}
				if r.status != http.StatusUnauthorized && r.status != http.StatusTooManyRequests {
					t.Errorf("%s %s with the token as credential = %s, want 401", method, path, r.summary())
				}
			}
		})
	}
}

// unknownAndOversized: unknown realms and clients, and bodies past the limit.
func unknownAndOversized(t *testing.T, tg *target) {
	c := tg.api(t)
	ip := "198.51.100.2"
	for _, tc := range []struct {
		name          string
		realm, client string
		form          url.Values
		status        int
		err           string
	}{
		{"unknown realm", "nosuch", "app", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, http.StatusNotFound, ""},
		{"unknown client", "attack", "nosuch", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, http.StatusUnauthorized, "invalid_client"},
		{"no client", "attack", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, http.StatusUnauthorized, "invalid_client"},
		{"unknown grant", "attack", "app", url.Values{"grant_type": {"password"}}, http.StatusBadRequest, "unsupported_grant_type"},
		{"oversized form", "attack", "app", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {strings.Repeat("x", 100<<10)}}, http.StatusRequestEntityTooLarge, "invalid_request"},
	} {
		r := postAs(t, c, ip, tc.realm, "token", tc.client, "app-secret", tc.form)
		if r.status != tc.status || (tc.err != "" && r.Error != tc.err) {
			t.Errorf("%s: %s, want %d %s", tc.name, r.summary(), tc.status, tc.err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, c.base+"/realms/attack/sessions", strings.NewReader(`{"client_id":"app","user_id":"`+strings.Repeat("u", 100<<10)+`"}`))
	req.Header.Set("Authorization", "Bearer "+c.frontendToken())
	req.Header.Set("Content-Type", "application/json")
	if r, err := c.do(req); err != nil || r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized JSON body: %v %s, want 413", err, r.summary())
	}
	for _, body := range []map[string]any{
		{"client_id": "nosuch", "user_id": "u", "username": "u"},
		{"client_id": "app", "user_id": "u", "username": "u", "unknown_field": 1},
	} {
		if r, err := c.frontendIn("attack", "/sessions", body); err != nil || r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized {
			t.Errorf("open session %v: %v %s, want 400 or 401 invalid_client", body, err, r.summary())
		}
	}
	if r, err := c.frontendIn("nosuch", "/sessions", map[string]any{"client_id": "app", "user_id": "u", "username": "u"}); err != nil || r.status != http.StatusNotFound {
		t.Errorf("open session in an unknown realm: %v %s, want 404", err, r.summary())
	}
}

// nulAndInvalidUTF8 sends a NUL and invalid UTF-8 in a path, a query, a form and JSON, on
// PostgreSQL through the store plugin: 400, never a 500.
func nulAndInvalidUTF8(t *testing.T, tg *target) {
	c := tg.api(t)
	s := tg.open(t, c, "attack", "texts", false)
	send := func(t *testing.T, method, path, contentType, body string) *apiResult {
		t.Helper()
		req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(path, "/admin") {
			req.Header.Set("Authorization", "Bearer "+tg.secrets["SESSIOND_ADMIN_TOKEN"])
		} else if strings.Contains(path, "openid-connect") {
			req.SetBasicAuth(persistClient, persistSecret)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.frontendToken())
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		r, err := c.do(req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, bad := range []struct{ name, raw, escaped, json string }{
		{"NUL", "a\x00b", "a%00b", `a\u0000b`},
		{"invalid UTF-8", "a\xffb", "a%FFb", "a\xffb"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			for _, tc := range []struct{ name, method, path, ct, body string }{
				{"path (explain)", "GET", "/realms/attack/sessions/" + bad.escaped + "/explain", "", ""},
				{"path (admin session)", "DELETE", "/admin/realms/attack/sessions/" + bad.escaped, "", ""},
				{"path (admin user)", "GET", "/admin/realms/attack/users/" + bad.escaped + "/sessions", "", ""},
				{"path (realm)", "POST", "/realms/" + bad.escaped + "/protocol/openid-connect/token", "application/x-www-form-urlencoded", "grant_type=refresh_token"},
				{"query", "GET", "/admin/realms/attack/sessions?after=" + bad.escaped, "", ""},
				{"form (refresh token)", "POST", "/realms/attack/protocol/openid-connect/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=" + bad.escaped},
				{"form (introspect)", "POST", "/realms/attack/protocol/openid-connect/token/introspect", "application/x-www-form-urlencoded", "token=" + bad.escaped},
				{"form (scope)", "POST", "/realms/attack/protocol/openid-connect/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=" + url.QueryEscape(s.RefreshToken) + "&scope=" + bad.escaped},
				{"JSON (user id)", "POST", "/realms/attack/sessions", "application/json", `{"client_id":"app","user_id":"` + bad.json + `","username":"u"}`},
				{"JSON (username)", "POST", "/realms/attack/sessions", "application/json", `{"client_id":"app","user_id":"u","username":"` + bad.json + `"}`},
				{"JSON (note)", "POST", "/realms/attack/sessions", "application/json", `{"client_id":"app","user_id":"u","username":"u","ip_address":"` + bad.json + `"}`},
				{"JSON (attach)", "POST", "/realms/attack/sessions/" + s.SessionID + "/clients", "application/json", `{"client_id":"app","scope":"` + bad.json + `"}`},
			} {
				r := send(t, tc.method, tc.path, tc.ct, tc.body)
				if r.status != http.StatusBadRequest || r.Error != "invalid_request" {
					t.Errorf("%s: %s, want 400 invalid_request", tc.name, r.summary())
				}
			}
		})
	}
	// Nothing was written: the session is as it was, and refreshes.
	if r, err := c.refreshIn("attack", s.RefreshToken); err != nil || r.status != http.StatusOK {
		t.Errorf("the session after the bad requests: %v %s", err, r.summary())
	}
}

// duplicateAndWrongCaseKeys sends JSON bodies with a key given twice or in another case than
// the field's, which encoding/json would read as the last one or as the field: 400
// invalid_request naming the key, on PostgreSQL through the store plugin, and nothing
// written.
func duplicateAndWrongCaseKeys(t *testing.T, tg *target) {
	c := tg.api(t)
	s := tg.open(t, c, "attack", "dupkeys", false)
	for _, tc := range []struct{ name, path, body, desc string }{
		{"user_id twice", "/realms/attack/sessions", `{"client_id":"` + persistClient + `","user_id":"dupkeys-id","user_id":"dupkeys-other","username":"u"}`, "duplicate key user_id"},
		{"note twice", "/realms/attack/sessions", `{"client_id":"` + persistClient + `","user_id":"dupkeys-other","notes":{"k":"a","k":"b"}}`, "duplicate key notes.k"},
		{"USER_ID", "/realms/attack/sessions", `{"client_id":"` + persistClient + `","USER_ID":"dupkeys-other","username":"u"}`, "key USER_ID matches the field"},
		{"attach client_id twice", "/realms/attack/sessions/" + s.SessionID + "/clients", `{"client_id":"` + persistClient + `","client_id":"` + persistClient + `"}`, "duplicate key client_id"},
	} {
		req, err := http.NewRequest(http.MethodPost, c.base+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.frontendToken())
		req.Header.Set("Content-Type", "application/json")
		r, err := c.do(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusBadRequest || r.Error != "invalid_request" || !strings.Contains(r.body, tc.desc) {
			t.Errorf("%s: %s, want 400 invalid_request naming %q", tc.name, r.summary(), tc.desc)
		}
	}
	if r := tg.adminDo(t, c, http.MethodPut, "attack/not-before", `{"action":"clear","action":"now"}`); r.status != http.StatusBadRequest || !strings.Contains(r.body, "duplicate key action") {
		t.Errorf("not-before with action twice: %s, want 400 naming the key", r.summary())
	}
	// Nothing was written: no session for the other user, and the session refreshes (no
	// not-before policy revoked it).
	if r := tg.adminDo(t, c, http.MethodGet, "attack/users/dupkeys-other/sessions", ""); r.status != http.StatusOK || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("sessions of the user the refused bodies named: %s, want none", r.summary())
	}
	if r, err := c.refreshIn("attack", s.RefreshToken); err != nil || r.status != http.StatusOK {
		t.Errorf("the session after the refused bodies: %v %s", err, r.summary())
	}
}

// logoutWithRetiredToken: with rotation and no leeway, a refresh token retired by a refresh
// does not log the session out; the event log says so.
func logoutWithRetiredToken(t *testing.T, tg *target) {
	c := tg.api(t)
	s := tg.open(t, c, "attack", "retired", false)
	r, err := c.refreshIn("attack", s.RefreshToken)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("refresh: %v %s", err, r.summary())
	}
	lo, err := c.logoutIn("attack", s.RefreshToken)
	wantRefused(t, lo, err, "logout with the retired refresh token")
	if next, err := c.refreshIn("attack", r.RefreshToken); err != nil || next.status != http.StatusOK {
		t.Fatalf("the current refresh token after the refused logout: %v %s; the session must live on", err, next.summary())
	}
	ls := tg.waitEvents(t, func(l map[string]any) bool {
		return l["type"] == "logout_refused" && l["session_id"] == s.SessionID
	})
	if len(ls) != 1 || ls[0]["reason"] != "stale_token" && ls[0]["reason"] != "reuse" {
		t.Errorf("event log lines of the refused logout: %v, want one logout_refused with the reason", ls)
	}
}

// logoutWithNotBeforeRevoked: a refresh token issued before the realm's not-before policy
// does not log out.
func logoutWithNotBeforeRevoked(t *testing.T, tg *target) {
	c := tg.api(t)
	s := tg.open(t, c, "notbefore", "revoked", false)
	// A second ahead: tokens carry whole seconds, and this one must be before the policy.
	nb := fmt.Sprintf(`{"notBefore": %d}`, time.Now().Unix()+1)
	if r := tg.adminDo(t, c, http.MethodPut, "notbefore/not-before", nb); r.status != http.StatusOK {
		t.Fatalf("set the not-before policy: %s", r.summary())
	}
	lo, err := c.logoutIn("notbefore", s.RefreshToken)
	wantRefused(t, lo, err, "logout with a token the not-before policy revoked")
	ls := tg.waitEvents(t, func(l map[string]any) bool {
		return l["type"] == "logout_refused" && l["session_id"] == s.SessionID
	})
	if len(ls) != 1 || ls[0]["reason"] != "not_before" {
		t.Errorf("event log lines of the refused logout: %v, want one logout_refused with reason not_before", ls)
	}
}

// concurrentRefreshes: 32 refreshes of one token at once within the grace window all get
// tokens, and every token handed out refreshes again.
func concurrentRefreshes(t *testing.T, tg *target) {
	const n = 32
	c := tg.api(t)
	s := tg.open(t, c, "grace", "tabs", false)
	round := func(tokens []string) []string {
		out := make([]string, len(tokens))
		var wg sync.WaitGroup
		for i, tok := range tokens {
			wg.Go(func() {
				r, err := c.refreshIn("grace", tok)
				if err != nil || r.status != http.StatusOK || r.SessionState != s.SessionID {
					t.Errorf("refresh %d: %v %s", i, err, r.summary())
					return
				}
				out[i] = r.RefreshToken
			})
		}
		wg.Wait()
		return out
	}
	first := round(slices.Repeat([]string{s.RefreshToken}, n))
	if t.Failed() {
		t.FailNow()
	}
	round(first)
}

// wrongSecretFlood: one address sends wrong secrets for a client; past the limit it is
// answered 429 with Retry-After, even with the right secret, and the event log holds a
// few lines, not one a refusal.
func wrongSecretFlood(t *testing.T, tg *target) {
	const tries, limit = 120, 20 // auth-failure-limit's default
	c := tg.api(t)
	ip := "203.0.113.10"
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}
	var unauthorized, throttled int
	started := time.Now()
	for i := range tries {
		r := postAs(t, c, ip, "attack", "token", "victim", fmt.Sprintf("wrong-%d", i), form)
		switch {
		case r.status == http.StatusUnauthorized && r.Error == "invalid_client":
			unauthorized++
		case r.status == http.StatusTooManyRequests && r.retryAfter != "" && r.Error == "slow_down":
			throttled++
		default:
			t.Fatalf("wrong secret %d: %s (Retry-After %q), want 401 invalid_client or 429 slow_down with Retry-After", i, r.summary(), r.retryAfter)
		}
	}
	// The limit refills a failure's worth every window/limit (3 s) while the flood lasts.
	elapsed := time.Since(started)
	allowed := limit + int(elapsed/(3*time.Second)) + 1
	if unauthorized > allowed || throttled < tries-allowed {
		t.Errorf("%d wrong secrets in %v: %d answered 401, %d throttled; want at most %d answered, the rest throttled", tries, elapsed, unauthorized, throttled, allowed)
	}
	if r := postAs(t, c, ip, "attack", "token", "victim", "victim-secret", form); r.status != http.StatusTooManyRequests {
		t.Errorf("the right secret from the throttled address: %s, want 429 before any comparison", r.summary())
	}
	// Another address is not held up: the client's own servers keep working.
	if r := postAs(t, c, "203.0.113.11", "attack", "token", "victim", "victim-secret", form); r.status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("the right secret from another address: %s, want 400 invalid_grant (authenticated, bad token)", r.summary())
	}
	auditedInFewLines(t, tg, ip, tries+1, 2, time.Since(started)) // invalid_secret, throttled
}

// auditedInFewLines checks that the refusals from ip, of keys kinds and reasons, made over
// elapsed, are in the event log with the address, in a few lines whatever their number:
// the first of each key at once, its repeats summarized every 10 s.
func auditedInFewLines(t *testing.T, tg *target, ip string, refusals, keys int, elapsed time.Duration) {
	t.Helper()
	match := func(l map[string]any) bool { return l["type"] == "auth_refused" && l["ip"] == ip }
	ls := tg.waitEvents(t, match)
	if len(ls) == 0 {
		t.Fatalf("no auth_refused line for %s in the event log", ip)
	}
	time.Sleep(200 * time.Millisecond) // the queue's last lines
	ls = tg.eventLines(t, match)
	t.Logf("%d refusals from %s: %d event log lines", refusals, ip, len(ls))
	if most := keys * (2 + int(elapsed/(10*time.Second))); len(ls) > most {
		t.Errorf("%d refusals from %s in %v wrote %d event log lines, want at most %d", refusals, ip, elapsed, len(ls), most)
	}
}

// unauthenticatedFlood: requests with no or a wrong bearer credential to the front-end and
// admin APIs, from one address.
func unauthenticatedFlood(t *testing.T, tg *target) {
	const tries = 200
	c := tg.api(t)
	ip := "203.0.113.20"
	started := time.Now()
	for i := range tries {
		path, cred := "/realms/attack/sessions", ""
		method := http.MethodPost
		if i%2 == 1 {
			method, path, cred = http.MethodGet, "/admin/realms/attack/sessions", "Bearer wrong-"+fmt.Sprint(i)
		}
		req, _ := http.NewRequest(method, c.base+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		if cred != "" {
			req.Header.Set("Authorization", cred)
		}
		r, err := c.do(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusUnauthorized && (r.status != http.StatusTooManyRequests || r.retryAfter == "") {
			t.Fatalf("request %d (%s %s): %s, want 401 or 429 with Retry-After", i, method, path, r.summary())
		}
	}
	// Front-end missing_credentials and admin invalid_credential, each throttled too.
	auditedInFewLines(t, tg, ip, tries, 4, time.Since(started))
}

// loginRequestFlood sends valid authorization requests of a public client from one address,
// as a script would (no authentication needed, redirects not followed), and counts the
// pending logins in PostgreSQL: past login-request-limit (default 100 a minute) the address
// gets a 429 page and nothing more is written; another address still starts a login.
func loginRequestFlood(t *testing.T, tg *target) {
	const tries, limit = 300, 100 // login-request-limit's default
	db := tg.db(t)
	pending := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM record WHERE kind = 'login-request'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	c := tg.client(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	q := url.Values{"response_type": {"code"}, "client_id": {"browser"}, "redirect_uri": {"https://rp.invalid/cb"},
		"scope": {"openid"}, "code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}}
	start := func(ip string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, tg.base+"/realms/attack/protocol/openid-connect/auth?"+q.Encode(), nil)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type")
	}
	ip := "203.0.113.30"
	before := pending()
	started := time.Now()
	var found, throttled int
	for i := range tries {
		switch status, retry, ctype := start(ip); {
		case status == http.StatusFound:
			found++
		case status == http.StatusTooManyRequests && retry != "" && strings.HasPrefix(ctype, "text/html"):
			throttled++
		default:
			t.Fatalf("authorization request %d: %d (Retry-After %q, %s), want 302 to the front-end or a 429 page with Retry-After", i, status, retry, ctype)
		}
	}
	// The budget refills a login's worth every window/limit (0.6 s) while the flood lasts.
	elapsed := time.Since(started)
	allowed := limit + int(elapsed/(600*time.Millisecond)) + 1
	written := pending() - before
	t.Logf("%d authorization requests from one address in %v: %d started a login, %d throttled, %d pending logins written", tries, elapsed, found, throttled, written)
	if found > allowed || written > allowed || written != found {
		t.Errorf("%d requests from one address in %v: %d started, %d pending logins written; want at most %d, one each", tries, elapsed, found, written, allowed)
	}
	if status, _, _ := start("203.0.113.31"); status != http.StatusFound {
		t.Errorf("another address: %d, want 302 to the front-end", status)
	}
	auditedInFewLines(t, tg, ip, throttled, 1, time.Since(started)) // kind login, throttled
}

// slowSender opens a TLS connection and sends a request a byte a second: its header (the
// header read timeout cuts it) or, after a whole header, its body (the read timeout does).
func slowSender(t *testing.T, tg *target, body bool) {
	bound := httpapi.ReadHeaderTimeout
	if body {
		bound = httpapi.ReadTimeout
	}
	addr := strings.TrimPrefix(tg.base, "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tg.cert.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /realms/attack/protocol/openid-connect/token HTTP/1.1\r\nHost: localhost\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n"
	var slow string
	if body {
		if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
			t.Fatal(err)
		}
		slow = "grant_type=refresh_token&refresh_token=" + strings.Repeat("x", 1000)
	} else {
		slow = "X-Slow: " + strings.Repeat("y", 1000)
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now()
	closed := make(chan string, 1)
	go func() {
		// What the server sends before it closes, if anything.
		conn.SetReadDeadline(started.Add(bound + 15*time.Second))
		got, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			closed <- "timeout"
			return
		}
		closed <- string(got)
	}()
	for i := 0; ; i++ {
		select {
		case got := <-closed:
			took := time.Since(started)
			t.Logf("cut off after %v (bound %v); the server sent %q", took.Round(time.Millisecond), bound, firstLine(got))
			if got == "timeout" {
				t.Fatalf("the server still held the connection %v after the request began", took)
			}
			if took > bound+10*time.Second {
				t.Errorf("cut off after %v, want within about %v", took, bound)
			}
			if strings.HasPrefix(got, "HTTP/1.1 5") {
				t.Errorf("answered %q", firstLine(got))
			}
			if body && got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") && !strings.HasPrefix(got, "HTTP/1.1 408") {
				t.Errorf("a body cut off mid-way answered %q, want 400 or nothing", firstLine(got))
			}
			return
		case <-time.After(time.Second):
			if _, err := io.WriteString(conn, slow[i%len(slow):i%len(slow)+1]); err != nil {
				// The server closed its side; the reader says what it sent.
				continue
			}
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// keysEncrypted reads the realm keys record with SQL: sealed keys, no private key or
// secret in the clear.
func keysEncrypted(t *testing.T, tg *target) {
	c := tg.api(t)
	tg.open(t, c, "attack", "keys", false) // the realm's keys exist once it has signed
	db := tg.db(t)
	var value []byte
	if err := db.QueryRow(`SELECT value FROM record WHERE kind = 'realm-keys' AND record_key = 'attack'`).Scan(&value); err != nil {
		t.Fatalf("read the realm-keys record: %v", err)
	}
	var stored struct {
		Keys, Secrets []map[string]any
	}
	if err := json.Unmarshal(value, &stored); err != nil {
		t.Fatalf("realm-keys record %.200q: %v", value, err)
	}
	all := append(stored.Keys, stored.Secrets...)
	if len(stored.Keys) == 0 || len(stored.Secrets) == 0 {
		t.Fatalf("realm-keys record has %d keys and %d secrets, want both: %.300s", len(stored.Keys), len(stored.Secrets), value)
	}
	for _, k := range all {
		if k["pkcs8"] != nil || k["secret"] != nil || k["sealed"] == nil || k["kek"] == nil {
			t.Errorf("stored key %v (%v): want only sealed material with its kek", k["kid"], slices.Sorted(maps.Keys(k)))
		}
	}
	// Whatever the field names: no value of the record, decoded, is a private key.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			if der, err := base64.StdEncoding.DecodeString(v); err == nil {
				if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
					t.Errorf("the realm-keys record holds a PKCS #8 private key in the clear")
				}
			}
		}
	}
	var doc any
	json.Unmarshal(value, &doc)
	walk(doc)
}

// keyWithoutKEK starts a second sessiond on the same store with another key-encryption
// key, and one with none: both refuse to start, saying which key the realm's keys need.
func keyWithoutKEK(t *testing.T, tg *target) {
	c := tg.api(t)
	tg.open(t, c, "attack", "kek", false)
	env := func(kek string) []string {
		var out []string
		for _, kv := range tg.env {
			if !strings.HasPrefix(kv, "SESSIOND_KEY_ENCRYPTION_KEY=") {
				out = append(out, kv)
			}
		}
		if kek != "" {
			out = append(out, "SESSIOND_KEY_ENCRYPTION_KEY="+kek)
		}
		return out
	}
	args := func(profile string) []string {
		a := []string{profile}
		for _, arg := range tg.args {
			switch {
			case strings.HasPrefix(arg, "--https-port="):
				a = append(a, "--https-port=0")
			case strings.HasPrefix(arg, "--event-log-file="):
			default:
				a = append(a, arg)
			}
		}
		return a
	}
	for _, tc := range []struct {
		name    string
		env     []string
		profile string
		want    string
	}{
		{"another key", env(newKEK()), "start", `of realm "attack" is encrypted with key-encryption key`},
		{"no key (start-dev)", env(""), "start-dev", "none is configured: set key-encryption-key-file or key-encryption-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runBinary(t, tc.env, args(tc.profile)...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want a refusal saying %q:\n%s", code, tc.want, lastLines(out, 5))
			}
			if strings.Contains(out, "sessiond started") {
				t.Errorf("it started:\n%s", lastLines(out, 5))
			}
		})
	}
	// The running one still signs.
	tg.open(t, c, "attack", "kek-after", false)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// pluginEnvironment reads /proc/<pid>/environ of every plugin process: none of the
// credentials, the key-encryption key or the database password that sessiond was given.
func pluginEnvironment(t *testing.T, tg *target) {
	kids := pluginChildren(t, tg.d.cmd.Process.Pid)
	if len(kids) != 4 || kids["user-sessions/postgres"] == 0 {
		t.Fatalf("plugin processes %v, want 4 with the postgres store", kids)
	}
	if own := environOf(t, tg.d.cmd.Process.Pid); !strings.Contains(own, tg.secrets["SESSIOND_ADMIN_TOKEN"]) {
		t.Fatal("sessiond's own environment lacks its admin token: the test set nothing up")
	}
	for name, pid := range kids {
		env := environOf(t, pid)
		for k, v := range tg.secrets {
			if strings.Contains(env, k+"=") || strings.Contains(env, v) {
				t.Errorf("plugin %s (pid %d) has %s in its environment", name, pid, k)
			}
		}
	}
}

// passwordNotLogged: the database URL has a password in its user information and in its
// query; neither is in sessiond's log (debug level, plugins' lines included) or event log.
func passwordNotLogged(t *testing.T, tg *target) {
	log := tg.d.log()
	if !strings.Contains(log, "session store ready") {
		t.Fatalf("the store's start is not in the log, so nothing was checked:\n%s", lastLines(log, 20))
	}
	events, _ := os.ReadFile(tg.events)
	for _, k := range []string{"db-userinfo-password", "db-query-password"} {
		if strings.Contains(log, tg.secrets[k]) {
			t.Errorf("the log holds the %s", k)
		}
		if strings.Contains(string(events), tg.secrets[k]) {
			t.Errorf("the event log holds the %s", k)
		}
	}
}

// noInternals: the public listener answers 404 for health and metrics; the management one
// serves them.
func noInternals(t *testing.T, tg *target) {
	c := tg.client(t)
	for _, tc := range []struct {
		url  string
		want int
	}{
		{tg.base + "/health/ready", http.StatusNotFound},
		{tg.base + "/health", http.StatusNotFound},
		{tg.base + "/metrics", http.StatusNotFound},
		{tg.mgmt + "/health/live", http.StatusOK},
	} {
		resp, err := c.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.url, resp.StatusCode, tc.want)
		}
	}
	// Plain HTTP on the HTTPS port gets no API.
	resp, err := http.Get("http://" + strings.TrimPrefix(tg.base, "https://") + "/realms/attack/.well-known/openid-configuration")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("plain HTTP to the HTTPS port answered %d", resp.StatusCode)
		}
	}
}

// startRefusals runs `sessiond start` with one thing wrong at a time: it exits non-zero,
// before serving, saying what to set. The plugin cases are what an attacker who can write
// near a plugin would set up; swapping a symlink between the digest check and the exec
// takes hundreds of tries to be meaningful, so plugins/host's
// TestPluginSymlinkSwapCannotRunUnverifiedBinary races it instead.
func startRefusals(t *testing.T, tg *target) {
	dir := t.TempDir()
	strong := map[string]string{
		"SESSIOND_FRONTEND_TOKEN":                 strongSecret("frontend"),
		"SESSIOND_ADMIN_TOKEN":                    strongSecret("admin"),
		"SESSIOND_KEY_ENCRYPTION_KEY":             newKEK(),
		"SESSIOND_HOSTNAME":                       "https://sso.example.com",
		"SESSIOND_HTTPS_PORT":                     "0",
		"SESSIOND_HTTP_MANAGEMENT_PORT":           "0",
		"SESSIOND_HTTP_HOST":                      "127.0.0.1",
		"SESSIOND_HTTPS_CERTIFICATE_FILE":         tg.cert.CertFile,
		"SESSIOND_HTTPS_CERTIFICATE_KEY_FILE":     tg.cert.KeyFile,
		"SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL": tg.secrets["SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL"],
	}
	// A plugin binary: the built-in store's, copied, with its digest.
	plugins := filepath.Join(dir, "plugins")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{plugins, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := []byte("#!/bin/sh\nexit 0\n")
	sum := sha256.Sum256(script)
	digest := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(outside, "store"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "store"), filepath.Join(plugins, "linked")); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(dir, "writable")
	if err := os.Mkdir(writable, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(writable, "store"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "typo.conf")
	if err := os.WriteFile(conf, []byte("hostname=https://sso.example.com\nhtps-port=8443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := func(pluginDir, command string) map[string]string {
		return map[string]string{
			"SESSIOND_PLUGIN_DIR":                      pluginDir,
			"SESSIOND_SPI_USER_SESSIONS_PROVIDER":      "store",
			"SESSIOND_SPI_USER_SESSIONS_STORE_COMMAND": command,
			"SESSIOND_SPI_USER_SESSIONS_STORE_SHA256":  digest,
			"SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL":  "",
		}
	}
	cases := []struct {
		name string
		set  map[string]string // "" removes
		args []string
		want []string
	}{
		{"StartWithoutTLSRefuses", map[string]string{"SESSIOND_HTTPS_CERTIFICATE_FILE": "", "SESSIOND_HTTPS_CERTIFICATE_KEY_FILE": ""}, nil,
			[]string{"start needs TLS: set https-certificate-file and https-certificate-key-file, or http-enabled=true behind a TLS-terminating proxy"}},
		{"StartWithoutHostnameRefuses", map[string]string{"SESSIOND_HOSTNAME": ""}, nil,
			[]string{"start needs hostname"}},
		{"DevCredentialsRefused", map[string]string{"SESSIOND_FRONTEND_TOKEN": "fe-dev-token", "SESSIOND_ADMIN_TOKEN": "admin-dev-token"}, nil,
			[]string{`env SESSIOND_FRONTEND_TOKEN: SESSIOND_FRONTEND_TOKEN is the development credential "fe-dev-token"`, `env SESSIOND_ADMIN_TOKEN: SESSIOND_ADMIN_TOKEN is the development credential "admin-dev-token"`}},
		{"ShortCredentialRefused", map[string]string{"SESSIOND_ADMIN_TOKEN": "0123456789abcdef"}, nil,
			[]string{"env SESSIOND_ADMIN_TOKEN: SESSIOND_ADMIN_TOKEN has 16 characters: start needs at least 32"}},
		{"EqualCredentialsRefused", map[string]string{"SESSIOND_ADMIN_TOKEN": strong["SESSIOND_FRONTEND_TOKEN"]}, nil,
			[]string{"is the same as frontend-token"}},
		{"StartWithoutKEKRefuses", map[string]string{"SESSIOND_KEY_ENCRYPTION_KEY": ""}, nil,
			[]string{"start needs a key-encryption key", "key-encryption-key-file"}},
		{"ConfigTypoInFlagNamesIt", nil, []string{"--htps-port=8443"},
			[]string{"flag --htps-port: unknown option --htps-port; did you mean --https-port?"}},
		{"ConfigTypoInEnvironmentNamesIt", map[string]string{"SESSIOND_HTTPS_PROT": "8443"}, nil,
			[]string{"env SESSIOND_HTTPS_PROT: unknown option SESSIOND_HTTPS_PROT; did you mean SESSIOND_HTTPS_PORT?"}},
		{"ConfigTypoInFileNamesItsLine", nil, []string{"--config=" + conf},
			[]string{conf + ":2: unknown option htps-port; did you mean https-port?"}},
		{"WorldWritablePluginFolderRefused", store(writable, "store"), nil,
			[]string{writable, "writable by group or others"}},
		{"PluginSymlinkOutOfPluginFolderRefused", store(plugins, "linked"), nil,
			[]string{filepath.Join(plugins, "linked"), "outside the plugin folder " + plugins}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set := maps.Clone(strong)
			for k, v := range tc.set {
				if v == "" {
					delete(set, k)
				} else {
					set[k] = v
				}
			}
			env := withoutSessiondEnv()
			for k, v := range set {
				env = append(env, k+"="+v)
			}
			code, out := runBinary(t, env, append([]string{"start"}, tc.args...)...)
			if code == 0 || strings.Contains(out, "sessiond started") {
				t.Fatalf("start ran (exit %d):\n%s", code, lastLines(out, 10))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the refusal does not say %q:\n%s", w, lastLines(out, 10))
				}
			}
			for _, secret := range []string{strong["SESSIOND_FRONTEND_TOKEN"], strong["SESSIOND_ADMIN_TOKEN"], strong["SESSIOND_KEY_ENCRYPTION_KEY"]} {
				if strings.Contains(out, secret) {
					t.Errorf("the refusal shows a credential:\n%s", lastLines(out, 10))
				}
			}
		})
	}
}

// readmeCheckProgram wraps README.md's access token check (the %s) in a program that reads
// tokens a line each and prints "ok" or "refused: <why>" for each.
const readmeCheckProgram = `package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

func checkAccessToken(ctx context.Context, verifier *oidc.IDTokenVerifier, accessToken string) error {
%s
	return nil
}

func main() {
	pem, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx := oidc.ClientContext(context.Background(), client)
	provider, err := oidc.NewProvider(ctx, os.Args[1])
	if err != nil {
		panic(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: os.Args[3]})
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if err := checkAccessToken(ctx, verifier, sc.Text()); err != nil {
			fmt.Println("refused:", err)
		} else {
			fmt.Println("ok")
		}
	}
}
`

// readmeAccessTokenCheck compiles README.md's access token check for resource servers
// (go-oidc, then typ at+jwt) and runs it on an access, a refresh, an offline and a logout
// token of the target: it takes the first alone.
func readmeAccessTokenCheck(t *testing.T, tg *target) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "readme:access-token-check"
	m := regexp.MustCompile("(?s)<!-- " + marker + " -->\\s*```go\\n(.*?)```").FindSubmatch(raw)
	if m == nil {
		t.Fatalf("README.md has no ```go block after <!-- %s -->", marker)
	}
	c := tg.api(t)
	online := tg.open(t, c, "attack", "readme", false)
	offline := tg.open(t, c, "attack", "readme", true)
	if r := tg.adminDo(t, c, http.MethodDelete, "attack/sessions/"+online.SessionID, ""); r.status != http.StatusNoContent {
		t.Fatalf("admin logout = %s, want 204", r.summary())
	}
	logout := tg.logouts.tokenFor(t, online.SessionID)

	// The program is built from the module, as if it were in it (an overlay): no file is
	// written to the checkout.
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, fmt.Appendf(nil, readmeCheckProgram, m[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(root, "internal", "readmecheck", "main.go"): src}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "readmecheck")
	build := exec.Command("go", "build", "-overlay="+filepath.Join(dir, "overlay.json"), "-o", bin, "./internal/readmecheck")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("README.md's access token check does not compile: %v\n%s\n%s", err, out, m[1])
	}
	run := exec.Command(bin, tg.hostname+"/realms/attack", tg.cert.CertFile, persistClient)
	run.Stdin = strings.NewReader(strings.Join([]string{online.AccessToken, online.RefreshToken, offline.RefreshToken, logout}, "\n") + "\n")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the check program: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != 4 || got[0] != "ok" {
		t.Fatalf("README.md's check on an access, a refresh, an offline and a logout token:\n%s\nwant ok and three refusals", out)
	}
	for i, name := range []string{"refresh", "offline", "logout"} {
		if !strings.HasPrefix(got[i+1], "refused: ") {
			t.Errorf("README.md's check took the %s token: %s", name, got[i+1])
		}
	}
	if !strings.Contains(got[3], "at+jwt") {
		t.Errorf("the logout token was refused for another reason than its typ: %s", got[3])
	}
}

// decodeSegment is the i-th segment of a JWT, decoded, unverified.
func decodeSegment(t *testing.T, jwt string, i int) []byte {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) <= i {
		t.Fatalf("not a JWT: %.40q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("JWT segment %d: %v", i, err)
	}
	return raw
}
