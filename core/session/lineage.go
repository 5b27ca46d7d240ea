package session

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// A client session's refresh-token lineage under Revoke Refresh Token.
//
// Tokens are handed out in generations. The current generation is every refresh token
// handed out since the last rotation; CurrentRefreshToken is the last of them. Presenting
// any token of the current generation rotates: its generation becomes the previous one
// (PreviousRefreshToken is the token presented, RotatedAt the time) and the token handed
// out starts a new current generation. Presenting a token of the previous generation again
// is a reuse: allowed within the realm's grace window after the rotation, or while the
// previous generation has been presented fewer than 1 + Refresh Token Max Reuse times
// (CurrentRefreshTokenUseCount counts those presentations, i.e. the tokens of the current
// generation); the token it hands out joins the current generation. Anything older is a
// stale lineage.
//
// A generation is known by when it started, not by a list of its tokens: core/token gives
// every token a fresh random jti and an iat in whole seconds, and any number of requests
// may reuse a token within the grace window (many tabs, many nodes), so a list of ids
// either grows without bound or forgets tokens it handed out. Every token of this client
// session issued in a later second than the current generation's start belongs to the
// current generation, since only this lineage issues them; one issued before it, in a
// later second than the previous generation's start, to the previous generation. Only the
// tokens issued within the start second itself are ambiguous, so each generation keeps the
// ids of its own tokens issued in that second (at most maxSecondIDs; a reissue past that,
// within the same second, is asked to retry a second later). Storage is therefore bounded
// by two seconds' worth of tokens, whatever the concurrency.
//
// This orders tokens by their issue second, so the nodes sharing a store need clocks that
// agree within a second (as the expiry rules already assume). Lineages written before
// generations had start times (no start note) keep being read by their ids alone, as they
// were; their next rotation or reissue writes the new form.
const (
	noteGeneration              = "sessiond.refresh-token-generation"
	notePreviousGeneration      = "sessiond.refresh-token-previous-generation"
	noteGenerationStart         = "sessiond.refresh-token-generation-start"
	notePreviousGenerationStart = "sessiond.refresh-token-previous-generation-start"
	// maxSecondIDs bounds the ids a generation keeps of its tokens issued in its start
	// second: how many reuses of the previous generation one client session may make in
	// the second of a rotation.
	maxSecondIDs = 256
	// maxUntimedIDs bounds a generation read from a lineage of the old form.
	maxUntimedIDs = 16
)

// step is what a presented refresh token does to its lineage.
type step int

const (
	stepNone    step = iota // rotation is off
	stepRotate              // a token of the current generation: rotate
	stepReissue             // a token of the previous generation, reuse allowed
)

// generation is one generation of a lineage: the ids it keeps and, in the current form,
// the second it started.
type generation struct {
	ids   []string
	start int64 // Unix seconds; meaningful when timed
	timed bool
}

// current and previous read a lineage's two generations.
func current(cs *usersessions.ClientSession) generation {
	return readGeneration(cs, noteGeneration, noteGenerationStart, cs.CurrentRefreshToken)
}

func previous(cs *usersessions.ClientSession) generation {
	return readGeneration(cs, notePreviousGeneration, notePreviousGenerationStart, cs.PreviousRefreshToken)
}

// readGeneration reads a generation from its notes; a lineage written before generations
// were kept (or by another writer) has only its single id.
func readGeneration(cs *usersessions.ClientSession, idsNote, startNote, single string) generation {
	g := generation{ids: strings.Fields(cs.Notes[idsNote])}
	if len(g.ids) == 0 && single != "" {
		g.ids = []string{single}
	}
	if v, ok := cs.Notes[startNote]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			g.start, g.timed = n, true
		}
	}
	return g
}

// holds reports whether a token with id jti issued in second iat is of the current
// generation g.
func (g generation) holds(jti string, iat int64) bool {
	return slices.Contains(g.ids, jti) || (g.timed && iat > g.start)
}

