// Package jsonkeys refuses the object keys that encoding/json accepts but another JSON
// reader may read differently: a key given twice in one object (encoding/json keeps the
// last, many parsers the first) and a key that matches a struct field only without regard
// to case (encoding/json fills `json:"user_id"` from "USER_ID", or from "uſer_id" with a
// long s; a case-sensitive reader does not). Either lets a proxy, a firewall or an audit
// log see another request than the one sessiond acts on.
//
// Check runs over bytes already read and bounded by the caller, next to the decode it
// guards; it does not decode. After json.Valid it scans the bytes once with an explicit
// stack, so neither the depth of nesting nor the number of keys costs more than linear time
// or any goroutine stack.
package jsonkeys

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is a refused key. Path is where the key is, from the document's root: "user_id",
// "notes.device", "clients[0].redirectUris", "[1].realm" when the root is an array.
type Error struct {
	Path   string
	Key    string
	Field  string // the field Key matches only by case; "" for a duplicate key
	Offset int64  // where the key starts (its opening quote), in bytes from the document's start
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("duplicate key %s: a key may appear only once in an object", e.Path)
	}
	return fmt.Sprintf("key %s matches the field %q only by case: keys are case-sensitive", e.Path, e.Field)
}

// Check refuses a duplicate key in any object of data, at any depth, and a key that
// matches a field of the struct it is decoded into only without regard to case. v is what
// data is (or will be) decoded into, as given to json.Unmarshal; nil checks duplicates
// only. Keys of maps, and of values decoded by their own UnmarshalJSON or into an
// interface, are checked for duplicates only. data that is not one JSON value (or nests
// deeper than encoding/json's 10000 levels) is refused with encoding/json's own error:
// callers decode first and report those their way.
func Check(data []byte, v any) error {
	if !json.Valid(data) {
		var x any
		if err := json.Unmarshal(data, &x); err != nil {
			return err
		}
		return errors.New("not a JSON value")
	}
	// From here data is valid JSON: the scan below need not check its syntax.
	s := scan{data: data}
	fields := fieldSets{}
	var stack []frame
	next := typeOf(reflect.TypeOf(v))
	for {
		s.space()
		switch data[s.i] {
		case '{':
			s.i++
			stack = append(stack, frame{object: true, t: next})
		case '[':
			s.i++
			stack = append(stack, frame{t: next, index: -1})
		case '"':
			s.str()
		default:
			s.literal()
		}
		// Past a value or an opening bracket: close what ends, then read the next member's
		// key or the next element's index.
		for {
			if len(stack) == 0 {
				return nil // valid JSON: only white space follows
			}
			top := &stack[len(stack)-1]
			s.space()
			c := data[s.i]
			if c == '}' || c == ']' {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			if c == ',' {
				s.i++
				s.space()
			}
			if !top.object {
				top.index++
				next = element(top.t)
				break
			}
			start := s.i
			key := s.key()
			top.key = key
			if _, seen := top.keys[key]; seen {
				return &Error{Path: path(stack), Key: key, Offset: int64(start)}
			}
			if top.keys == nil {
				top.keys = map[string]struct{}{}
			}
			top.keys[key] = struct{}{}
			var field string
			next, field = fields.member(top.t, key)
			if field != "" {
				return &Error{Path: path(stack), Key: key, Field: field, Offset: int64(start)}
			}
			s.space()
			s.i++ // the colon
			break
		}
	}
}

// scan walks valid JSON.
type scan struct {
	data []byte
	i    int
}

func (s *scan) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str passes the string at i and says whether it holds an escape.
func (s *scan) str() (escaped bool) {
	s.i++ // the opening quote
	for s.data[s.i] != '"' {
		if s.data[s.i] == '\\' {
			escaped = true
			s.i++
		}
		s.i++
	}
	s.i++
	return escaped
}

// key reads the string at i as encoding/json decodes it: escapes resolved, invalid UTF-8
// replaced by U+FFFD (so "\xff" and "\xfe" are one key to it, and here).
func (s *scan) key() string {
	start := s.i
	escaped := s.str()
	raw := s.data[start+1 : s.i-1]
	if !escaped && utf8.Valid(raw) {
		return string(raw)
	}
	var k string
	_ = json.Unmarshal(s.data[start:s.i], &k) // valid JSON: a string decodes
	return k
}

// literal passes a number, true, false or null.
func (s *scan) literal() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return
		}
		s.i++
	}
}

