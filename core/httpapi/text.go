package httpapi

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// What sessiond takes as text. A NUL or invalid UTF-8 in an id, a name or any other value
// is refused at the door with 400 invalid_request, on every route and whatever store is
// behind it: PostgreSQL cannot store either, gRPC (the plugin boundary) cannot carry the
// second, and encoding/json would silently replace it. The rule is the stores' own
// (usersessions.CheckText), so a value that passes here is one every store takes; its
// error wraps spi.ErrInvalid, which errors.go answers as 400 invalid_request.

// checkText refuses a value no store can hold; what names where it came from.
func checkText(what, s string) error { return usersessions.CheckText(what, s) }

// checkRequestText checks what every route reads before its body: the path (its ids and
// realm name, decoded) and the query, names and values.
func checkRequestText(r *http.Request) error {
	if err := checkText("the path", r.URL.Path); err != nil {
		return err
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil // each route reports a malformed query its own way
	}
	return checkValues("query parameter", q)
}

// checkValues checks the names and values of a form or query. What to call a value is
// built only for one that fails: every token request passes here.
func checkValues(what string, vs url.Values) error {
	for k, v := range vs {
		if checkText("", k) != nil {
			return checkText(what+" name", k)
		}
		for _, x := range v {
			if checkText("", x) != nil {
				return checkText(what+" "+k, x)
			}
		}
	}
	return nil
}

// checkDecoded checks every string a decoded JSON body holds: fields, map keys and values,
// slice elements, through pointers.
func checkDecoded(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkDecoded(v.Elem(), path)
	case reflect.String:
		return checkText(path, v.String())
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			name := t.Field(i).Tag.Get("json")
			if name == "" {
				name = t.Field(i).Name
			}
			if err := checkDecoded(v.Field(i), fieldPath(path, name)); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if err := checkDecoded(iter.Key(), path+" key"); err != nil {
				return err
			}
			if err := checkDecoded(iter.Value(), path+" value"); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkDecoded(v.Index(i), path); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldPath names a JSON field for an error: "JSON field user_id".
func fieldPath(path, tag string) string {
	name, _, _ := strings.Cut(tag, ",")
	if path == "JSON" {
		return "JSON field " + name
	}
	return path + "." + name
}
