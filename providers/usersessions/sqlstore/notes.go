package sqlstore

import (
	stdbytes "bytes" // this package has a column type named bytes
	"encoding/json"

	"github.com/sessiond/sessiond/plugins/wire"
)

// noteReader parses notes, a JSON object of strings. The objects the stores print, as
// PostgreSQL's jsonb does ({"key": "value", …}) or as encodeNotes does, are read
// directly, without encoding/json's reflection (on a preload it was a tenth of the CPU);
// anything else (escapes, values that are not strings, not an object) goes to
// encoding/json, which reads or rejects it as before. With known set, it hands out one
// copy of the keys and short values it meets again, as most sessions carry the same ones.
type noteReader struct {
	known map[string]string
	last  [8]string // by place in the object (key, value, key, …): the last string shared there
}

// maxKnownNotes bounds what a noteReader remembers; maxSharedValue is the longest value it
// shares (longer ones are usually specific to one session).
const (
	maxKnownNotes  = 1024
	maxSharedValue = 16
)

// read reads notes into into, if it is not nil (an empty map), and returns them; nil for
// none.
func (r *noteReader) read(b []byte, into map[string]string) (map[string]string, error) {
	if b == nil {
		return nil, nil
	}
	if m, ok := r.plain(b, into); ok {
		return m, nil
	}
	clear(into)
	m := into
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// plain reads an object of strings without escapes, into into if it is not nil; ok is
// false for anything else.
func (r *noteReader) plain(b []byte, into map[string]string) (m map[string]string, ok bool) {
	ok = eachPlain(b, func(i int, k, v []byte) {
		if m == nil {
			if m = into; m == nil {
				m = map[string]string{}
			}
		}
		m[r.share(i, k, true)] = r.share(i+1, v, len(v) <= maxSharedValue)
	})
	if !ok {
		return nil, false
	}
	return m, true // nil for no notes, which reads as an empty map
}

// pairs reads notes as read does, onto the end of dst as key, value, key, …: the bytes
// of b where they need no unescaping, which is most often.
func (r *noteReader) pairs(b []byte, dst wire.RawNotes) (wire.RawNotes, error) {
	if b == nil {
		return dst, nil
	}
	from := len(dst)
	if eachPlain(b, func(_ int, k, v []byte) { dst = append(dst, k, v) }) {
		return dst, nil
	}
	dst = dst[:from]
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return dst, err
	}
	for k, v := range m {
		dst = append(dst, []byte(k), []byte(v))
	}
	return dst, nil
}

// eachPlain calls each with the place (0, 2, 4, …), key and value of each member of an
// object of strings without escapes; it returns false, part way perhaps, for anything else.
func eachPlain(b []byte, each func(i int, k, v []byte)) bool {
	b = stdbytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	b = stdbytes.TrimSpace(b[1 : len(b)-1])
	for i := 0; len(b) > 0; i += 2 {
		k, rest, ok := plainString(b)
		if !ok {
			return false
		}
		rest = stdbytes.TrimLeft(rest, " ")
		if len(rest) == 0 || rest[0] != ':' {
			return false
		}
		v, rest, ok := plainString(stdbytes.TrimLeft(rest[1:], " "))
		if !ok {
			return false
		}
		each(i, k, v)
		rest = stdbytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		if rest[0] != ',' {
			return false
		}
		b = stdbytes.TrimLeft(rest[1:], " ")
		if len(b) == 0 { // a trailing comma
			return false
		}
	}
	return true
}

// plainString reads a JSON string without escapes or control characters at the start of
// b, and returns its contents and what follows it.
func plainString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	end := stdbytes.IndexByte(b[1:], '"')
	if end < 0 {
		return nil, nil, false
	}
	s = b[1 : 1+end]
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			return nil, nil, false
		}
	}
	return s, b[2+end:], true
}

// share returns b as a string, the one copy of it when shared; place is where in the
// object b was, for a memo of the last string there.
func (r *noteReader) share(place int, b []byte, shared bool) string {
	if !shared || r.known == nil {
		return string(b)
	}
	last := &r.last[place%len(r.last)]
	if *last == string(b) {
		return *last
	}
	s, ok := r.known[string(b)]
	if !ok {
		s = string(b)
		if len(r.known) < maxKnownNotes {
			r.known[s] = s
		}
	}
	*last = s
	return s
}
