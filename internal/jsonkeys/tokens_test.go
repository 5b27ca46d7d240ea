package jsonkeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
)

// checkTokens is Check written over json.Decoder.Token, simpler and slower: FuzzCheck
// compares the two.
func checkTokens(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are not read, only passed over
	var stack []frame
	var wantKey []bool // by frame: an object's next token is a key
	fields := fieldSets{}
	next := typeOf(reflect.TypeOf(v))
	for read := false; ; read = true {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && len(stack) == 0 && read {
			return nil
		}
		if err == nil && len(stack) == 0 && read {
			// The decoder reads a stream of values; a document is one.
			return errors.New("data after the JSON value")
		}
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			switch {
			case tok == json.Delim('}') || tok == json.Delim(']'):
				stack, wantKey = stack[:n-1], wantKey[:n-1]
				continue
			case top.object && wantKey[n-1]:
				key, _ := tok.(string) // the decoder allows nothing else here
				top.key, wantKey[n-1] = key, false
				if _, seen := top.keys[key]; seen {
					return &Error{Path: path(stack), Key: key, Offset: keyStart(data, before)}
				}
				if top.keys == nil {
					top.keys = map[string]struct{}{}
				}
				top.keys[key] = struct{}{}
				var field string
				next, field = fields.member(top.t, key)
				if field != "" {
					return &Error{Path: path(stack), Key: key, Field: field, Offset: keyStart(data, before)}
				}
				continue
			case top.object:
				wantKey[n-1] = true // this is the member's value
			default:
				top.index++
				next = element(top.t)
			}
		}
		switch tok {
		case json.Delim('{'):
			stack, wantKey = append(stack, frame{object: true, t: next}), append(wantKey, true)
		case json.Delim('['):
			stack, wantKey = append(stack, frame{t: next, index: -1}), append(wantKey, false)
		}
	}
}

// keyStart is where the key read from offset on starts: past the white space and the comma
// the decoder had not yet consumed.
func keyStart(data []byte, offset int64) int64 {
	for offset < int64(len(data)) && data[offset] != '"' {
		offset++
	}
	return offset
}
