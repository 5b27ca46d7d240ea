package expiry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
)

const (
	minute = time.Minute
	hour   = time.Hour
	day    = 24 * time.Hour
)

// t0 is the start of every session in these tests.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func rules(t realm.Timeouts, clients ...*realm.Client) Rules {
	return Rules{Realm: &realm.Realm{Name: "acme", Enabled: true, Timeouts: t, Clients: clients}, PersistentSessions: true}
}

// want is what a case expects of an Expiry. maxSecs < 0 means "no max".
type want struct {
	idleSecs int64
	idleSrc  string
	maxSecs  int64
	maxSrc   string
	maxEnds  time.Time // zero: not checked
	expires  time.Time
	stored   time.Time // zero: same as expires
	endsBy   string
	ignored  string // substring of one Ignored entry; "" means none
}

func check(t *testing.T, got Expiry, w want) {
	t.Helper()
	if got.Idle.Seconds != w.idleSecs || got.Idle.Source != w.idleSrc {
		t.Errorf("idle = %ds from %q, want %ds from %q", got.Idle.Seconds, got.Idle.Source, w.idleSecs, w.idleSrc)
	}
	switch {
	case w.maxSecs < 0 && got.Max != nil:
		t.Errorf("max = %+v, want none", *got.Max)
	case w.maxSecs >= 0 && got.Max == nil:
		t.Errorf("no max, want %ds from %q", w.maxSecs, w.maxSrc)
	case got.Max != nil:
		if got.Max.Seconds != w.maxSecs || got.Max.Source != w.maxSrc {
			t.Errorf("max = %ds from %q, want %ds from %q", got.Max.Seconds, got.Max.Source, w.maxSecs, w.maxSrc)
		}
		if !w.maxEnds.IsZero() && !got.Max.Ends.Equal(w.maxEnds) {
			t.Errorf("max ends %s, want %s", got.Max.Ends, w.maxEnds)
		}
	}
	if !got.ExpiresAt.Equal(w.expires) || got.EndsBy != w.endsBy {
		t.Errorf("expires %s by %s, want %s by %s", got.ExpiresAt, got.EndsBy, w.expires, w.endsBy)
	}
	stored := w.stored
	if stored.IsZero() {
		stored = w.expires
	}
	if !got.StoredExpiresAt.Equal(stored) {
		t.Errorf("stored expiry %s, want %s", got.StoredExpiresAt, stored)
	}
	if w.ignored == "" && len(got.Ignored) > 0 {
		t.Errorf("ignored %v, want none", got.Ignored)
	}
	if w.ignored != "" && !strings.Contains(strings.Join(got.Ignored, "\n"), w.ignored) {
		t.Errorf("ignored %v, want one mentioning %q", got.Ignored, w.ignored)
	}
	if got.Why == "" {
		t.Error("no Why")
	}
}

// sameTimes checks that an Expiry computed without the explanation (the checks' and
// Stamp's) has the same limits and ends as the explained one: only the texts may differ.
func sameTimes(t *testing.T, brief, full Expiry) {
	t.Helper()
	limits := func(l *Limit) string {
		if l == nil {
			return "none"
		}
		return fmt.Sprintf("%ds from %s ends %s", l.Seconds, l.From, l.Ends)
	}
	if b, f := limits(&brief.Idle), limits(&full.Idle); b != f {
		t.Errorf("idle without explanation %s, with %s", b, f)
	}
	if b, f := limits(brief.Max), limits(full.Max); b != f {
		t.Errorf("max without explanation %s, with %s", b, f)
	}
	if b, f := limits(brief.UserSession), limits(full.UserSession); b != f {
		t.Errorf("user session without explanation %s, with %s", b, f)
	}
	if !brief.ExpiresAt.Equal(full.ExpiresAt) || !brief.StoredExpiresAt.Equal(full.StoredExpiresAt) || brief.EndsBy != full.EndsBy {
		t.Errorf("without explanation expires %s (stored %s) by %s, with %s (stored %s) by %s",
			brief.ExpiresAt, brief.StoredExpiresAt, brief.EndsBy, full.ExpiresAt, full.StoredExpiresAt, full.EndsBy)
	}
	if brief.Why != "" || brief.UserSession != nil && brief.UserSession.Note != "" {
		t.Errorf("an explanation computed without asking: %q", brief.Why)
	}
}
