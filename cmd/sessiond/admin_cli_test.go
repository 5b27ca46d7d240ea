package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// These tests run `sessiond admin` in-process against a stand-in for the admin API, for
// what the client decides on its own: options, tables, output.

// fakeAdminAPI answers the admin routes the tests need; requests counts what reached it.
type fakeAdminAPI struct {
	*httptest.Server
	requests atomic.Int64
}

func newFakeAdminAPI(t *testing.T, routes map[string]http.HandlerFunc) *fakeAdminAPI {
	t.Helper()
	f := &fakeAdminAPI{}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func runAdmin(f *fakeAdminAPI, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = adminMain(append(args, "--url="+f.URL, "--realm=demo"), &out, &errOut, []string{"SESSIOND_ADMIN_TOKEN=t"})
	return code, out.String(), errOut.String()
}

func jsonAnswer(w http.ResponseWriter, v string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, v)
}

func TestAdminRefusesBadOptionsBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	f := newFakeAdminAPI(t, map[string]http.HandlerFunc{
		"/": func(w http.ResponseWriter, r *http.Request) { jsonAnswer(w, "[]") },
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stats", "--timeout=0s"}, "--timeout"},
		{[]string{"stats", "--timeout=-5s"}, "--timeout"},
		{[]string{"sessions", "--max=0"}, "--max 0: want 1 to 1000"},
		{[]string{"sessions", "--max=1001"}, "--max 1001: want 1 to 1000"},
		{[]string{"sessions", "--client=app", "--max=-1"}, "--max -1"},
		{[]string{"deliveries", "--max=5000"}, "--max 5000"},
		{[]string{"deliveries", "--state=done"}, `--state "done": want pending, failed, delivered`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			before := f.requests.Load()
			code, out, errOut := runAdmin(f, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want exit 2 (usage) and %q", code, errOut, out, tc.want)
			}
			if n := f.requests.Load() - before; n != 0 {
				t.Errorf("%d requests reached the server, want none", n)
			}
		})
	}
	// The valid edges pass.
	for _, args := range [][]string{{"sessions", "--max=1"}, {"deliveries", "--max=1000", "--state=failed"}, {"stats", "--timeout=1s"}} {
		if code, out, errOut := runAdmin(f, args...); code != 0 {
			t.Errorf("%v: exit %d: %s%s", args, code, errOut, out)
		}
	}
	if !strings.Contains(adminUsage, "--max N") {
		t.Errorf("the usage text does not document --max:\n%s", adminUsage)
	}
}

// columnStarts is where each of the header's column names starts.
func columnStarts(header string, names ...string) []int {
	var at []int
	for _, n := range names {
		at = append(at, strings.Index(header, n))
	}
	return at
}

// wantAligned checks that every row of a table starts its cells where the header starts
// its columns: a cell starts after two spaces of padding or more.
func wantAligned(t *testing.T, out string, rows int, names ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != rows+2 {
		t.Fatalf("%d lines, want a header, %d rows and a total:\n%s", len(lines), rows, out)
	}
	starts := columnStarts(lines[0], names...)
	for _, row := range lines[1 : rows+1] {
		for i, at := range starts[1:] {
			if at > len(row) || row[at-1] != ' ' || row[at] == ' ' {
				t.Errorf("column %s does not start at %d in row %q:\n%s", names[i+1], at, row, out)
				break
			}
		}
	}
}

