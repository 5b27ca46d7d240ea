package jsonkeys

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzCheck: no input panics Check; for valid JSON it answers nil or an *Error that points
// at a key's opening quote, whatever the target, and what checkTokens (the same rules over
// json.Decoder.Token) answers.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"a","user_id":"b"}`, `{"inner":{"name":"a","Name":"b"}}`, `[{"list":[{"NAME":1}]}]`,
		`{"map":{"a":{"name":1},"a":{}}}`, `{"raw":{"x":[{"x":1,"x":2}]}}`, `[[[[{"a":{"b":1,"b":2}}]]]]`,
		`{"uſer_id":1}`, `{"user\u005fid":1,"user_id":2}`, "{\"\xff\":1,\"\xfe\":2}", `{"a" : [ 1 , {"b":true} ] , "a" :null}`, `"x"`, `1`, `null`, ``, `{`, `{"a":1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{nil, &outer{}, new(any), &[]inner{}, &map[string]inner{}} {
			err := Check(data, v)
			if !json.Valid(data) {
				if err == nil {
					t.Fatalf("Check(%q) = nil for invalid JSON", data)
				}
				continue
			}
			var ke *Error
			if err != nil && (!errors.As(err, &ke) || ke.Offset < 0 || ke.Offset >= int64(len(data)) || data[ke.Offset] != '"' || ke.Path == "") {
				t.Fatalf("Check(%q, %T) = %v (%+v)", data, v, err, ke)
			}
			var ref *Error
			refErr := checkTokens(data, v)
			errors.As(refErr, &ref)
			if (err == nil) != (refErr == nil) || ke != nil && (ref == nil || *ke != *ref) {
				t.Fatalf("Check(%q, %T) = %v (%+v); checkTokens: %v (%+v)", data, v, err, ke, refErr, ref)
			}
		}
	})
}
