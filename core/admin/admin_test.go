package admin

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

func TestMergeReports(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b    Report
		ok, bad []string
	}{
		{"empty", Report{}, Report{}, nil, nil},
		{"union without repeats",
			Report{Succeeded: []string{"u1", "u2"}}, Report{Succeeded: []string{"u2", "u3"}, Failed: []string{"u4"}},
			[]string{"u1", "u2", "u3"}, []string{"u4"}},
		{"failed once is failed", // one page's back-channel logout reaching it does not make up for another's
			Report{Succeeded: []string{"u1"}}, Report{Failed: []string{"u1"}},
			nil, []string{"u1"}},
		{"failed first, then reached",
			Report{Failed: []string{"u1"}}, Report{Succeeded: []string{"u1", "u2"}},
			[]string{"u2"}, []string{"u1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := merge(tc.a, tc.b)
			if !slices.Equal(got.Succeeded, tc.ok) || !slices.Equal(got.Failed, tc.bad) {
				t.Errorf("merge = %+v, want succeeded %v, failed %v", got, tc.ok, tc.bad)
			}
		})
	}
}

func TestQueryBounds(t *testing.T) {
	for _, tc := range []struct {
		in      Query
		want    Query
		problem string // "" when accepted
	}{
		{Query{}, Query{Max: DefaultResults}, ""},
		{Query{First: 5, Max: MaxResults}, Query{First: 5, Max: MaxResults}, ""},
		{Query{After: "x", Max: 1}, Query{After: "x", Max: 1}, ""},
		{Query{Max: MaxResults + 1}, Query{}, fmt.Sprintf("at most %d", MaxResults)},
		{Query{Max: -1}, Query{}, "max must be"},
		{Query{First: -1}, Query{}, "first must be"},
	} {
		got, err := tc.in.normalise()
		switch {
		case tc.problem == "" && (err != nil || got != tc.want):
			t.Errorf("%+v: %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%+v: error %v, want one saying %q", tc.in, err, tc.problem)
		case tc.problem != "" && (!errors.Is(err, ErrInvalid) || !errors.Is(err, spi.ErrInvalid)):
			t.Errorf("%+v: error %v is not ErrInvalid and spi.ErrInvalid", tc.in, err)
		}
	}
}

// The errors read cleanly (their text is their own) and still classify as the SPI's.
func TestErrorsClassify(t *testing.T) {
	for _, err := range []error{ErrUnknownRealm, ErrUnknownClient, ErrUnknownSession, ErrNoSessions, ErrNoOfflineToken} {
		wrapped := fmt.Errorf("context: %w", err)
		if !errors.Is(wrapped, spi.ErrNotFound) || !errors.Is(wrapped, err) || errors.Is(wrapped, spi.ErrInvalid) {
			t.Errorf("%v: want it spi.ErrNotFound and itself, not spi.ErrInvalid", err)
		}
		if strings.Contains(err.Error(), spi.ErrNotFound.Error()+": ") {
			t.Errorf("%q repeats the SPI's text", err)
		}
	}
	if errors.Is(ErrUnknownClient, ErrUnknownSession) {
		t.Error("two not-found errors are the same error")
	}
}
