package sqlstore

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

// field is one field as recordReader gives it.
type field struct {
	v    string
	null bool
}

func TestRecordReader(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []field
		err      bool
	}{
		{name: "plain", in: "(a,b1,t)", want: []field{{v: "a"}, {v: "b1"}, {v: "t"}}},
		{name: "NULLs first, between and last", in: "(,x,,)", want: []field{{null: true}, {v: "x"}, {null: true}, {null: true}}},
		{name: "empty string is quoted", in: `("",x)`, want: []field{{v: ""}, {v: "x"}}},
		{name: "quoted without escapes", in: `("Mozilla/5.0 (X11; Linux)","2026-11-04 21:17:09.5+00")`,
			want: []field{{v: "Mozilla/5.0 (X11; Linux)"}, {v: "2026-11-04 21:17:09.5+00"}}},
		{name: "doubled quotes", in: `("{""a"": ""b""}",1)`, want: []field{{v: `{"a": "b"}`}, {v: "1"}}},
		{name: "backslashes", in: `("a\\b\"c",z)`, want: []field{{v: `a\b"c`}, {v: "z"}}},
		{name: "quote then comma inside", in: `("x"",y",end)`, want: []field{{v: `x",y`}, {v: "end"}}},
		{name: "unicode and new lines", in: "(\"ü\nñ ✓\",é)", want: []field{{v: "ü\nñ ✓"}, {v: "é"}}},
		{name: "one field", in: "(only)", want: []field{{v: "only"}}},
		{name: "no parentheses", in: "a,b", want: []field{{v: "a"}}, err: true},
		{name: "unterminated quote", in: `("abc)`, want: []field{{v: "x"}}, err: true},
		{name: "fewer fields than read", in: "(a)", want: []field{{v: "a"}, {v: "b"}}, err: true},
		{name: "more fields than read", in: "(a,b)", want: []field{{v: "a"}}, err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r recordReader
			err := r.reset([]byte(tt.in))
			var got []field
			for range tt.want {
				if err != nil {
					break
				}
				var b []byte
				var null bool
				if b, null, err = r.next(); err == nil {
					got = append(got, field{v: string(b), null: null})
				}
			}
			if err == nil {
				err = r.end()
			}
			if tt.err {
				if !errors.Is(err, errRecord) {
					t.Fatalf("read %v, error %v, want one wrapping errRecord", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("read %q as %v (error %v), want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	kolkata := time.FixedZone("", 5*3600+1800)
	for _, tt := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2026-11-04 21:17:09.537645+00", want: time.Date(2026, 11, 4, 21, 17, 9, 537645000, time.UTC)},
		{in: "2026-11-04 21:17:09.5+00", want: time.Date(2026, 11, 4, 21, 17, 9, 500000000, time.UTC)},
		{in: "2026-11-04 21:17:09+00", want: time.Date(2026, 11, 4, 21, 17, 9, 0, time.UTC)},
		{in: "0001-01-01 00:00:00+00", want: time.Time{}},
		{in: "1969-12-31 23:59:59.999999+00", want: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{in: "2000-02-29 12:00:00+00", want: time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC)},
		{in: "9999-12-31 23:59:59.999999+00", want: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		// Other time zones and years go through lib/pq's parser.
		{in: "2026-11-05 02:47:09.537645+05:30", want: time.Date(2026, 11, 5, 2, 47, 9, 537645000, kolkata)},
		{in: "2026-11-04 13:17:09-08", want: time.Date(2026, 11, 4, 21, 17, 9, 0, time.UTC)},
		{in: "12026-11-04 21:17:09+00", want: time.Date(12026, 11, 4, 21, 17, 9, 0, time.UTC)},
		{in: "infinity", err: true},
		{in: "2026-13-04 21:17:09+00", err: true},
		{in: "not a time", err: true},
		{in: "", err: true},
	} {
		got, err := parseTimestamp([]byte(tt.in))
		switch {
		case tt.err && err == nil:
			t.Errorf("parseTimestamp(%q) = %v, want an error", tt.in, got)
		case !tt.err && (err != nil || !got.Equal(tt.want) || got.Location() != time.UTC):
			t.Errorf("parseTimestamp(%q) = %v (%v), %v; want %v in UTC", tt.in, got, got.Location(), err, tt.want)
		}
	}
}

func TestDaysFromCivilAgreesWithTime(t *testing.T) {
	for y := 1; y <= 9999; y += 37 {
		for _, md := range [][2]int{{1, 1}, {2, 28}, {2, 29}, {3, 1}, {7, 15}, {12, 31}} {
			want := time.Date(y, time.Month(md[0]), md[1], 0, 0, 0, 0, time.UTC)
			if want.Month() != time.Month(md[0]) {
				continue // February 29th of a common year
			}
			if got := daysFromCivil(y, md[0], md[1]); got*86400 != want.Unix() {
				t.Fatalf("daysFromCivil(%d, %d, %d) = %d, want %d", y, md[0], md[1], got, want.Unix()/86400)
			}
		}
	}
}

func TestParseIntAndBool(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "0", want: 0}, {in: "1", want: 1}, {in: "-42", want: -42}, {in: "123456789012345678", want: 123456789012345678},
		{in: "", err: true}, {in: "-", err: true}, {in: "1e3", err: true}, {in: "1234567890123456789", err: true},
	} {
		got, err := parseInt([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseInt(%q) = %d, %v", tt.in, got, err)
		}
	}
	for in, want := range map[string]bool{"t": true, "f": false} {
		if got, err := parseBool([]byte(in)); err != nil || got != want {
			t.Errorf("parseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "true", "1", "T"} {
		if _, err := parseBool([]byte(in)); err == nil {
			t.Errorf("parseBool(%q) took it", in)
		}
	}
}

func TestNoteReader(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     map[string]string
		err      bool
	}{
		{name: "empty object", in: "{}", want: nil},
		{name: "as jsonb prints", in: `{"a": "b", "sessiond.offline_access": "true"}`, want: map[string]string{"a": "b", "sessiond.offline_access": "true"}},
		{name: "as encodeNotes writes", in: `{"a":"b","c":"d"}`, want: map[string]string{"a": "b", "c": "d"}},
		{name: "empty key and value", in: `{"": ""}`, want: map[string]string{"": ""}},
		{name: "escapes", in: `{"q": "say \"hi\"\n", "u": "\u00fc\u2713"}`, want: map[string]string{"q": "say \"hi\"\n", "u": "ü✓"}},
		{name: "unicode as it is", in: `{"ü": "✓ ok"}`, want: map[string]string{"ü": "✓ ok"}},
		{name: "NULL", in: "", want: nil},
		{name: "a value that is not a string", in: `{"a": 1}`, err: true},
		{name: "not an object", in: `["a"]`, err: true},
		{name: "trailing comma", in: `{"a": "b",}`, err: true},
		{name: "not JSON", in: `{a: b}`, err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := noteReader{known: map[string]string{}}
			var in []byte
			if tt.name != "NULL" {
				in = []byte(tt.in)
			}
			// The second read goes through the memo; the last two into a map given
			// (empty, as a Lender gives it).
			for i := range 4 {
				var into map[string]string
				if i >= 2 {
					into = map[string]string{}
				}
				got, err := r.read(in, into)
				if (err != nil) != tt.err || !maps.Equal(got, tt.want) || (tt.want == nil) != (got == nil) {
					t.Fatalf("read(%s, %v) = %v, %v; want %v (error %v)", tt.in, into, got, err, tt.want, tt.err)
				}
			}
		})
	}
}
