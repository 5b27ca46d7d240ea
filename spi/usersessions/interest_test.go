package usersessions

import (
	"context"
	"testing"
)

func TestInterestWants(t *testing.T) {
	sessions := Interest{Kinds: []ChangeKind{Upserted, Removed, Flushed}, IgnoreOrigin: "me"}
	records := Interest{Kinds: []ChangeKind{RecordChanged}}
	for _, tc := range []struct {
		name string
		in   Interest
		c    Change
		want bool
	}{
		{"no interest: a record", Interest{}, Change{Kind: RecordChanged, Origin: "me"}, true},
		{"no interest: a session", Interest{}, Change{Kind: Removed}, true},
		{"sessions: another node's", sessions, Change{Kind: Upserted, Origin: "other"}, true},
		{"sessions: of no known origin", sessions, Change{Kind: Flushed}, true},
		{"sessions: its own", sessions, Change{Kind: Upserted, Origin: "me"}, false},
		{"sessions: its own flush", sessions, Change{Kind: Flushed, Origin: "me"}, false},
		{"sessions: a record", sessions, Change{Kind: RecordChanged, Origin: "other"}, false},
		{"sessions: subscribed, of its own origin", sessions, Change{Kind: Subscribed, Origin: "me"}, true},
		{"records: its own record", records, Change{Kind: RecordChanged, Origin: "me"}, true},
		{"records: a session", records, Change{Kind: Upserted}, false},
		{"records: subscribed", records, Change{Kind: Subscribed}, true},
	} {
		if got := tc.in.Wants(tc.c); got != tc.want {
			t.Errorf("%s: Wants = %v, want %v", tc.name, got, tc.want)
		}
	}
	ctx := context.Background()
	if got := InterestOf(ctx); got.IgnoreOrigin != "" || got.Kinds != nil {
		t.Errorf("InterestOf(a context without one) = %+v, want the zero Interest", got)
	}
	if got := InterestOf(WithInterest(ctx, sessions)); got.IgnoreOrigin != "me" || len(got.Kinds) != 3 {
		t.Errorf("InterestOf(WithInterest(sessions)) = %+v", got)
	}
}
