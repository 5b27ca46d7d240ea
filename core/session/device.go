package session

import (
	"strings"
	"unicode/utf8"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// Where a session was last used from. The user session keeps the address and user agent of
// its login (UserSession.IPAddress, UserAgent); a refresh records its own in the refreshed
// client session's notes, and only when they differ from what that client session (or,
// before its first note, the login) already says: a client refreshing from where it always
// does writes nothing more than the touch it writes anyway. Keeping them in the client
// session, which a refresh with rotation writes in any case and which every store keeps
// with its notes, needs no change of the storage contract or its schema. LastSeen reads
// them back.
const (
	NoteLastIP        = "sessiond.last_ip"
	NoteLastUserAgent = "sessiond.last_user_agent"
)

// maxSeenUserAgent bounds a recorded user agent: real ones are a few hundred bytes, and a
// caller must not grow a session's row by sending a long header.
const maxSeenUserAgent = 512

// recordSeen records in cs, a copy being planned, the address and user agent a refresh came
// from, where they differ from what cs says; it reports whether it changed cs. "" records
// nothing.
func recordSeen(us *usersessions.UserSession, cs *usersessions.ClientSession, ip, userAgent string) bool {
	if ip == "" && userAgent == "" {
		return false
	}
	ip, userAgent = seenText(ip, 64), seenText(userAgent, maxSeenUserAgent)
	lastIP, lastUA := clientSeen(us, cs)
	newIP, newUA := ip != "" && ip != lastIP, userAgent != "" && userAgent != lastUA
	if !newIP && !newUA {
		return false
	}
	if cs.Notes == nil {
		cs.Notes = map[string]string{}
	}
	if newIP {
		cs.Notes[NoteLastIP] = ip
	}
	if newUA {
		cs.Notes[NoteLastUserAgent] = userAgent
	}
	return true
}

// seenText is s as a store can hold it and at most max bytes: valid UTF-8 without NUL,
// cut at a character boundary.
func seenText(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// clientSeen is where a client session was last refreshed from: its notes, else the login's.
func clientSeen(us *usersessions.UserSession, cs *usersessions.ClientSession) (ip, userAgent string) {
	ip, userAgent = us.IPAddress, us.UserAgent
	if v, ok := cs.Notes[NoteLastIP]; ok {
		ip = v
	}
	if v, ok := cs.Notes[NoteLastUserAgent]; ok {
		userAgent = v
	}
	return ip, userAgent
}

// LastSeen is where a user session was last used from: the address and user agent of the
// latest refresh of any of its client sessions, else of its login.
func LastSeen(us *usersessions.UserSession) (ip, userAgent string) {
	var latest *usersessions.ClientSession
	for _, cs := range us.Clients {
		if cs != nil && (latest == nil || cs.LastRefresh.After(latest.LastRefresh) ||
			cs.LastRefresh.Equal(latest.LastRefresh) && cs.ClientID < latest.ClientID) {
			latest = cs
		}
	}
	if latest == nil {
		return us.IPAddress, us.UserAgent
	}
	return clientSeen(us, latest)
}
