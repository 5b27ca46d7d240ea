package httpapi

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// docs/action-tokens.md documents every field of every action-token request and answer:
// a field added here and not there fails this test.
func TestActionTokenDocs_everyFieldDocumented(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "action-tokens.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, v := range []any{userActionRequest{}, adminActionRequest{}, mintedBody{}, consumedBody{}} {
		for _, name := range jsonFields(reflect.TypeOf(v)) {
			if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, `"`+name+`"`) {
				t.Errorf("%T field %q is not in docs/action-tokens.md", v, name)
			}
		}
	}
	for _, route := range []string{"POST /realms/{realm}/action-tokens", "/realms/{realm}/action-tokens/consume",
		"/admin/realms/{realm}/users/{id}/action-tokens", "/admin/realms/{realm}/users/{id}/execute-actions-email"} {
		if !strings.Contains(doc, route) {
			t.Errorf("route %s is not in docs/action-tokens.md", route)
		}
	}
}

// jsonFields are the JSON names of a struct's fields, embedded structs' included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
