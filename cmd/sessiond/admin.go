package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The `sessiond admin` commands call a running sessiond's admin API (/admin/realms/…), for
// operators who live in a terminal.

const adminUsage = `Usage: sessiond admin <command> --realm <realm> [options]

Commands:
  sessions    list sessions: a user's (--user: a user id, or a username, which is looked
              up in the realm's sessions), a client's (--client), or the realm's;
              --offline for offline sessions (with --user, give --client too);
              --max N: sessions per request, 1 to 1000 (default 100)
  logout      end one session (--session ID [--offline]) or a user's online sessions
              (--user: a user id or a username, as for sessions)
  logout-all  sign out every online session of the realm (offline sessions are kept)
  revoke      set the not-before policy of the realm or of a --client: --now, --at <RFC 3339
              time> or --clear; --push sends it to the clients' admin URLs
  deliveries  list revocation-push deliveries (--state pending|failed|delivered);
              --max N: deliveries per request, 1 to 1000 (default 100)
  stats       sessions per client: active and offline
  limits      the realm's session limits and the live counts held against them; --user
              (an id or a username, as for sessions) adds that user's counts
  keys        the realm's keys: active and passive, with the dates they verify until
  keys rotate give the realm new active keys; the old ones verify until their tokens expire
  action-token
              mint an admin-initiated action token for --user and --action (verify-email,
              reset-credentials, execute-actions, idp-verify-account-via-email or a custom
              one); --lifespan (default: the realm's Default Admin-Initiated Action
              Lifespan), --client, --redirect-uri, --email, --required-actions A,B;
              prints the token, which sessiond does not email (docs/action-tokens.md)

Options of every command:
  --url       sessiond's base URL (default ` + defaultAdminURL + `, start-dev's address)
  --token     the admin credential (default: $SESSIOND_ADMIN_TOKEN; prefer the variable,
              a flag shows in the process list)
  --json      print the API's JSON instead of a table
  --timeout   how long one request may take, more than 0 (default 30s)
  --cacert    PEM file of the CA (or the self-signed certificate) to trust for an https
              --url, besides the system's
  --insecure-skip-verify
              do not verify an https --url's certificate (anyone on the way can then
              read the credential); for a first test only

The credential is never sent in clear: an http:// --url must be a loopback address
(127.0.0.1, ::1, localhost); anything else needs https://.
`

const defaultAdminURL = "http://127.0.0.1:8080"

