package usersessions

import (
	"errors"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		in  string
		ok  bool
		fix string // StorableText(in)
	}{
		{"", true, ""},
		{"plain", true, "plain"},
		{"välue ✓", true, "välue ✓"},
		{"a\x00b", false, "a\uFFFDb"},
		{"a\xffb", false, "a\uFFFDb"},
		{"\xc3", false, "\uFFFD"},         // a truncated sequence
		{"\xed\xa0\x80", false, "\uFFFD"}, // a surrogate half
	} {
		err := CheckText("field", tc.in)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, spi.ErrInvalid)) {
			t.Errorf("CheckText(%q) = %v, want ok %v (or spi.ErrInvalid)", tc.in, err, tc.ok)
		}
		if got := StorableText(tc.in); got != tc.fix || CheckText("", got) != nil {
			t.Errorf("StorableText(%q) = %q, want %q", tc.in, got, tc.fix)
		}
	}
}
