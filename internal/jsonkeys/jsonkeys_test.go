package jsonkeys

import (
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name  string            `json:"name"`
	Notes map[string]string `json:"notes"`
}

type embedded struct {
	Promoted string `json:"promoted"`
}

type outer struct {
	UserID  string           `json:"user_id"`
	Untaggd string           // matched by its Go name
	Skipped string           `json:"-"`
	Inner   inner            `json:"inner"`
	Ptr     *inner           `json:"ptr"`
	List    []inner          `json:"list"`
	Map     map[string]inner `json:"map"`
	Raw     json.RawMessage  `json:"raw"`
	Any     any              `json:"any"`
	When    time.Time        `json:"when"`
	embedded
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		v          any
		path, key  string
		field      string // "" with path set: a duplicate
	}{
		{name: "accepted", body: `{"user_id":"u","Untaggd":"x","inner":{"name":"n","notes":{"a":"1","A":"2"}},"ptr":{"name":"p"},"list":[{"name":"a"},{"name":"b"}],"map":{"k":{"name":"v"},"K":{"name":"w"}},"raw":{"X":1,"x":2},"any":{"A":1,"a":2},"when":"2026-01-01T00:00:00Z","promoted":"p"}`, v: &outer{}},
		{name: "accepted scalar", body: `"x"`, v: new(string)},
		{name: "accepted empty", body: `{}`, v: &outer{}},
		{name: "same key in sibling objects", body: `{"list":[{"name":"a"},{"name":"a"}]}`, v: &outer{}},
		{name: "duplicate top-level", body: `{"user_id":"a","user_id":"b"}`, v: &outer{}, path: "user_id", key: "user_id"},
		{name: "duplicate nested", body: `{"inner":{"name":"a","name":"b"}}`, v: &outer{}, path: "inner.name", key: "name"},
		{name: "duplicate in array element", body: `{"list":[{"name":"a"},{"name":"a","name":"b"}]}`, v: &outer{}, path: "list[1].name", key: "name"},
		{name: "duplicate map key", body: `{"inner":{"notes":{"a":"1","a":"2"}}}`, v: &outer{}, path: "inner.notes.a", key: "a"},
		{name: "duplicate in raw message", body: `{"raw":{"x":1,"x":2}}`, v: &outer{}, path: "raw.x", key: "x"},
		{name: "duplicate in interface", body: `{"any":[{"x":1,"x":2}]}`, v: &outer{}, path: "any[0].x", key: "x"},
		{name: "duplicate with nil target", body: `[{"a":{"b":[1,{"c":1,"c":1}]}}]`, v: nil, path: `[0].a.b[1].c`, key: "c"},
		{name: "duplicate odd key", body: `{"map":{"a.b":{},"a.b":{}}}`, v: &outer{}, path: `map["a.b"]`, key: "a.b"},
		{name: "duplicate by escape", body: `{"user_id":"a","user\u005fid":"b"}`, v: &outer{}, path: "user_id", key: "user_id"},
		{name: "wrong case top-level", body: `{"USER_ID":"a"}`, v: &outer{}, path: "USER_ID", key: "USER_ID", field: "user_id"},
		{name: "wrong case after exact", body: `{"user_id":"a","User_Id":"b"}`, v: &outer{}, path: "User_Id", key: "User_Id", field: "user_id"},
		{name: "wrong case nested", body: `{"ptr":{"Name":"a"}}`, v: &outer{}, path: "ptr.Name", key: "Name", field: "name"},
		{name: "wrong case in array element", body: `{"list":[{"name":"a"},{"NAME":"a"}]}`, v: &outer{}, path: "list[1].NAME", key: "NAME", field: "name"},
		{name: "wrong case under map", body: `{"map":{"k":{"nAme":"v"}}}`, v: &outer{}, path: "map.k.nAme", key: "nAme", field: "name"},
		{name: "wrong case untagged", body: `{"untaggd":"x"}`, v: &outer{}, path: "untaggd", key: "untaggd", field: "Untaggd"},
		{name: "wrong case promoted", body: `{"Promoted":"x"}`, v: &outer{}, path: "Promoted", key: "Promoted", field: "promoted"},
		{name: "wrong case long s", body: `{"promoted":"x","inner":{"name":"n"},"uſer_id":"x"}`, v: &outer{}, path: `["uſer_id"]`, key: "uſer_id", field: "user_id"},
		{name: "wrong case slice root", body: `[{"name":"a"},{"Name":"b"}]`, v: &[]inner{}, path: "[1].Name", key: "Name", field: "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.body), tc.v)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("Check = %v, want a *Error", err)
			}
			if ke.Path != tc.path || ke.Key != tc.key || ke.Field != tc.field {
				t.Fatalf("Check = %+v, want path %q key %q field %q", ke, tc.path, tc.key, tc.field)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("message %q does not name %q", err, tc.path)
			}
			// The offset is the key's opening quote.
			if ke.Offset < 0 || ke.Offset >= int64(len(tc.body)) || !strings.HasPrefix(tc.body[ke.Offset:], `"`) {
				t.Fatalf("offset %d is not the start of a key of %s", ke.Offset, tc.body)
			}

		})
	}
}

// TestCheckEncodingJSONAgrees pins the premise: encoding/json takes each refused body
// (so the check is what refuses it), and a wrong-case key fills the field.
func TestCheckEncodingJSONAgrees(t *testing.T) {
	var v outer
	if err := json.Unmarshal([]byte(`{"USER_ID":"a","uſer_id":"b","user_id":"c","user_id":"d"}`), &v); err != nil || v.UserID != "d" {
		t.Fatalf("encoding/json: %v, user_id %q", err, v.UserID)
	}
	var s struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(`{"to\u212aen":"kelvin"}`), &s); err != nil || s.Token != "kelvin" {
		t.Fatalf("encoding/json with the Kelvin sign: %v, %q", err, s.Token)
	}
	if err := Check([]byte(`{"to\u212aen":"kelvin"}`), &s); err == nil {
		t.Fatal("Check took the Kelvin sign for k")
	}
}