// classify decides what presenting t does under the realm's rotation settings, or refuses
// it. It changes nothing.
func classify(r *realm.Realm, cs *usersessions.ClientSession, t *token.Token, now time.Time) (step, string, *Error) {
	if !r.RevokeRefreshToken {
		return stepNone, "", nil
	}
	jti, iat := t.ID, t.IssuedAt.Unix()
	cur, prev := current(cs), previous(cs)
	switch {
	case len(cur.ids) == 0 && !cur.timed:
		return stepRotate, "", nil // no lineage yet: rotation was turned on since it began
	case cur.holds(jti, iat):
		return stepRotate, "", nil
	case !slices.Contains(prev.ids, jti) && !(prev.timed && cur.timed && iat > prev.start && iat <= cur.start):
		e := errorf(InvalidGrant, "Stale token (%s: a newer refresh token of this client session was already used)", ReuseStaleLineage)
		e.Reuse = ReuseStaleLineage
		return stepNone, "", e
	}
	reuse := ""
	switch {
	case r.RefreshTokenGraceWindow > 0 && now.Before(cs.RotatedAt.Add(r.RefreshTokenGraceWindow)):
		reuse = ReuseWithinGrace
	case cs.CurrentRefreshTokenUseCount < 1+r.RefreshTokenMaxReuse:
		reuse = ReuseAllowed
	default:
		class := ReuseRepeated
		if now.Sub(cs.LastRefresh) < concurrentWithin {
			class = ReuseConcurrent
		}
		e := errorf(InvalidGrant, "Maximum allowed refresh token reuse exceeded (%s: presented %d times, %d allowed)",
			class, cs.CurrentRefreshTokenUseCount+1, 1+r.RefreshTokenMaxReuse)
		e.Reuse = class
		return stepNone, "", e
	}
	return stepReissue, reuse, nil
}

// roomToReissue refuses, for the caller to retry a second later, a reissue that would
// take the current generation past maxSecondIDs ids in its start second.
func roomToReissue(cs *usersessions.ClientSession, now time.Time) *Error {
	if cur := current(cs); cur.timed && now.Unix() <= cur.start && len(cur.ids) >= maxSecondIDs {
		return errorf(TemporarilyUnavailable, "More than %d refresh tokens of this client session in one second; retry in a second", maxSecondIDs)
	}
	return nil
}

// advance records in cs that presenting jti handed out the token issued at now.
func advance(cs *usersessions.ClientSession, st step, jti, issued string, now time.Time) {
	switch st {
	case stepRotate:
		cur := current(cs)
		start := now.Unix()
		if cur.timed {
			// A node whose clock is behind never moves a generation back in time.
			start = max(start, cur.start)
		}
		writeGeneration(cs, notePreviousGeneration, notePreviousGenerationStart, cur)
		writeGeneration(cs, noteGeneration, noteGenerationStart, generation{ids: []string{issued}, start: start, timed: true})
		cs.PreviousRefreshToken, cs.CurrentRefreshToken = jti, issued
		cs.CurrentRefreshTokenUseCount, cs.RotatedAt = 1, now
	case stepReissue:
		cur := current(cs)
		if !cur.timed {
			// A lineage of the old form takes the new one from here: what it handed out
			// so far is in its ids, what it hands out from the next second on is placed by
			// its issue time.
			cur.timed, cur.start = true, now.Unix()
		}
		if now.Unix() <= cur.start {
			// Issued within the start second (or, from a node whose clock is behind, before
			// it): the issue time alone would not place it, the id does.
			cur.ids = append(cur.ids, issued)
		}
		writeGeneration(cs, noteGeneration, noteGenerationStart, cur)
		cs.CurrentRefreshToken = issued
		cs.CurrentRefreshTokenUseCount++
	}
}

// startLineage makes issued, handed out at now, the first token of a new client session's
// lineage.
func startLineage(cs *usersessions.ClientSession, issued string, now time.Time) {
	cs.CurrentRefreshToken, cs.CurrentRefreshTokenUseCount = issued, 0
	cs.PreviousRefreshToken, cs.RotatedAt = "", time.Time{}
	writeGeneration(cs, noteGeneration, noteGenerationStart, generation{ids: []string{issued}, start: now.Unix(), timed: true})
	writeGeneration(cs, notePreviousGeneration, notePreviousGenerationStart, generation{})
}

// writeGeneration stores g in its two notes.
func writeGeneration(cs *usersessions.ClientSession, idsNote, startNote string, g generation) {
	if !g.timed && len(g.ids) > maxUntimedIDs {
		g.ids = g.ids[len(g.ids)-maxUntimedIDs:]
	}
	if cs.Notes == nil {
		cs.Notes = map[string]string{}
	}
	if len(g.ids) == 0 {
		delete(cs.Notes, idsNote)
	} else {
		cs.Notes[idsNote] = strings.Join(g.ids, " ")
	}
	if g.timed {
		cs.Notes[startNote] = strconv.FormatInt(g.start, 10)
	} else {
		delete(cs.Notes, startNote)
	}
}
