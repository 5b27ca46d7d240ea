package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
)

const (
	benchRealm    = "quickstart" // docs/quickstart-realm.json: client shop, secret shop-secret
	frontendToken = "fe-bench-token"
	adminToken    = "admin-bench-token"
)

var client = &http.Client{Timeout: 10 * time.Second}

// process starts a server in dir with its output in dir/log.
func process(dir, bin string, env []string, args ...string) (*benchproc.Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return benchproc.Start(cmd, filepath.Join(dir, "log"), nil)
}

// waitFor polls url until it answers 200, for at most a minute.
func waitFor(ctx context.Context, p *benchproc.Process, url string) error {
	return p.WaitReady(ctx, url, time.Minute, benchproc.EveryInterval(100*time.Millisecond))
}

// call sends a request and decodes a JSON answer into out, failing unless the status is want.
func call(req *http.Request, want int, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", req.Method, req.URL, err, body)
		}
	}
	return nil
}

func newRequest(method, url string, body []byte, header ...string) *http.Request {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// startSessiond runs sessiond start-dev (its embedded store as a plugin process, as
// start-dev runs it) with the quick-start realm on port.
func startSessiond(ctx context.Context, name, bin, realmFile, dir string, port int) (*target, error) {
	p, err := process(dir, bin, nil, "start-dev", "--realm-file="+realmFile,
		"--frontend-token="+frontendToken, "--admin-token="+adminToken, fmt.Sprintf("--http-port=%d", port))
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitFor(ctx, p, base+"/health/ready"); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &target{name: name, url: base + "/realms/" + benchRealm + "/protocol/openid-connect/token/introspect",
		script: filepath.Join(dir, "introspect.lua"), stop: p.Stop}
	t.prime = func(ctx context.Context) error {
		// A fresh session and access token for each measurement: they live 5 minutes.
		var opened struct {
			AccessToken string `json:"access_token"`
		}
		body := []byte(`{"client_id":"shop","user_id":"bench-user","username":"bench","ip_address":"127.0.0.1"}`)
		if err := call(newRequest("POST", base+"/realms/"+benchRealm+"/sessions", body,
			"Authorization", "Bearer "+frontendToken, "Content-Type", "application/json"), http.StatusCreated, &opened); err != nil {
			return fmt.Errorf("open a session: %w", err)
		}
		form := []byte("token=" + opened.AccessToken)
		var got struct {
			Active bool `json:"active"`
		}
		if err := call(newRequest("POST", t.url, form, "Authorization", basicShop, "Content-Type", "application/x-www-form-urlencoded"), http.StatusOK, &got); err != nil || !got.Active {
			return fmt.Errorf("introspection of a fresh access token: active=%v, %v", got.Active, err)
		}
		return writeScript(t.script, "POST", string(form), "Authorization", basicShop, "Content-Type", "application/x-www-form-urlencoded")
	}
	return t, nil
}

// basicShop is client_secret_basic for the quick-start realm's client.
const basicShop = "Basic c2hvcDpzaG9wLXNlY3JldA==" // shop:shop-secret

const kratosSchema = `{
  "$id": "https://example.com/bench.schema.json",
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Person",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {
          "type": "string",
          "format": "email",
          "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}
        }
      },
      "required": ["email"],
      "additionalProperties": false
    }
  }
}
`

// kratosConfig is a minimal Kratos configuration: SQLite, password login, logs at error
// only (a log line per request would cost Kratos, not sessiond), whoami satisfied by the
// first factor (no lookup of the identity's other credentials).
const kratosConfig = `dsn: %[1]s
serve:
  public:
    base_url: http://127.0.0.1:%[2]d/
    host: 127.0.0.1
    port: %[2]d
  admin:
    base_url: http://127.0.0.1:%[3]d/
    host: 127.0.0.1
    port: %[3]d
selfservice:
  default_browser_return_url: http://127.0.0.1:%[2]d/
  methods:
    password:
      enabled: true
      config:
        haveibeenpwned_enabled: false
  flows:
    login:
      ui_url: http://127.0.0.1:%[2]d/login
    error:
      ui_url: http://127.0.0.1:%[2]d/error
session:
  whoami:
    required_aal: aal1
log:
  level: error
secrets:
  cookie:
    - bench-cookie-secret-not-for-production
  cipher:
    - 32-LONG-SECRET-NOT-SECURE-AT-ALL
hashers:
  algorithm: bcrypt
  bcrypt:
    cost: 4
identity:
  default_schema_id: default
  schemas:
    - id: default
      url: file://%[4]s
courier:
  smtp:
    connection_uri: smtp://127.0.0.1:1/?disable_starttls=true
`

// startKratos migrates a SQLite database, serves Kratos on the two ports, creates an
// identity with a password through the admin API and logs it in through the native
// (API) login flow, whose answer carries a session token.
func startKratos(ctx context.Context, bin, dir string, public, admin int) (*target, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dsn := "sqlite://" + filepath.Join(dir, "kratos.sqlite") + "?_fk=true&mode=rwc"
	schema := filepath.Join(dir, "identity.schema.json")
	conf := filepath.Join(dir, "kratos.yml")
	if err := errors.Join(os.WriteFile(schema, []byte(kratosSchema), 0o644),
		os.WriteFile(conf, fmt.Appendf(nil, kratosConfig, dsn, public, admin, schema), 0o644)); err != nil {
		return nil, err
	}
	env := []string{"DSN=" + dsn, "SQA_OPT_OUT=true"}
	migrate := exec.CommandContext(ctx, bin, "migrate", "sql", "-e", "--yes")
	migrate.Env = append(os.Environ(), env...)
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kratos migrate sql: %w\n%s", err, out)
	}
	p, err := process(dir, bin, env, "serve", "-c", conf, "--dev", "--sqa-opt-out")
	if err != nil {
		return nil, err
	}
	stop := p.Stop
	fail := func(err error) (*target, error) { stop(); return nil, fmt.Errorf("kratos: %w", err) }
	pub, adm := fmt.Sprintf("http://127.0.0.1:%d", public), fmt.Sprintf("http://127.0.0.1:%d", admin)
	if err := waitFor(ctx, p, adm+"/health/ready"); err != nil {
		return fail(err)
	}
	const email, password = "bench@example.com", "a bench password that is long enough"
	identity := fmt.Appendf(nil, `{"schema_id":"default","traits":{"email":%q},"credentials":{"password":{"config":{"password":%q}}}}`, email, password)
	if err := call(newRequest("POST", adm+"/admin/identities", identity, "Content-Type", "application/json"), http.StatusCreated, nil); err != nil {
		return fail(fmt.Errorf("create an identity: %w", err))
	}
	var flow struct {
		ID string `json:"id"`
	}
	if err := call(newRequest("GET", pub+"/self-service/login/api", nil, "Accept", "application/json"), http.StatusOK, &flow); err != nil {
		return fail(fmt.Errorf("start a login flow: %w", err))
	}
	var login struct {
		SessionToken string `json:"session_token"`
	}
	creds := fmt.Appendf(nil, `{"method":"password","identifier":%q,"password":%q}`, email, password)
	if err := call(newRequest("POST", pub+"/self-service/login?flow="+flow.ID, creds, "Content-Type", "application/json", "Accept", "application/json"), http.StatusOK, &login); err != nil || login.SessionToken == "" {
		return fail(fmt.Errorf("log in: %v (session token %q)", err, login.SessionToken))
	}
	t := &target{name: "kratos whoami", url: pub + "/sessions/whoami", script: filepath.Join(dir, "whoami.lua"), stop: stop}
	t.prime = func(ctx context.Context) error {
		var got struct {
			Active bool `json:"active"`
		}
		if err := call(newRequest("GET", t.url, nil, "X-Session-Token", login.SessionToken, "Accept", "application/json"), http.StatusOK, &got); err != nil || !got.Active {
			return fmt.Errorf("whoami: active=%v, %v", got.Active, err)
		}
		return writeScript(t.script, "GET", "", "X-Session-Token", login.SessionToken, "Accept", "application/json")
	}
	return t, nil
}

// writeScript writes a wrk script that sends one fixed request.
func writeScript(path, method, body string, header ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "wrk.method = %q\n", method)
	if body != "" {
		fmt.Fprintf(&b, "wrk.body = %q\n", body)
	}
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "wrk.headers[%q] = %q\n", header[i], header[i+1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