// TestCheckDeep: nesting as deep as encoding/json takes (10000 levels), many times over,
// costs a slice, not the goroutine stack, and time linear in the size; deeper is refused
// as encoding/json refuses it.
func TestCheckDeep(t *testing.T) {
	const depth = 9999
	for _, tc := range []struct {
		name        string
		open, close string
		target      any
	}{
		{"arrays", "[", "]", nil},
		{"objects", `{"a":`, "}", nil},
		{"objects into any", `{"a":`, "}", new(any)},
		{"arrays into a struct", "[", "]", &outer{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nested := func(depth int, inner string) string {
				return strings.Repeat(tc.open, depth) + inner + strings.Repeat(tc.close, depth)
			}
			// n nests of depth d side by side in an array.
			copies := func(n, d int) []byte {
				return []byte("[" + strings.Repeat(nested(d, "1")+",", n-1) + nested(d, "1") + "]")
			}
			// Bytes allocated, not time: deterministic on a loaded machine, and what a walk
			// that builds a path per key or copies its stack per level (the quadratic
			// mistakes) grows with.
			bytes := func(body []byte) uint64 {
				return allocated(t, func() {
					if err := Check(body, tc.target); err != nil {
						t.Fatalf("Check: %v", err)
					}
				})
			}
			shallowBody, deepBody, wideBody := copies(16, depth/8), copies(2, depth), copies(16, depth)
			shallow, deep, wide := bytes(shallowBody), bytes(deepBody), bytes(wideBody)
			t.Logf("16 nests of %d: %d B; 2 of %d: %d B; 16 of %d: %d B (bodies %d, %d, %d B)", depth/8, shallow, depth, deep, depth, wide, len(shallowBody), len(deepBody), len(wideBody))
			// Linear: a bounded multiple of the body (the stack of frames, one set of keys
			// per object). A path built per key is about depth² bytes: at 9999 levels some
			// 100 MB against this bound's 5-16 MB.
			for _, c := range []struct {
				body []byte
				n    uint64
			}{{shallowBody, shallow}, {deepBody, deep}, {wideBody, wide}} {
				if c.n > 128*uint64(len(c.body))+1<<20 {
					t.Fatalf("a body of %d B allocated %d B: not linear", len(c.body), c.n)
				}
			}
			// 8 times the size: linear allocates about 8 times as much, quadratic 64 times.
			if wide > 16*deep+64<<10 {
				t.Fatalf("8x the size allocated %d B against %d B: not linear", wide, deep)
			}
			// A duplicate at the bottom is found, with its whole path.
			var ke *Error
			if err := Check([]byte(nested(depth-1, `{"x":1,"x":2}`)), tc.target); !errors.As(err, &ke) || !strings.HasSuffix(ke.Path, "x") {
				t.Fatalf("Check(a duplicate at the bottom) = %v", err)
			}
			// Deeper than encoding/json reads is an error, not a crash.
			if err := Check([]byte(nested(1<<16, "1")), tc.target); err == nil || errors.As(err, &ke) {
				t.Fatalf("Check(65536 levels) = %v, want encoding/json's error", err)
			}
		})
	}
}

// TestCheckWide: many keys in one object, or many objects, cost linear time.
func TestCheckWide(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 50000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i) + `":[{"name":"n"}]`)
	}
	b.WriteString("}")
	body := []byte(b.String())
	n := allocated(t, func() {
		if err := Check(body, &map[string][]inner{}); err != nil {
			t.Fatal(err)
		}
	})
	// Linear: the keys' set and strings, a few times the body. A walk that copied the set
	// or a path per key would allocate thousands of times it.
	if n > 16*uint64(len(body)) {
		t.Fatalf("50000 keys (%d B of JSON) allocated %d B: not linear", len(body), n)
	}
}

// allocated is the bytes the heap gave f, with one P so that no other goroutine of the
// test binary allocates meanwhile (as testing.AllocsPerRun does for counts).
func allocated(t *testing.T, f func()) uint64 {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestCheckSyntax: malformed JSON is the decoder's error, never a panic or a nil.
func TestCheckSyntax(t *testing.T) {
	for _, body := range []string{``, `{`, `{"a"`, `{"a":}`, `[1,]`, `{"a":1,}`, `}`, `{"a":1}}`, `[{]`, `""0`, `{} {}`} {
		if err := Check([]byte(body), &outer{}); err == nil {
			t.Errorf("Check(%q) = nil", body)
		}
	}
}

// BenchmarkCheck: the cost added to a front-end's open-session body.
func BenchmarkCheck(b *testing.B) {
	type open struct {
		ClientID   string            `json:"client_id"`
		UserID     string            `json:"user_id"`
		Username   string            `json:"username"`
		IPAddress  string            `json:"ip_address"`
		UserAgent  string            `json:"user_agent"`
		RememberMe bool              `json:"remember_me"`
		Scope      string            `json:"scope"`
		Notes      map[string]string `json:"notes"`
	}
	body := []byte(`{"client_id":"confidential","user_id":"3f1e2a9c-2d8b-4c55-a0de-000000000001","username":"alice","ip_address":"203.0.113.7","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","remember_me":true,"scope":"openid profile","notes":{"device":"laptop"}}`)
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if err := Check(body, &open{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Unmarshal", func(b *testing.B) { // for scale: the decode it guards
		for b.Loop() {
			var v open
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