// adminMain runs `sessiond admin args…` and returns the exit code: 0, 1 when the server
// refused or could not be reached, 2 for a usage error.
func adminMain(args []string, stdout, stderr io.Writer, environ []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, adminUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	// A command of two words ("keys rotate") is looked up whole, before its flags.
	if len(args) > 1 {
		if _, ok := adminCommands[args[0]+" "+args[1]]; ok {
			args = append([]string{args[0] + " " + args[1]}, args[2:]...)
		}
	}
	cmd, ok := adminCommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sessiond admin: unknown command %q%s\n\n%s", args[0], didYouMean(args[0], slices.Collect(maps.Keys(adminCommands))), adminUsage)
		return 2
	}
	a := &adminRun{stdout: stdout, flags: flag.NewFlagSet("sessiond admin "+args[0], flag.ContinueOnError)}
	a.flags.SetOutput(stderr)
	a.flags.StringVar(&a.url, "url", defaultAdminURL, "sessiond's base URL")
	a.flags.StringVar(&a.token, "token", "", "the admin credential (default $SESSIOND_ADMIN_TOKEN)")
	a.flags.StringVar(&a.realm, "realm", "", "the realm")
	a.flags.BoolVar(&a.json, "json", false, "print JSON")
	a.flags.DurationVar(&a.timeout, "timeout", 30*time.Second, "how long one request may take")
	a.flags.StringVar(&a.cacert, "cacert", "", "PEM file of the CA to trust for an https --url")
	a.flags.BoolVar(&a.insecure, "insecure-skip-verify", false, "do not verify an https --url's certificate")
	run := cmd(a)
	if err := a.flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := a.check(environ); err != nil {
		fmt.Fprintf(stderr, "sessiond admin %s: %v\n", args[0], err)
		return 2
	}
	if err := run(context.Background()); err != nil {
		var usage usageError
		fmt.Fprintf(stderr, "sessiond admin %s: %v\n", args[0], err)
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a wrong combination of flags.
type usageError string

func (e usageError) Error() string { return string(e) }

// adminRun is one admin command: its flags and the API client they make.
type adminRun struct {
	flags    *flag.FlagSet
	stdout   io.Writer
	url      string
	token    string
	realm    string
	json     bool
	timeout  time.Duration
	cacert   string
	insecure bool
	http     *http.Client
}

func (a *adminRun) check(environ []string) error {
	if a.flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (every option is a --flag)", a.flags.Args())
	}
	if a.realm == "" {
		return errors.New("--realm is required")
	}
	if a.token == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "SESSIOND_ADMIN_TOKEN="); ok {
				a.token = v
			}
		}
	}
	if a.token == "" {
		return errors.New("no admin credential: set SESSIOND_ADMIN_TOKEN (or give --token) to sessiond's admin-token")
	}
	u, err := url.Parse(a.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want sessiond's base URL, e.g. %s", a.url, defaultAdminURL)
	}
	if a.timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a duration above 0, e.g. 30s", a.timeout)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return fmt.Errorf("--url %s: the admin credential would cross the network in clear; use https://%s (with --cacert for a self-signed certificate), or http:// to a loopback address only",
			a.url, u.Host)
	}
	a.url = strings.TrimSuffix(a.url, "/")
	tlsConfig, err := a.tlsConfig(u.Scheme)
	if err != nil {
		return err
	}
	// No Client.Timeout: call bounds each request, its answer's body included, with
	// --timeout.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	a.http = &http.Client{Transport: transport}
	return nil
}

