package admin

import (
	"context"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/core/session"
)

// recordingEnds records what Shared Signals receivers would be told.
type recordingEnds struct {
	mu   sync.Mutex
	got  []session.Ended
	fail error
}

func (e *recordingEnds) SessionsEnded(_ context.Context, ends []session.Ended) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ends...)
	return e.fail
}

// TestEndsCarryWhoEndedTheSessionAndWhy: each way of ending a session tells Shared Signals
// receivers its own initiating entity (CAEP: admin, user, policy, system) and reason, and the
// logout event says the same reason. Before, a person ending their own session through the
// account API was reported as an administrator, and a reused code as the user.
func TestEndsCarryWhoEndedTheSessionAndWhy(t *testing.T) {
	reused := session.Cause{Initiator: session.InitiatorPolicy, Reason: "authorization code reuse"}
	own := session.Cause{Initiator: session.InitiatorUser, Reason: "account logout-session"}
	cases := []struct {
		name          string
		end           func(s *Service, id string) error
		wantInitiator string
		wantReason    string
	}{
		{"admin API", func(s *Service, id string) error {
			_, err := s.LogoutSession(context.Background(), "acme", id, false)
			return err
		}, session.InitiatorAdmin, "admin logout-session"},
		{"admin logout of a user", func(s *Service, id string) error {
			_, err := s.LogoutUser(context.Background(), "acme", "u-"+id)
			return err
		}, session.InitiatorAdmin, "admin logout-user"},
		{"the person through the account API", func(s *Service, id string) error {
			_, err := s.LogoutSessionBecause(context.Background(), "acme", id, false, own)
			return err
		}, session.InitiatorUser, "account logout-session"},
		{"a login flow's rule", func(s *Service, id string) error {
			return s.EndSession(context.Background(), "acme", id, false, reused)
		}, session.InitiatorPolicy, "authorization code reuse"},
		{"a session limit", func(s *Service, id string) error {
			return s.EndForLimit(context.Background(), "acme", id, false, "user")
		}, session.InitiatorPolicy, "session limit user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, _ := newSignOutAll(t, 0, "s1")
			ends := &recordingEnds{}
			events := &recordingEvents{}
			s.ends, s.events = ends, events
			if err := c.end(s, "s1"); err != nil {
				t.Fatal(err)
			}
			if len(ends.got) != 1 {
				t.Fatalf("receivers told of %d ended sessions, want 1: %+v", len(ends.got), ends.got)
			}
			if got := ends.got[0]; got.SessionID != "s1" || got.Initiator != c.wantInitiator || got.Reason != c.wantReason {
				t.Errorf("told %+v, want session s1 ended by %q for %q", got, c.wantInitiator, c.wantReason)
			}
			if len(events.got) != 1 || events.got[0].Type != session.EventLogout || events.got[0].Reason != c.wantReason {
				t.Errorf("logout events %+v, want one with reason %q", events.got, c.wantReason)
			}
		})
	}
}

// recordingEvents records the session events an admin action emits.
type recordingEvents struct {
	mu  sync.Mutex
	got []session.Event
}

func (e *recordingEvents) Emit(ev session.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}
