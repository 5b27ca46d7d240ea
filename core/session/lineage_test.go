package session

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// refreshAll presents raw n times at once and returns the grants, failing on any error.
func (f *fixture) refreshAll(raw string, n int) []*Grant {
	f.t.Helper()
	got := make([]*Grant, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = f.refresh("app", raw)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			f.t.Fatalf("refresh %d of %d at once: %v", i+1, n, err)
		}
	}
	return got
}

// TestLineageHoldsForAnyConcurrency: issue 15, "with a rotation grace window, more than 16
// concurrent refreshes leave tokens that later count as stale lineage". However many
// refreshes of one token run at once within the grace window, and whether the clock stands
// or moves between them, every token handed out is of the current generation: each one
// refreshes, and then the rule applies to the generation as a whole.
func TestLineageHoldsForAnyConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		tick time.Duration // the clock moves this much after each round
	}{
		{"17 at once", 17, 0},
		{"64 at once", 64, 0},
		{"100 at once, the clock moving between rounds", 100, 700 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, rotation(0, 30*time.Second))
			g := f.open(OpenRequest{})
			f.clock.Advance(tc.tick)
			first := f.refreshAll(g.RefreshToken, tc.n)
			f.clock.Advance(tc.tick)
			// Each token handed out refreshes: the first rotates, the others are reuses of
			// the generation it retired, within the grace window.
			var second []*Grant
			for i, g := range first {
				next, err := f.refresh("app", g.RefreshToken)
				if err != nil {
					t.Fatalf("token %d of %d: %v", i+1, tc.n, err)
				}
				second = append(second, next)
			}
			if second[0].Reuse != "" {
				t.Errorf("the first token of the generation did not rotate: reuse %q", second[0].Reuse)
			}
			// Then the rule holds for the generation as a whole: one of its tokens rotates,
			// another presented after the grace window is a reuse past Refresh Token Max
			// Reuse 0, and the first generation is two rotations back.
			f.clock.Advance(time.Minute)
			f.mustRefresh("app", second[len(second)-1].RefreshToken)
			f.clock.Advance(time.Minute)
			_, err := f.refresh("app", second[0].RefreshToken)
			refusal(t, err, InvalidGrant, "Maximum allowed refresh token reuse exceeded (reuse")
			_, err = f.refresh("app", first[len(first)/2].RefreshToken)
			refusal(t, err, InvalidGrant, "Stale token")
			// What the lineage keeps stays bounded by one second's tokens.
			cs := f.session(g.SessionID, false).Clients["app"]
			for _, note := range []string{noteGeneration, notePreviousGeneration} {
				if n := len(strings.Fields(cs.Notes[note])); n > maxSecondIDs {
					t.Errorf("%s keeps %d ids", note, n)
				}
			}
		})
	}
}

// TestLineageSecondCap: a generation keeps at most maxSecondIDs ids of the tokens issued in
// the second it started; one more reuse in that second is asked to retry (503), changes
// nothing, and goes through a second later.
func TestLineageSecondCap(t *testing.T) {
	f := newFixture(t, rotation(0, time.Minute))
	g := f.open(OpenRequest{})
	f.clock.Advance(time.Second)
	var handed []*Grant
	for range maxSecondIDs {
		handed = append(handed, f.mustRefresh("app", g.RefreshToken))
	}
	before := f.sessions()
	_, err := f.refresh("app", g.RefreshToken)
	refusal(t, err, TemporarilyUnavailable, "retry in a second")
	f.unchanged(before)
	f.clock.Advance(time.Second)
	handed = append(handed, f.mustRefresh("app", g.RefreshToken))
	for i, h := range handed {
		f.clock.Advance(10 * time.Millisecond) // a hundred a second, below the cap
		if _, err := f.refresh("app", h.RefreshToken); err != nil {
			t.Fatalf("token %d: %v", i+1, err)
		}
	}
}

// TestLineageAcrossSeconds: the generations are told apart by their issue second and, within
// the second of a rotation, by id: a token retired in the same second as the rotation is
// still the previous generation, and one of the generation before is stale.
func TestLineageAcrossSeconds(t *testing.T) {
	f := newFixture(t, rotation(0, 0))
	g1 := f.open(OpenRequest{})
	f.clock.Advance(400 * time.Millisecond)
	g2 := f.mustRefresh("app", g1.RefreshToken) // same second as g1
	f.clock.Advance(2 * time.Second)
	g3 := f.mustRefresh("app", g2.RefreshToken)
	f.clock.Advance(100 * time.Millisecond)
	_, err := f.refresh("app", g2.RefreshToken) // the previous generation, reused once too often
	refusal(t, err, InvalidGrant, "Maximum allowed refresh token reuse exceeded")
	_, err = f.refresh("app", g1.RefreshToken) // two generations back, issued in g2's second
	refusal(t, err, InvalidGrant, "Stale token")
	f.mustRefresh("app", g3.RefreshToken)
}