// loopback reports whether host is this machine's loopback: localhost or a loopback IP.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// tlsConfig is the client TLS configuration of --cacert and --insecure-skip-verify.
func (a *adminRun) tlsConfig(scheme string) (*tls.Config, error) {
	if scheme != "https" && (a.cacert != "" || a.insecure) {
		return nil, fmt.Errorf("--cacert and --insecure-skip-verify are for an https:// --url; --url is %s", a.url)
	}
	if a.cacert != "" && a.insecure {
		return nil, errors.New("--cacert and --insecure-skip-verify together: --cacert verifies, --insecure-skip-verify does not; keep one")
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: a.insecure} //nolint:gosec // the operator asked, by the flag's name
	if a.cacert != "" {
		pem, err := os.ReadFile(a.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", a.cacert)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// pageSizeFlag declares --max, the items per request of a listing.
func (a *adminRun) pageSizeFlag(items string) *int {
	return a.flags.Int("max", 100, fmt.Sprintf("%s per request (1 to %d)", items, admin.MaxResults))
}

// checkPageSize refuses a --max the API would refuse, before any request.
func checkPageSize(n int) error {
	if n < 1 || n > admin.MaxResults {
		return usageError(fmt.Sprintf("--max %d: want 1 to %d", n, admin.MaxResults))
	}
	return nil
}

// deliveryStates are the values of deliveries --state.
var deliveryStates = []string{string(usersessions.Pending), string(usersessions.Failed), string(usersessions.Delivered)}

// adminCommands builds each command: it declares the command's own flags on a and returns
// what runs once they are parsed.
var adminCommands = map[string]func(a *adminRun) func(ctx context.Context) error{
	"sessions":     (*adminRun).sessions,
	"logout":       (*adminRun).logout,
	"logout-all":   (*adminRun).logoutAll,
	"keys":         adminKeys(http.MethodGet, "/keys"),
	"keys rotate":  adminKeys(http.MethodPost, "/keys/rotate"),
	"action-token": (*adminRun).actionToken,
	"revoke":       (*adminRun).revoke,
	"deliveries":   (*adminRun).deliveries,
	"stats":        (*adminRun).stats,
	"limits":       (*adminRun).limits,
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *apiError) Error() string {
	why := e.Description
	if why == "" {
		why = e.Code
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return "the server refused the credential (401): check SESSIOND_ADMIN_TOKEN or --token against sessiond's admin-token"
	case http.StatusForbidden:
		return "this credential may not do that (403): " + why
	case http.StatusNotFound:
		return "not found (404): " + why
	case http.StatusNotImplemented:
		return "this sessiond cannot do that (501): " + why
	}
	return fmt.Sprintf("the server answered %d: %s", e.Status, why)
}

// call makes one request to the admin API of the realm: path is under
// /admin/realms/{realm}, or, when it starts with /admin/, a whole path with its query (a
// Link header's). It decodes a JSON answer into out (when not nil) and returns the
// answer's headers and body.
func (a *adminRun) call(ctx context.Context, method, path string, body, out any) (http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if !strings.HasPrefix(path, "/admin/") {
		path = "/admin/realms/" + url.PathEscape(a.realm) + path
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("cannot reach sessiond at %s: connection refused (is it running? is --url right?)", a.url)
		}
		return nil, nil, fmt.Errorf("cannot reach sessiond at %s: %w", a.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		if e.Code == "" && e.Description == "" {
			e.Description = strings.TrimSpace(string(raw))
		}
		return nil, nil, e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, nil, fmt.Errorf("the answer of %s %s is not what was expected: %w", method, path, err)
		}
	}
	return resp.Header, raw, nil
}

// pages follows a listing's Link rel="next" headers from path, handing each page's raw
// JSON array to fn.
func (a *adminRun) pages(ctx context.Context, path string, fn func(raw json.RawMessage) error) error {
	for path != "" {
		h, raw, err := a.call(ctx, http.MethodGet, path, nil, nil)
		if err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
		path = nextLink(h.Get("Link"))
	}
	return nil
}

// nextLink is the target of a Link header's rel="next", "" when there is none.
func nextLink(h string) string {
	for _, l := range strings.Split(h, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(l), ";")
		if ok && strings.Contains(params, `rel="next"`) {
			return strings.Trim(strings.TrimSpace(target), "<>")
		}
	}
	return ""
}

// userID resolves --user, a user id or a username, to the user id the API's paths take.
// sessiond keeps no user directory: a value with sessions under that id is an id;
// otherwise the realm's sessions (online and offline) are read for that username, which on
// a large realm takes a while (give the id there). A username of several users is refused
// with their ids; one that matches nothing is returned as it is (the listing is empty, a
// logout answers that the user has no sessions).
func (a *adminRun) userID(ctx context.Context, user string) (string, error) {
	var own []admin.SessionRep
	if _, _, err := a.call(ctx, http.MethodGet, "/users/"+url.PathEscape(user)+"/sessions", nil, &own); err != nil {
		return "", err
	}
	if len(own) > 0 {
		return user, nil
	}
	ids := map[string]bool{}
	for _, offline := range []bool{false, true} {
		path := "/sessions?max=" + strconv.Itoa(admin.MaxResults) + "&offline=" + strconv.FormatBool(offline)
		err := a.pages(ctx, path, func(raw json.RawMessage) error {
			var reps []admin.SessionRep
			if err := json.Unmarshal(raw, &reps); err != nil {
				return fmt.Errorf("the answer is not a list of sessions: %w", err)
			}
			for _, r := range reps {
				if r.Username == user {
					ids[r.UserID] = true
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	switch sorted := slices.Sorted(maps.Keys(ids)); len(sorted) {
	case 0:
		return user, nil
	case 1:
		fmt.Fprintf(a.flags.Output(), "user %q has no sessions under that id; username %q is user id %s\n", user, user, sorted[0])
		return sorted[0], nil
	default:
		return "", fmt.Errorf("username %q has sessions of %d users (ids %s); give --user with one id", user, len(sorted), strings.Join(sorted, ", "))
	}
}

// clientUUID resolves a clientId to the internal id the API's paths take.
func (a *adminRun) clientUUID(ctx context.Context, clientID string) (string, error) {
	var cs []struct {
		ID       string `json:"id"`
		ClientID string `json:"clientId"`
	}
	if _, _, err := a.call(ctx, http.MethodGet, "/clients?clientId="+url.QueryEscape(clientID), nil, &cs); err != nil {
		return "", err
	}
	for _, c := range cs {
		if c.ClientID == clientID {
			return c.ID, nil
		}
	}
	return "", fmt.Errorf("no client %q in realm %q", clientID, a.realm)
}

// jsonList prints the items of successive pages as one JSON array.
type jsonList struct {
	w io.Writer
	n int
}

func (l *jsonList) add(raw json.RawMessage) error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("the answer is not a JSON array: %w", err)
	}
	for _, it := range items {
		sep := ",\n"
		if l.n == 0 {
			sep = "[\n"
		}
		if _, err := fmt.Fprintf(l.w, "%s  %s", sep, it); err != nil {
			return err
		}
		l.n++
	}
	return nil
}

func (l *jsonList) close() error {
	if l.n == 0 {
		_, err := fmt.Fprintln(l.w, "[]")
		return err
	}
	_, err := fmt.Fprintln(l.w, "\n]")
	return err
}

func millis(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func (a *adminRun) sessions() func(context.Context) error {
	user := a.flags.String("user", "", "a user's sessions")
	client := a.flags.String("client", "", "a client's sessions (its clientId)")
	offline := a.flags.Bool("offline", false, "offline sessions")
	pageSize := a.pageSizeFlag("sessions")
	return func(ctx context.Context) error {
		if err := checkPageSize(*pageSize); err != nil {
			return err
		}
		if *user != "" && !(*client != "" && !*offline) {
			id, err := a.userID(ctx, *user)
			if err != nil {
				return err
			}
			*user = id
		}
		var path string
		switch {
		case *user != "" && *offline && *client == "":
			return usageError("--user with --offline needs --client: offline sessions are listed per client")
		case *user != "" && *offline:
			id, err := a.clientUUID(ctx, *client)
			if err != nil {
				return err
			}
			path = "/users/" + url.PathEscape(*user) + "/offline-sessions/" + url.PathEscape(id)
		case *user != "" && *client != "":
			return usageError("give --user or --client, not both (except with --offline)")
		case *user != "":
			path = "/users/" + url.PathEscape(*user) + "/sessions"
		case *client != "":
			id, err := a.clientUUID(ctx, *client)
			if err != nil {
				return err
			}
			kind := "/user-sessions"
			if *offline {
				kind = "/offline-sessions"
			}
			path = "/clients/" + url.PathEscape(id) + kind + "?max=" + strconv.Itoa(*pageSize)
		default:
			path = "/sessions?max=" + strconv.Itoa(*pageSize) + "&offline=" + strconv.FormatBool(*offline)
		}
		if a.json {
			l := &jsonList{w: a.stdout}
			if err := a.pages(ctx, path, l.add); err != nil {
				return err
			}
			return l.close()
		}
		// One table over every page, printed once all are in: flushing page by page would
		// size each page's columns on its own rows. --json prints as the pages come.
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION\tUSER ID\tUSERNAME\tIP ADDRESS\tSTARTED\tLAST ACCESS\tREMEMBER ME\tCLIENTS")
		n := 0
		err := a.pages(ctx, path, func(raw json.RawMessage) error {
			var reps []admin.SessionRep
			if err := json.Unmarshal(raw, &reps); err != nil {
				return fmt.Errorf("the answer is not a list of sessions: %w", err)
			}
			for _, s := range reps {
				clients := make([]string, 0, len(s.Clients))
				for _, c := range s.Clients {
					clients = append(clients, c)
				}
				slices.Sort(clients)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", s.ID, s.UserID, orDash(s.Username), orDash(s.IPAddress),
					millis(s.Start), millis(s.LastAccess), s.RememberMe, strings.Join(clients, ","))
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		return a.endTable(tw, n, "sessions")
	}
}

func (a *adminRun) logout() func(context.Context) error {
	session := a.flags.String("session", "", "the session to end")
	offline := a.flags.Bool("offline", false, "the session is an offline one")
	user := a.flags.String("user", "", "end every online session of this user")
	return func(ctx context.Context) error {
		switch {
		case (*session == "") == (*user == ""):
			return usageError("give either --session ID or --user USER")
		case *user != "" && *offline:
			return usageError("--offline goes with --session: a user's logout ends online sessions; revoke offline ones per client")
		case *session != "":
			path := "/sessions/" + url.PathEscape(*session)
			if *offline {
				path += "?isOffline=true"
			}
			if _, _, err := a.call(ctx, http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			return a.done(map[string]any{"loggedOut": "session", "id": *session, "offline": *offline},
				"ended %s session %s", kindWord(*offline), *session)
		}
		id, err := a.userID(ctx, *user)
		if err != nil {
			return err
		}
		*user = id
		if _, _, err := a.call(ctx, http.MethodPost, "/users/"+url.PathEscape(*user)+"/logout", nil, nil); err != nil {
			return err
		}
		return a.done(map[string]any{"loggedOut": "user", "id": *user},
			"ended every online session of user %s (offline sessions are kept)", *user)
	}
}

func kindWord(offline bool) string {
	if offline {
		return "offline"
	}
	return "online"
}

// done prints the outcome of an action that answers no body.
func (a *adminRun) done(v any, format string, args ...any) error {
	if a.json {
		return json.NewEncoder(a.stdout).Encode(v)
	}
	_, err := fmt.Fprintf(a.stdout, format+"\n", args...)
	return err
}

// globalResult is the API's answer to a push: which client URLs took it.
type globalResult struct {
	SuccessRequests []string `json:"successRequests"`
	FailedRequests  []string `json:"failedRequests"`
}

func parseResult(raw []byte) (globalResult, error) {
	var res globalResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, fmt.Errorf("the answer is not a push result: %w", err)
	}
	return res, nil
}

// printResult prints a push's outcome; failed URLs make it an error, after printing.
func (a *adminRun) printResult(raw []byte, what string) error {
	res, err := parseResult(raw)
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", bytes.TrimSpace(raw))
	} else {
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT URL\tRESULT")
		for _, u := range res.SuccessRequests {
			fmt.Fprintf(tw, "%s\tok\n", u)
		}
		for _, u := range res.FailedRequests {
			fmt.Fprintf(tw, "%s\tfailed\n", u)
		}
		tw.Flush()
	}
	return a.pushFailures(res, what)
}

// pushFailures is the error of a push that did not reach every client. A delivery that
// failed for a reason worth retrying stays pending in the outbox; one the client refused,
// or out of attempts, is failed and not retried.
func (a *adminRun) pushFailures(res globalResult, what string) error {
	if n := len(res.FailedRequests); n > 0 {
		return fmt.Errorf("%s did not reach %d client(s); see which and why with `sessiond admin deliveries --realm %s --state pending` (being retried) and `--state failed` (given up: refused or out of attempts)",
			what, n, a.realm)
	}
	return nil
}

func (a *adminRun) logoutAll() func(context.Context) error {
	return func(ctx context.Context) error {
		_, raw, err := a.call(ctx, http.MethodPost, "/logout-all", nil, nil)
		if err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.stdout, "signed out every online session of realm %s (offline sessions are kept)\n", a.realm)
		}
		return a.printResult(raw, "the logout notice")
	}
}

func (a *adminRun) revoke() func(context.Context) error {
	client := a.flags.String("client", "", "the client's own policy (its clientId) instead of the realm's")
	now := a.flags.Bool("now", false, "set the policy to the current time")
	at := a.flags.String("at", "", "set the policy to this time (RFC 3339, e.g. 2025-01-31T12:00:00Z)")
	clearIt := a.flags.Bool("clear", false, "remove the policy")
	push := a.flags.Bool("push", false, "then send it to the clients' admin URLs")
	return func(ctx context.Context) error {
		var body map[string]any
		chosen := 0
		if *now {
			chosen, body = chosen+1, map[string]any{"action": "now"}
		}
		if *clearIt {
			chosen, body = chosen+1, map[string]any{"action": "clear"}
		}
		if *at != "" {
			t, err := time.Parse(time.RFC3339, *at)
			if err != nil {
				return usageError(fmt.Sprintf("--at %q: want an RFC 3339 time, e.g. 2025-01-31T12:00:00Z", *at))
			}
			if t.Unix() <= 0 {
				return usageError(fmt.Sprintf("--at %q: want a time after 1970", *at))
			}
			chosen, body = chosen+1, map[string]any{"notBefore": t.Unix()}
		}
		if chosen != 1 {
			return usageError("give exactly one of --now, --at TIME and --clear")
		}
		base, what := "", "realm "+a.realm
		if *client != "" {
			id, err := a.clientUUID(ctx, *client)
			if err != nil {
				return err
			}
			base, what = "/clients/"+url.PathEscape(id), "client "+*client
		}
		var set struct {
			NotBefore int64 `json:"notBefore"`
		}
		_, setRaw, err := a.call(ctx, http.MethodPut, base+"/not-before", body, &set)
		if err != nil {
			return err
		}
		switch {
		case a.json && !*push:
			fmt.Fprintf(a.stdout, "%s\n", bytes.TrimSpace(setRaw))
		case a.json: // printed with the push's answer, below
		case set.NotBefore == 0:
			fmt.Fprintf(a.stdout, "not-before of %s cleared\n", what)
		default:
			fmt.Fprintf(a.stdout, "not-before of %s set to %s: tokens issued before it no longer work\n",
				what, time.Unix(set.NotBefore, 0).UTC().Format(time.RFC3339))
		}
		if !*push {
			return nil
		}
		_, pushRaw, err := a.call(ctx, http.MethodPost, base+"/push-revocation", nil, nil)
		if err != nil {
			if a.json {
				a.printJSON(revokeJSON{Set: json.RawMessage(bytes.TrimSpace(setRaw))})
			}
			return fmt.Errorf("the policy is set, but the push failed: %w", err)
		}
		if !a.json {
			return a.printResult(pushRaw, "the not-before push")
		}
		res, err := parseResult(pushRaw)
		if err != nil {
			return err
		}
		if err := a.printJSON(revokeJSON{Set: json.RawMessage(bytes.TrimSpace(setRaw)), Push: json.RawMessage(bytes.TrimSpace(pushRaw))}); err != nil {
			return err
		}
		return a.pushFailures(res, "the not-before push")
	}
}

// revokeJSON is what revoke --json --push prints: the answers of the PUT and of the push,
// as the API gave them (push is absent when the push failed).
type revokeJSON struct {
	Set  json.RawMessage `json:"set"`
	Push json.RawMessage `json:"push,omitempty"`
}

// printRaw prints the API's JSON answer as it came, on one line.
func (a *adminRun) printRaw(raw []byte) error {
	_, err := fmt.Fprintf(a.stdout, "%s\n", bytes.TrimSpace(raw))
	return err
}

func (a *adminRun) printJSON(v any) error {
	return json.NewEncoder(a.stdout).Encode(v)
}

func (a *adminRun) deliveries() func(context.Context) error {
	state := a.flags.String("state", "", "pending, failed or delivered (default: all)")
	pageSize := a.pageSizeFlag("deliveries")
	return func(ctx context.Context) error {
		if err := checkPageSize(*pageSize); err != nil {
			return err
		}
		if *state != "" && !slices.Contains(deliveryStates, *state) {
			return usageError(fmt.Sprintf("--state %q: want %s", *state, strings.Join(deliveryStates, ", ")))
		}
		q := url.Values{"max": {strconv.Itoa(*pageSize)}}
		if *state != "" {
			q.Set("state", *state)
		}
		path := "/push-deliveries?" + q.Encode()
		if a.json {
			l := &jsonList{w: a.stdout}
			if err := a.pages(ctx, path, l.add); err != nil {
				return err
			}
			return l.close()
		}
		// One table over every page, as for sessions.
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCLIENT\tKIND\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tTARGET\tLAST ERROR")
		n := 0
		err := a.pages(ctx, path, func(raw json.RawMessage) error {
			var ds []struct {
				ID          string `json:"id"`
				ClientID    string `json:"clientId"`
				Kind        string `json:"kind"`
				Target      string `json:"target"`
				State       string `json:"state"`
				Attempts    int    `json:"attempts"`
				NextAttempt int64  `json:"nextAttempt"`
				LastError   string `json:"lastError"`
			}
			if err := json.Unmarshal(raw, &ds); err != nil {
				return fmt.Errorf("the answer is not a list of deliveries: %w", err)
			}
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.ClientID, d.Kind, d.State, d.Attempts,
					millis(d.NextAttempt), d.Target, orDash(d.LastError))
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		return a.endTable(tw, n, "deliveries")
	}
}

func (a *adminRun) stats() func(context.Context) error {
	return func(ctx context.Context) error {
		var stats []struct {
			ID       string `json:"id"`
			ClientID string `json:"clientId"`
			Active   string `json:"active"`
			Offline  string `json:"offline"`
		}
		_, raw, err := a.call(ctx, http.MethodGet, "/client-session-stats", nil, &stats)
		if err != nil {
			return err
		}
		if a.json {
			return a.printRaw(raw)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT\tID\tACTIVE\tOFFLINE")
		for _, s := range stats {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ClientID, s.ID, s.Active, s.Offline)
		}
		return tw.Flush()
	}
}

// limits prints the realm's session limits, then the counts held against them.
func (a *adminRun) limits() func(context.Context) error {
	user := a.flags.String("user", "", "also a user's counts (a user id or a username)")
	return func(ctx context.Context) error {
		path := "/session-limits"
		if *user != "" {
			id, err := a.userID(ctx, *user)
			if err != nil {
				return err
			}
			path += "?userId=" + url.QueryEscape(id)
		}
		var rep admin.LimitsRep
		_, raw, err := a.call(ctx, http.MethodGet, path, nil, &rep)
		if err != nil {
			return err
		}
		if a.json {
			return a.printRaw(raw)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LIMIT	MAX	BEHAVIOR")
		for _, name := range []string{sessionlimit.UserRealm, sessionlimit.UserClient, sessionlimit.Client, sessionlimit.Realm} {
			l := rep.Limits[name]
			max := strconv.Itoa(l.Max)
			if l.Max == 0 {
				max = "none"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", name, max, l.Behavior)
		}
		fmt.Fprintf(tw, "\ncount offline sessions: %t; message: %s\n\nSCOPE\tONLINE\tOFFLINE\n", rep.CountOffline, rep.ErrorMessage)
		fmt.Fprintf(tw, "realm\t%d\t%d\n", rep.Realm.Online, rep.Realm.Offline)
		for _, c := range rep.Clients {
			fmt.Fprintf(tw, "client %s\t%d\t%d\n", c.ClientID, c.Online, c.Offline)
		}
		if u := rep.User; u != nil {
			fmt.Fprintf(tw, "user %s\t%d\t%d\n", u.UserID, u.Online, u.Offline)
			for _, c := range u.Clients {
				fmt.Fprintf(tw, "user %s on %s\t%d\t%d\n", u.UserID, c.ClientID, c.Online, c.Offline)
			}
		}
		return tw.Flush()
	}
}

// endTable prints a table's rows, once every page is in (so that its columns line up),
// and their count.
func (a *adminRun) endTable(tw *tabwriter.Writer, n int, noun string) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "%d %s\n", n, noun)
	return err
}

// keys lists the realm's keys, or rotates them and lists the result.
func adminKeys(method, path string) func(a *adminRun) func(context.Context) error {
	return func(a *adminRun) func(context.Context) error {
		return func(ctx context.Context) error {
			var rep admin.KeysRep
			_, raw, err := a.call(ctx, method, path, nil, &rep)
			if err != nil {
				return err
			}
			if a.json {
				return a.printRaw(raw)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tALGORITHM\tTYPE\tSTATUS\tCREATED\tVERIFIES UNTIL")
			for _, k := range rep.Keys {
				until := "-"
				if k.VerifiesUntil != nil {
					until = k.VerifiesUntil.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.Type, k.Status, k.Created.UTC().Format(time.RFC3339), until)
			}
			return a.endTable(tw, len(rep.Keys), "keys")
		}
	}
}

// actionToken mints an admin-initiated action token and prints it, then what it is for and
// until when.
func (a *adminRun) actionToken() func(context.Context) error {
	user := a.flags.String("user", "", "the user id the token is for (required)")
	action := a.flags.String("action", "", "the action: verify-email, reset-credentials, execute-actions, idp-verify-account-via-email or a custom one (required)")
	lifespan := a.flags.Duration("lifespan", 0, "how long the token lives, whole seconds up to 720h (default: the realm's Default Admin-Initiated Action Lifespan)")
	client := a.flags.String("client", "", "the clientId the action is for")
	redirect := a.flags.String("redirect-uri", "", "where the user goes once done (one of --client's redirect URIs)")
	email := a.flags.String("email", "", "the email address the action is about")
	required := a.flags.String("required-actions", "", "comma-separated required actions, e.g. UPDATE_PASSWORD,VERIFY_EMAIL")
	return func(ctx context.Context) error {
		switch {
		case *user == "" || *action == "":
			return usageError("--user and --action are required")
		case *lifespan < 0 || *lifespan%time.Second != 0:
			return usageError(fmt.Sprintf("--lifespan %s: want whole seconds, more than 0", *lifespan))
		}
		body := map[string]any{"action": *action}
		for name, v := range map[string]string{"client_id": *client, "redirect_uri": *redirect, "email": *email} {
			if v != "" {
				body[name] = v
			}
		}
		if *lifespan > 0 {
			body["lifespan"] = int64(*lifespan / time.Second)
		}
		if *required != "" {
			body["required_actions"] = strings.Split(*required, ",")
		}
		var m struct {
			Token          string `json:"token"`
			Action         string `json:"action"`
			ExpiresAt      int64  `json:"expires_at"`
			ExpiresIn      int64  `json:"expires_in"`
			LifespanSource string `json:"lifespan_source"`
		}
		_, raw, err := a.call(ctx, http.MethodPost, "/users/"+url.PathEscape(*user)+"/action-tokens", body, &m)
		if err != nil {
			return err
		}
		if a.json {
			return a.printRaw(raw)
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n%s token for user %s, expires %s (lifespan %s, %s); sessiond sends no email: deliver it yourself\n",
			m.Token, m.Action, *user, time.Unix(m.ExpiresAt, 0).UTC().Format(time.RFC3339), time.Duration(m.ExpiresIn)*time.Second, m.LifespanSource)
		return err
	}
}
