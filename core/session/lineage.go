package session

import (
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
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
// Generations are sets, not single ids, because core/token gives every token a fresh jti:
// two tabs that refresh at once get two tokens, and either must go on working. The sets
// live in client-session notes, bounded by maxGeneration.
const (
	noteGeneration         = "sessiond.refresh-token-generation"
	notePreviousGeneration = "sessiond.refresh-token-previous-generation"
	// maxGeneration bounds a generation: past it the oldest ids are forgotten (and become
	// stale). Only reuses inside the grace window can grow a generation that far.
	maxGeneration = 16
)

// step is what a presented refresh token does to its lineage.
type step int

const (
	stepNone    step = iota // rotation is off
	stepRotate              // a token of the current generation: rotate
	stepReissue             // a token of the previous generation, reuse allowed
)

// classify decides what presenting jti does under the realm's rotation settings, or refuses
// it. It changes nothing.
func classify(r *realm.Realm, cs *usersessions.ClientSession, jti string, now time.Time) (step, string, *Error) {
	if !r.RevokeRefreshToken {
		return stepNone, "", nil
	}
	current := generation(cs, noteGeneration, cs.CurrentRefreshToken)
	previous := generation(cs, notePreviousGeneration, cs.PreviousRefreshToken)
	switch {
	case len(current) == 0 || slices.Contains(current, jti):
		return stepRotate, "", nil
	case !slices.Contains(previous, jti):
		e := errorf(InvalidGrant, "Stale token (%s: a newer refresh token of this client session was already used)", ReuseStaleLineage)
		e.Reuse = ReuseStaleLineage
		return stepNone, "", e
	case r.RefreshTokenGraceWindow > 0 && now.Before(cs.RotatedAt.Add(r.RefreshTokenGraceWindow)):
		return stepReissue, ReuseWithinGrace, nil
	case cs.CurrentRefreshTokenUseCount < 1+r.RefreshTokenMaxReuse:
		return stepReissue, ReuseAllowed, nil
	}
	class := ReuseRepeated
	if now.Sub(cs.LastRefresh) < concurrentWithin {
		class = ReuseConcurrent
	}
	e := errorf(InvalidGrant, "Maximum allowed refresh token reuse exceeded (%s: presented %d times, %d allowed)",
		class, cs.CurrentRefreshTokenUseCount+1, 1+r.RefreshTokenMaxReuse)
	e.Reuse = class
	return stepNone, "", e
}

// advance records in cs that presenting jti handed out the token issued.
func advance(cs *usersessions.ClientSession, st step, jti, issued string, now time.Time) {
	switch st {
	case stepRotate:
		prev := generation(cs, noteGeneration, cs.CurrentRefreshToken)
		setGeneration(cs, notePreviousGeneration, prev)
		setGeneration(cs, noteGeneration, []string{issued})
		cs.PreviousRefreshToken, cs.CurrentRefreshToken = jti, issued
		cs.CurrentRefreshTokenUseCount, cs.RotatedAt = 1, now
	case stepReissue:
		setGeneration(cs, noteGeneration, append(generation(cs, noteGeneration, cs.CurrentRefreshToken), issued))
		cs.CurrentRefreshToken = issued
		cs.CurrentRefreshTokenUseCount++
	}
}

// startLineage makes issued the first token of a new client session's lineage.
func startLineage(cs *usersessions.ClientSession, issued string) {
	cs.CurrentRefreshToken, cs.CurrentRefreshTokenUseCount = issued, 0
	cs.PreviousRefreshToken, cs.RotatedAt = "", time.Time{}
	setGeneration(cs, noteGeneration, []string{issued})
	setGeneration(cs, notePreviousGeneration, nil)
}

// generation reads a generation from its note; a lineage written before generations were
// kept (or by another writer) has only its single id.
func generation(cs *usersessions.ClientSession, note, single string) []string {
	if ids := strings.Fields(cs.Notes[note]); len(ids) > 0 {
		return ids
	}
	if single == "" {
		return nil
	}
	return []string{single}
}

func setGeneration(cs *usersessions.ClientSession, note string, ids []string) {
	if len(ids) > maxGeneration {
		ids = ids[len(ids)-maxGeneration:]
	}
	if len(ids) == 0 {
		delete(cs.Notes, note)
		return
	}
	if cs.Notes == nil {
		cs.Notes = map[string]string{}
	}
	cs.Notes[note] = strings.Join(ids, " ")
}