// TestLineageOldForm: a lineage stored before generations had start times (ids only) is read
// as it was written: its ids are its generations.
func TestLineageOldForm(t *testing.T) {
	f := newFixture(t, rotation(0, 0))
	g1 := f.open(OpenRequest{})
	g2 := f.mustRefresh("app", g1.RefreshToken)
	f.clock.Advance(time.Minute)
	g3 := f.mustRefresh("app", g2.RefreshToken)
	// Rewrite the lineage in the old form: current {g3}, previous {g2}, no start times.
	cs := f.session(g1.SessionID, false).Clients["app"]
	delete(cs.Notes, noteGenerationStart)
	delete(cs.Notes, notePreviousGenerationStart)
	if errs, err := f.store.PutClientSessions(f.ctx, []*usersessions.ClientSession{cs}); firstErr(errs, err) != nil {
		t.Fatal(errs, err)
	}
	f.clock.Advance(time.Minute)
	_, err := f.refresh("app", g1.RefreshToken)
	refusal(t, err, InvalidGrant, "Stale token")
	_, err = f.refresh("app", g2.RefreshToken)
	refusal(t, err, InvalidGrant, "Maximum allowed refresh token reuse exceeded")
	g4 := f.mustRefresh("app", g3.RefreshToken)
	f.clock.Advance(time.Minute)
	f.mustRefresh("app", g4.RefreshToken)
	if cs := f.session(g1.SessionID, false).Clients["app"]; cs.Notes[noteGenerationStart] == "" {
		t.Error("the rotation did not write the new form")
	}
}

// TestLineageOldFormReissues: a reissue within the grace window on a lineage of the old form
// turns it into the new one, so the 16-id bound of the old form no longer loses tokens.
func TestLineageOldFormReissues(t *testing.T) {
	f := newFixture(t, rotation(0, time.Minute))
	g1 := f.open(OpenRequest{})
	g2 := f.mustRefresh("app", g1.RefreshToken)
	cs := f.session(g1.SessionID, false).Clients["app"]
	delete(cs.Notes, noteGenerationStart)
	delete(cs.Notes, notePreviousGenerationStart)
	if errs, err := f.store.PutClientSessions(f.ctx, []*usersessions.ClientSession{cs}); firstErr(errs, err) != nil {
		t.Fatal(errs, err)
	}
	handed := []*Grant{g2}
	for range 40 {
		f.clock.Advance(100 * time.Millisecond)
		handed = append(handed, f.mustRefresh("app", g1.RefreshToken))
	}
	for i, h := range handed {
		if _, err := f.refresh("app", h.RefreshToken); err != nil {
			t.Fatalf("token %d: %v", i+1, err)
		}
	}
}

// racing is the memory provider where every write of a client session loses a version race:
// to another refresh's commit made just before (progress), or to nothing at all (a store
// that reports conflicts wrongly).
type racing struct {
	usersessions.Provider
	progress bool
	puts     *int
}

func (r racing) PutClientSessions(ctx context.Context, cs []*usersessions.ClientSession) ([]error, error) {
	*r.puts++
	if r.progress {
		got, err := r.Provider.Get(ctx, []usersessions.Key{cs[0].Key().Session})
		if err != nil || got[0] == nil {
			return nil, fmt.Errorf("racing store: %v", err)
		}
		rival := *got[0].Clients[cs[0].ClientID]
		if errs, err := r.Provider.PutClientSessions(ctx, []*usersessions.ClientSession{&rival}); firstErr(errs, err) != nil {
			return nil, fmt.Errorf("racing store: %v %v", errs, err)
		}
	}
	return []error{fmt.Errorf("racing store: %w", spi.ErrConflict)}, nil
}

// TestRefreshRetryBounds: a refresh that keeps losing version races to other refreshes'
// commits retries up to maxRaced more times than one that loses to nothing, then asks to be
// retried (503) rather than answer invalid_grant; against a store reporting conflicts
// wrongly it gives up after maxAttempts, as before.
func TestRefreshRetryBounds(t *testing.T) {
	for _, tc := range []struct {
		progress bool
		puts     int
		code     string
	}{
		{true, maxRaced + maxAttempts, TemporarilyUnavailable},
		{false, maxAttempts, InvalidGrant},
	} {
		t.Run(fmt.Sprintf("progress %v", tc.progress), func(t *testing.T) {
			f := newFixture(t, rotation(0, time.Minute))
			g := f.open(OpenRequest{})
			puts := 0
			svc := New(Deps{Store: racing{Provider: f.store, progress: tc.progress, puts: &puts}, Realms: f.realms,
				Tokens: f.tokens, Now: f.clock.Now, PersistentSessions: true})
			_, err := svc.Refresh(f.ctx, req("app", g.RefreshToken))
			refusal(t, err, tc.code, "")
			if puts != tc.puts {
				t.Errorf("%d attempts, want %d", puts, tc.puts)
			}
		})
	}
}