// frame is an object or array being read: the type it is decoded into (nil: not known or
// not checked), and where in it the reader is.
type frame struct {
	t      reflect.Type
	object bool
	key    string              // object: the current member's key
	keys   map[string]struct{} // object: the keys so far
	index  int                 // array: the current element's index
}

// path names the current key of the innermost frame, from the root.
func path(stack []frame) string {
	var b strings.Builder
	for _, f := range stack {
		if !f.object {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if plain(f.key) {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		} else {
			b.WriteString("[" + strconv.Quote(f.key) + "]")
		}
	}
	return b.String()
}

// plain says whether a key reads unambiguously in a dotted path.
func plain(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if r != '_' && r != '-' && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// typeOf is the type whose keys are checked for a value decoded into t: pointers followed,
// nil for what encoding/json does not decode field by field (an interface, a type with its
// own UnmarshalJSON or UnmarshalText).
func typeOf(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) ||
			t.Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
			return t
		default:
			return nil
		}
	}
	return nil
}

// element is the type of an array's elements.
func element(t reflect.Type) reflect.Type {
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		return typeOf(t.Elem())
	}
	return nil
}

// member is the type of an object member's value, or the field key matches only by case.
func (fields fieldSets) member(t reflect.Type, key string) (reflect.Type, string) {
	switch {
	case t == nil:
		return nil, ""
	case t.Kind() == reflect.Map:
		return typeOf(t.Elem()), ""
	case t.Kind() != reflect.Struct:
		return nil, ""
	}
	fs := fields.of(t)
	if ft, ok := fs[key]; ok {
		return typeOf(ft), ""
	}
	// encoding/json matches by strings.EqualFold (Unicode simple folding: K is the Kelvin
	// sign's fold, s the long s's).
	for name := range fs {
		if strings.EqualFold(name, key) {
			return nil, name
		}
	}
	return nil, "" // unknown: refused by DisallowUnknownFields where the caller wants that
}

// fieldSets are the JSON names of the struct types one Check has met, each type's worked
// out once per Check: a document holds few types (arrays repeat them), and a cache kept
// between calls would be state shared by every caller of the package.
type fieldSets map[reflect.Type]map[string]reflect.Type

// of is the JSON names of a struct's fields as encoding/json sees them: exported fields by
// tag or name, "-" left out, the fields of embedded structs promoted, the shallowest name
// winning (and at one depth, the one tagged field; else none).
func (fields fieldSets) of(t reflect.Type) map[string]reflect.Type {
	if fs, ok := fields[t]; ok {
		return fs
	}
	type found struct {
		t       reflect.Type
		depth   int
		tagged  bool
		clashes bool
	}
	all := map[string]*found{}
	type level struct {
		t     reflect.Type
		depth int
	}
	queue := []level{{t, 0}}
	visited := map[reflect.Type]bool{}
	for len(queue) > 0 {
		l := queue[0]
		queue = queue[1:]
		if visited[l.t] {
			continue
		}
		visited[l.t] = true
		for i := range l.t.NumField() {
			sf := l.t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if name == "" && et.Kind() == reflect.Struct {
					queue = append(queue, level{et, l.depth + 1})
					continue
				}
				if !sf.IsExported() && et.Kind() != reflect.Struct {
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			tagged := name != ""
			if !tagged {
				name = sf.Name
			}
			switch f, ok := all[name]; {
			case !ok:
				all[name] = &found{t: ft, depth: l.depth, tagged: tagged}
			case f.depth < l.depth:
				// the shallower one hides it
			case f.tagged == tagged:
				f.clashes = true
			case tagged:
				*f = found{t: ft, depth: l.depth, tagged: true}
			}
		}
	}
	fs := make(map[string]reflect.Type, len(all))
	for name, f := range all {
		if !f.clashes {
			fs[name] = f.t
		}
	}
	fields[t] = fs
	return fs
}