func TestAdminTablesKeepTheirColumnsAcrossPages(t *testing.T) {
	t.Parallel()
	f := newFakeAdminAPI(t, map[string]http.HandlerFunc{
		"GET /admin/realms/demo/sessions": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("after") == "" {
				w.Header().Set("Link", `</admin/realms/demo/sessions?after=s2&max=2>; rel="next"`)
				jsonAnswer(w, `[{"id":"s1","userId":"u1","username":"a","start":1,"lastAccess":1,"clients":{"app":"app"}},
					{"id":"s2","userId":"u2","username":"b","start":1,"lastAccess":1,"clients":{"app":"app"}}]`)
				return
			}
			jsonAnswer(w, `[{"id":"a-much-longer-session-id","userId":"a-much-longer-user-id","username":"carol-the-long","ipAddress":"203.0.113.200","start":1,"lastAccess":1,"clients":{"app":"app"}}]`)
		},
		"GET /admin/realms/demo/push-deliveries": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("after") == "" {
				w.Header().Set("Link", `</admin/realms/demo/push-deliveries?after=d1&max=1>; rel="next"`)
				jsonAnswer(w, `[{"id":"d1","clientId":"app","kind":"LOGOUT","target":"http://a/","state":"delivered","attempts":1}]`)
				return
			}
			jsonAnswer(w, `[{"id":"d2-with-a-long-id","clientId":"a-client-with-a-long-id","kind":"PUSH_NOT_BEFORE","target":"http://portal.example.com/admin","state":"failed","attempts":12,"lastError":"refused"}]`)
		},
	})
	code, out, errOut := runAdmin(f, "sessions", "--max=2")
	if code != 0 {
		t.Fatalf("sessions: exit %d: %s", code, errOut)
	}
	wantAligned(t, out, 3, "SESSION", "USER ID", "USERNAME", "IP ADDRESS", "STARTED", "LAST ACCESS", "REMEMBER ME", "CLIENTS")
	if !strings.HasSuffix(out, "\n3 sessions\n") {
		t.Errorf("no total line:\n%s", out)
	}

	code, out, errOut = runAdmin(f, "deliveries", "--max=1")
	if code != 0 {
		t.Fatalf("deliveries: exit %d: %s", code, errOut)
	}
	wantAligned(t, out, 2, "ID", "CLIENT", "KIND", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "TARGET", "LAST ERROR")
	if !strings.HasSuffix(out, "\n2 deliveries\n") {
		t.Errorf("no total line:\n%s", out)
	}
}

func TestAdminRevokeJSONPushPrintsBothAnswers(t *testing.T) {
	t.Parallel()
	failed := atomic.Bool{}
	f := newFakeAdminAPI(t, map[string]http.HandlerFunc{
		"PUT /admin/realms/demo/not-before": func(w http.ResponseWriter, r *http.Request) {
			jsonAnswer(w, `{"notBefore":1735689600}`)
		},
		"POST /admin/realms/demo/push-revocation": func(w http.ResponseWriter, r *http.Request) {
			if failed.Load() {
				jsonAnswer(w, `{"successRequests":[],"failedRequests":["http://portal/admin"]}`)
				return
			}
			jsonAnswer(w, `{"successRequests":["http://portal/admin"],"failedRequests":[]}`)
		},
	})
	code, out, errOut := runAdmin(f, "revoke", "--now", "--push", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Set  struct{ NotBefore int64 }
		Push struct{ SuccessRequests, FailedRequests []string }
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("output is not one JSON object (%v):\n%s", err, out)
	}
	if got.Set.NotBefore != 1735689600 || len(got.Push.SuccessRequests) != 1 {
		t.Errorf("got %+v, want the PUT's notBefore and the push's result:\n%s", got, out)
	}

	failed.Store(true)
	code, out, errOut = runAdmin(f, "revoke", "--now", "--push", "--json")
	if code != 1 {
		t.Errorf("exit %d with a failed client, want 1", code)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Push.FailedRequests) != 1 {
		t.Errorf("output with a failed client: %v:\n%s", err, out)
	}
	_ = errOut
}

// A push that did not reach a client says where to look, without promising a retry: a
// client that refused is not retried.
func TestAdminPushFailureSaysWhereToLook(t *testing.T) {
	t.Parallel()
	f := newFakeAdminAPI(t, map[string]http.HandlerFunc{
		"POST /admin/realms/demo/logout-all": func(w http.ResponseWriter, r *http.Request) {
			jsonAnswer(w, `{"successRequests":[],"failedRequests":["http://portal/admin"]}`)
		},
	})
	code, out, errOut := runAdmin(f, "logout-all")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stdout %q)", code, out)
	}
	for _, want := range []string{"did not reach 1 client(s)", "--state pending", "--state failed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
	if strings.Contains(errOut, "it is retried") {
		t.Errorf("stderr promises a retry: %s", errOut)
	}
}

// Issue 19, point 8: a mistyped command gets a suggestion, for sessiond and sessiond admin.
func TestPoint8_mistypedCommandsGetDidYouMean(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := adminMain([]string{"sesions", "--realm=demo"}, &out, &errOut, nil); code != 2 || !strings.Contains(errOut.String(), `unknown command "sesions"; did you mean "sessions"?`) {
		t.Errorf("admin sesions: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"strat"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "strat"; did you mean "start"?`) {
		t.Errorf("strat: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := adminMain([]string{"frobnicate"}, &out, &errOut, nil); code != 2 || strings.Contains(errOut.String(), "did you mean") {
		t.Errorf("admin frobnicate: exit %d, stderr %q; want no suggestion", code, errOut.String())
	}
}
