package admin

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// memSessions is a realm's sessions in memory, listed in id order. ended, when set, is
// called with each page List returns: another node ending sessions meanwhile.
type memSessions struct {
	mu       sync.Mutex
	sessions map[usersessions.Key]*usersessions.UserSession
	ended    func(page []*usersessions.UserSession)
	block    bool // Delete waits for its context to end
}

func (m *memSessions) List(_ context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error) {
	m.mu.Lock()
	var out []*usersessions.UserSession
	for k, us := range m.sessions {
		if k.RealmID == f.RealmID && k.ID > p.After && k.Offline == (f.Offline == usersessions.OfflineOnly) {
			out = append(out, us)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *usersessions.UserSession) int { return compare(a.ID, b.ID) })
	out = out[:min(len(out), p.Limit)]
	if m.ended != nil {
		m.ended(out)
	}
	return out, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *memSessions) Count(context.Context, usersessions.Filter) (int64, error) { return 0, nil }
func (m *memSessions) CountByClient(context.Context, string, bool, time.Time) (map[string]int64, error) {
	return nil, nil
}

func (m *memSessions) Get(_ context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*usersessions.UserSession, len(keys))
	for i, k := range keys {
		out[i] = m.sessions[k]
	}
	return out, nil
}

func (m *memSessions) Delete(ctx context.Context, keys []usersessions.Key) (int, error) {
	if m.block {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := m.sessions[k]; ok {
			delete(m.sessions, k)
			n++
		}
	}
	return n, nil
}

func (m *memSessions) DeleteClientSessions(context.Context, []usersessions.ClientKey) error {
	return nil
}

func (m *memSessions) end(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, usersessions.Key{RealmID: "acme", ID: id})
}

// recordingPush records the back-channel logouts asked for and how.
type recordingPush struct {
	mu                    sync.Mutex
	logouts               []string // session ids
	inline                int      // Logout calls not under push.Deferred
	logoutAll, noDeadline int
}

func (p *recordingPush) note(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		p.noDeadline++
	}
}

func (p *recordingPush) PushNotBefore(context.Context, string, string) (Report, error) {
	return Report{}, nil
}

func (p *recordingPush) LogoutAll(ctx context.Context, _ string, _ time.Time) (Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.note(ctx)
	p.logoutAll++
	return Report{Succeeded: []string{"https://app.test/admin"}}, nil
}

func (p *recordingPush) Logout(ctx context.Context, _ string, sessions []*usersessions.UserSession) (Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.note(ctx)
	p.inline++
	for _, us := range sessions {
		p.logouts = append(p.logouts, us.ID)
	}
	return Report{Succeeded: []string{"https://app.test/backchannel"}}, nil
}

func (p *recordingPush) QueueLogout(ctx context.Context, _ string, sessions []*usersessions.UserSession) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.note(ctx)
	for _, us := range sessions {
		p.logouts = append(p.logouts, us.ID)
	}
	return len(sessions), nil
}

func (p *recordingPush) Deliveries(context.Context, usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	return nil, nil
}

func newSignOutAll(t *testing.T, timeout time.Duration, ids ...string) (*Service, *memSessions, *recordingPush) {
	t.Helper()
	rs, _, err := realm.NewRealms(&realm.Realm{Name: "acme", Enabled: true, Clients: []*realm.Client{{ClientID: "app", Enabled: true, PublicClient: true}}})
	if err != nil {
		t.Fatal(err)
	}
	m := &memSessions{sessions: map[usersessions.Key]*usersessions.UserSession{}}
	for _, id := range ids {
		m.sessions[usersessions.Key{RealmID: "acme", ID: id}] = &usersessions.UserSession{ID: id, RealmID: "acme", UserID: "u-" + id}
	}
	off := &usersessions.UserSession{ID: "o1", RealmID: "acme", UserID: "u-o1", Offline: true}
	m.sessions[off.Key()] = off
	p := &recordingPush{}
	return New(Deps{Store: m, Sessions: m, Realms: rs, Push: p, PageSize: 2, LogoutAllTimeout: timeout}), m, p
}

// TestLogoutAllQueuesWhatItEnded: sign out all queues the back-channel logouts of the
// sessions it removed, not attempting them in the call, leaves out sessions another caller
// ended after they were listed, keeps offline sessions, and runs under a deadline; its
// report is the clients' admin URLs' (k_logout).
func TestLogoutAllQueuesWhatItEnded(t *testing.T) {
	s, m, p := newSignOutAll(t, 0, "s1", "s2", "s3", "s4", "s5")
	m.ended = func(page []*usersessions.UserSession) {
		for _, us := range page {
			if us.ID == "s3" {
				m.end("s3") // another node signs s3 out between the listing and the removal
			}
		}
	}
	res, err := s.LogoutAll(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 4 || res.PushErr != nil {
		t.Errorf("result %+v, want 4 removed and no push error", res)
	}
	if !slices.Equal(res.Report.Succeeded, []string{"https://app.test/admin"}) || len(res.Report.Failed) != 0 {
		t.Errorf("report %+v, want the admin URL's k_logout alone", res.Report)
	}
	if want := []string{"s1", "s2", "s4", "s5"}; !slices.Equal(p.logouts, want) {
		t.Errorf("back-channel logouts for %v, want %v: only the sessions this call ended", p.logouts, want)
	}
	if p.inline != 0 {
		t.Errorf("%d back-channel logout calls attempted in the call, want all queued (push.Deferred)", p.inline)
	}
	if p.noDeadline != 0 {
		t.Errorf("%d push calls without a deadline", p.noDeadline)
	}
	if p.logoutAll != 1 {
		t.Errorf("%d k_logout notices, want 1", p.logoutAll)
	}
	if got, _ := m.Get(context.Background(), []usersessions.Key{{RealmID: "acme", ID: "o1", Offline: true}}); got[0] == nil {
		t.Error("the offline session was ended")
	}

	// A user's logout still attempts its back-channel logouts in the call, as Keycloak does.
	m.ended = nil
	m.sessions[usersessions.Key{RealmID: "acme", ID: "s9"}] = &usersessions.UserSession{ID: "s9", RealmID: "acme", UserID: "u-s9"}
	if _, err := s.LogoutUser(context.Background(), "acme", "u-s9"); err != nil {
		t.Fatal(err)
	}
	if p.inline != 1 {
		t.Errorf("a user's logout made %d inline back-channel logout calls, want 1", p.inline)
	}
}

// TestLogoutAllHasADeadline: a sign out all that outlasts LogoutAllTimeout fails with the
// deadline rather than running on, even with a caller that never gives up.
func TestLogoutAllHasADeadline(t *testing.T) {
	s, m, _ := newSignOutAll(t, 50*time.Millisecond, "s1")
	m.block = true
	done := make(chan error, 1)
	go func() {
		_, err := s.LogoutAll(context.Background(), "acme")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("LogoutAll = %v, want the deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LogoutAll ran on past its deadline")
	}
	if s2 := New(Deps{Realms: s.realms}); s2.logoutAllTimeout != DefaultLogoutAllTimeout {
		t.Errorf("default timeout %v, want %v", s2.logoutAllTimeout, DefaultLogoutAllTimeout)
	}
}
