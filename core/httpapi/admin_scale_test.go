package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// listMeter measures the List calls that reach the store: how large a page was asked
// for and answered, and how many were in flight at once.
type listMeter struct {
	usersessions.Provider

	mu                  sync.Mutex
	calls, inFlight     int
	maxInFlight         int
	maxLimit, maxAnswer int
}

func (m *listMeter) List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error) {
	m.mu.Lock()
	m.calls++
	m.inFlight++
	m.maxInFlight = max(m.maxInFlight, m.inFlight)
	m.maxLimit = max(m.maxLimit, p.Limit)
	m.mu.Unlock()
	page, err := m.Provider.List(ctx, f, p)
	m.mu.Lock()
	m.inFlight--
	m.maxAnswer = max(m.maxAnswer, len(page))
	m.mu.Unlock()
	return page, err
}

func (m *listMeter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls, m.maxInFlight, m.maxLimit, m.maxAnswer = 0, 0, 0, 0
}

func (m *listMeter) measured() (calls, maxInFlight, maxLimit, maxAnswer int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls, m.maxInFlight, m.maxLimit, m.maxAnswer
}

// TestAdminListsHundredThousandSessions lists one realm's 100,000 sessions, stored in
// PostgreSQL, through the paged admin API: every session is seen exactly once, and the
// server never asks the store for more than one page, nor holds two at once.
func TestAdminListsHundredThousandSessions(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("fills PostgreSQL with 100,000 sessions")
	}
	const (
		total = 100_000
		batch = 500
		page  = admin.MaxResults
	)
	// The fill is 200 batch inserts on a machine other tests load too: a statement may
	// wait longer than the production bound of 5 s for its commit.
	meter := &listMeter{Provider: pgStore(t, postgres.OptStatementTimeout, "2m")}
	s := newStack(t, withStore(meter), withRealm(withUUIDs))
	svc := admin.New(admin.Deps{Store: meter, Sessions: s.cache, Realms: s.realms, Now: s.clock.Now})
	srv := newAdminServer(t, svc)

	started := time.Now()
	now := s.clock.Now()
	// A few writers at once, as the runtime's many requests are: PostgreSQL commits them
	// side by side.
	batches := make(chan int)
	errs := make(chan error, 4)
	var writers sync.WaitGroup
	for range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for b := range batches {
				if err := createBatch(s.ctx, meter, b*batch, batch, now); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for b := 0; b < total/batch && len(errs) == 0; b++ {
		batches <- b
	}
	close(batches)
	writers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("stored %d sessions in %v", total, time.Since(started).Round(time.Millisecond))

	t.Run("the realm's sessions, by the next link", func(t *testing.T) {
		meter.reset()
		seen := make(map[string]int, total)
		order := make([]string, 0, total)
		next := fmt.Sprintf("/admin/realms/%s/sessions?max=%d", realmName, page)
		requests := 0
		started := time.Now()
		for next != "" {
			var reps []admin.SessionRep
			r := srv.do(t, call{method: http.MethodGet, path: next, header: http.Header{"Authorization": {"Bearer " + adminToken}}})
			r.decode(t, http.StatusOK, &reps)
			if len(reps) > page {
				t.Fatalf("a page of %d sessions; max is %d", len(reps), page)
			}
			for _, rep := range reps {
				seen[rep.ID]++
				order = append(order, rep.ID)
			}
			next = linkNext(t, r)
			if requests++; requests > total/page+2 {
				t.Fatal("more pages than there are sessions")
			}
		}
		t.Logf("listed in %d requests, %v", requests, time.Since(started).Round(time.Millisecond))
		if len(seen) != total || len(order) != total {
			t.Fatalf("saw %d distinct sessions in %d entries, want %d once each", len(seen), len(order), total)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("session %s seen %d times", id, n)
			}
		}
		if !slices.IsSorted(order) {
			t.Error("the pages are not in id order")
		}
		calls, inFlight, limit, answer := meter.measured()
		if limit > page || answer > page || inFlight > 1 {
			t.Errorf("the store was asked for pages of up to %d, answered up to %d, with %d calls in flight at once; want at most %d, and one", limit, answer, inFlight, page)
		}
		if calls != requests {
			t.Errorf("%d store listings for %d pages, want one each", calls, requests)
		}
	})

	t.Run("first= far into a client's sessions", func(t *testing.T) {
		// Walked to in pages of the service's page size (500): ten store listings.
		const skip = 5_000
		meter.reset()
		var reps []admin.SessionRep
		r := srv.do(t, adminCall(http.MethodGet, realmName, fmt.Sprintf("/clients/%s/user-sessions?first=%d&max=%d", confidentialUUID, skip, page), adminToken, ""))
		r.decode(t, http.StatusOK, &reps)
		if len(reps) != page || reps[0].ID != fmt.Sprintf("s-%06d", skip) || reps[page-1].ID != fmt.Sprintf("s-%06d", skip+page-1) {
			t.Fatalf("first=%d&max=%d answered %d sessions from %s", skip, page, len(reps), reps[0].ID)
		}
		_, inFlight, limit, answer := meter.measured()
		if limit > page || answer > page || inFlight > 1 {
			t.Errorf("walking to first= read pages of up to %d (answered %d, %d in flight); want at most %d, one at a time", limit, answer, inFlight, page)
		}
		var count struct{ Count int64 }
		srv.do(t, adminCall(http.MethodGet, realmName, "/clients/"+confidentialUUID+"/session-count", adminToken, "")).decode(t, http.StatusOK, &count)
		if count.Count != total {
			t.Errorf("session-count %d, want %d", count.Count, total)
		}
	})
}

// createBatch stores n sessions of confidential, numbered from first, with the store's
// Create.
func createBatch(ctx context.Context, store usersessions.Provider, first, n int, now time.Time) error {
	sessions := make([]*usersessions.UserSession, n)
	for i := range sessions {
		id := fmt.Sprintf("s-%06d", first+i)
		sessions[i] = &usersessions.UserSession{
			ID: id, RealmID: realmName, UserID: fmt.Sprintf("u-%d", (first+i)%5000), LoginUsername: "user",
			State: usersessions.LoggedIn, Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour),
			Clients: map[string]*usersessions.ClientSession{confidential: {
				UserSessionID: id, RealmID: realmName, ClientID: confidential,
				Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour),
			}},
		}
	}
	errs, err := store.Create(ctx, sessions)
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}
