package sqlstore

import (
	stdbytes "bytes" // this package has a column type named bytes
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// recordReader reads the fields of a row value in PostgreSQL's text form (record_out):
// "(f1,f2,…)", where a NULL field is empty and a field that is empty or holds a double
// quote, backslash, comma, parenthesis or white space is double-quoted, a " inside written
// "" and a \ written \\.
//
// A PostgreSQL stream selects each row as one such value: lib/pq hands a value of a type it
// does not know (a record) over as the bytes it received, where a column of text or
// timestamptz costs it two allocations (the string and its boxing into an interface) or a
// general timestamp parse. Read here, the only allocations are the strings kept.
type recordReader struct {
	rest    []byte // the fields not read yet
	started bool   // a field was read: the next one follows a comma
	buf     []byte // the last quoted field that held escapes, unescaped
	// unescaped says that the field next returned last is buf.
	unescaped bool
}

var errRecord = errors.New("malformed row value")

func (r *recordReader) reset(b []byte) error {
	if len(b) < 2 || b[0] != '(' || b[len(b)-1] != ')' {
		return fmt.Errorf("%w: %.40q", errRecord, b)
	}
	r.rest, r.started = b[1:len(b)-1], false
	return nil
}

// next returns the next field (valid until the next call) and whether it is NULL.
func (r *recordReader) next() (field []byte, null bool, err error) {
	if r.started {
		if len(r.rest) == 0 || r.rest[0] != ',' {
			return nil, false, fmt.Errorf("%w: fewer fields than expected", errRecord)
		}
		r.rest = r.rest[1:]
	}
	r.started, r.unescaped = true, false
	b := r.rest
	if len(b) == 0 || b[0] == ',' {
		return nil, true, nil
	}
	if b[0] != '"' {
		end := stdbytes.IndexByte(b, ',')
		if end < 0 {
			end = len(b)
		}
		r.rest = b[end:]
		return b[:end], false, nil
	}
	// A quoted field: as it is, unless it holds an escape.
	i := 1
	if j := stdbytes.IndexAny(b[1:], `"\`); j >= 0 && b[1+j] == '"' && (2+j == len(b) || b[2+j] != '"') {
		r.rest = b[2+j:]
		return b[1 : 1+j], false, nil
	}
	r.buf = r.buf[:0]
	for {
		j := stdbytes.IndexAny(b[i:], `"\`)
		if j < 0 {
			return nil, false, fmt.Errorf("%w: unterminated quoted field", errRecord)
		}
		r.buf = append(r.buf, b[i:i+j]...)
		i += j
		switch {
		case b[i] == '\\':
			if i+1 == len(b) {
				return nil, false, fmt.Errorf("%w: unterminated quoted field", errRecord)
			}
			r.buf = append(r.buf, b[i+1])
			i += 2
		case i+1 < len(b) && b[i+1] == '"':
			r.buf = append(r.buf, '"')
			i += 2
		default:
			r.rest = b[i+1:]
			r.unescaped = true
			return r.buf, false, nil
		}
	}
}

// end checks that every field was read.
func (r *recordReader) end() error {
	if len(r.rest) != 0 {
		return fmt.Errorf("%w: more fields than expected", errRecord)
	}
	return nil
}

// parseBool reads a boolean as PostgreSQL prints it.
func parseBool(b []byte) (bool, error) {
	if len(b) == 1 {
		switch b[0] {
		case 't':
			return true, nil
		case 'f':
			return false, nil
		}
	}
	return false, fmt.Errorf("%q is not a boolean", b)
}

// parseInt reads a decimal integer.
func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, fmt.Errorf("%q is not an integer in range", b)
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not an integer", b)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// parseTimestamp reads a timestamptz as PostgreSQL prints it with DateStyle ISO (the one
// lib/pq allows), in UTC at microsecond precision. The form of the stores' connections
// (time zone UTC, years 1 to 9999: "2006-01-02 15:04:05.999999+00") is read directly;
// anything else (another time zone, other years) by lib/pq's general parser.
func parseTimestamp(b []byte) (time.Time, error) {
	if t, ok, err := plainTimestamp(b); ok {
		return t, err
	}
	t, err := pq.ParseTimestamp(nil, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", b, err)
	}
	return micro(t), nil
}

// plainTimestamp reads "YYYY-MM-DD hh:mm:ss[.f{1,6}]+00"; ok is false when b has
// another form.
func plainTimestamp(b []byte) (t time.Time, ok bool, err error) {
	n := len(b)
	if n < 22 || b[n-3] != '+' || b[n-2] != '0' || b[n-1] != '0' ||
		b[4] != '-' || b[7] != '-' || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false, nil
	}
	bad := func() (time.Time, bool, error) { return time.Time{}, true, fmt.Errorf("%q is not a timestamp", b) }
	num := func(s []byte) (int, bool) {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || year < 1 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return bad()
	}
	micros := 0
	if frac := b[19 : n-3]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 7 {
			return bad()
		}
		f, ok := num(frac[1:])
		if !ok {
			return bad()
		}
		for range 7 - len(frac) {
			f *= 10
		}
		micros = f
	}
	days := daysFromCivil(year, month, day)
	unix := ((days*24+int64(hour))*60+int64(minute))*60 + int64(sec)
	return time.Unix(unix, int64(micros)*1000).UTC(), true, nil
}

// daysFromCivil is the number of days from 1970-01-01 to the given proleptic Gregorian
// date (Howard Hinnant's algorithm): time.Date does the same with more checks and cost.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y ≥ 0 here: years run from 1
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
