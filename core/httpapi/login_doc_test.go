package httpapi

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/login"
)

// docs/login-flows.md documents every route of the login front-end API and every field of
// its requests and answers: a field or route added here and not there fails this test.
func TestLoginFrontEndDocs_everyRouteAndFieldDocumented(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "login-flows.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, v := range []any{login.LoginRequest{}, login.Accept{}, login.Reject{}, redirectBody{},
		openRequest{}, openResponse{}, attachRequest{}} {
		for _, name := range jsonFields(reflect.TypeOf(v)) {
			if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, `"`+name+`"`) {
				t.Errorf("%T field %q is not in docs/login-flows.md", v, name)
			}
		}
	}
	for _, route := range []string{"GET /realms/{realm}/login-requests/{challenge}", "PUT /realms/{realm}/login-requests/{challenge}/accept",
		"PUT /realms/{realm}/login-requests/{challenge}/reject", "POST /realms/{realm}/sessions",
		"POST /realms/{realm}/sessions/{id}/clients"} {
		if !strings.Contains(doc, route) {
			t.Errorf("route %s is not in docs/login-flows.md", route)
		}
	}
}
