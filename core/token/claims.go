package token

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// appendJSON appends w as json.Marshal(w) encodes it, without reflection: every token
// issued is encoded here, and encoding/json took a dozen allocations for it (the
// audience's MarshalJSON among them). TestWireJSON and FuzzWireJSON hold the two to the
// same bytes.
func (w *wire) appendJSON(b []byte) []byte {
	b = append(b, `{"exp":`...)
	b = strconv.AppendInt(b, w.Exp, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, w.Iat, 10)
	b = appendMember(b, `,"jti":`, w.Jti)
	b = appendMember(b, `,"iss":`, w.Iss)
	switch len(w.Aud) {
	case 0: // omitempty
	case 1:
		b = appendMember(b, `,"aud":`, w.Aud[0])
	default:
		b = append(b, `,"aud":[`...)
		for i, a := range w.Aud {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	b = appendMember(b, `,"sub":`, w.Sub)
	b = appendMember(b, `,"typ":`, string(w.Typ))
	b = appendMember(b, `,"azp":`, w.Azp)
	b = appendOmitEmpty(b, `,"sid":`, w.Sid)
	b = appendOmitEmpty(b, `,"session_state":`, w.SessionState)
	b = appendOmitEmpty(b, `,"scope":`, w.Scope)
	b = appendOmitEmpty(b, `,"preferred_username":`, w.Username)
	if w.Cnf != nil {
		b = appendMember(b, `,"cnf":{"jkt":`, w.Cnf.JKT)
		b = append(b, '}')
	}
	return append(b, '}')
}

// jsonSize is about how long w's JSON is, so that appendJSON rarely grows its buffer.
func (w *wire) jsonSize() int {
	n := 192 + len(w.Jti) + len(w.Iss) + len(w.Sub) + len(w.Typ) + len(w.Azp) + len(w.Sid) +
		len(w.SessionState) + len(w.Scope) + len(w.Username)
	for _, a := range w.Aud {
		n += len(a) + 3
	}
	if w.Cnf != nil {
		n += len(w.Cnf.JKT)
	}
	return n
}

func appendMember(b []byte, name, v string) []byte {
	return appendJSONString(append(b, name...), v)
}

func appendOmitEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendMember(b, name, v)
}

// appendJSONString appends s as encoding/json encodes it. A string of printable ASCII
// that needs no escape, as claims nearly always are, is written as it is; any other is
// encoded by encoding/json itself, so that its escapes (HTML characters, control
// characters, U+2028 and U+2029, invalid UTF-8) are the library's.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
