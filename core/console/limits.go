package console

// The Session limits page: the realm's caps on concurrent sessions (core/sessionlimit)
// beside the live counts they are held against, as GET session-limits answers them.

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/sessionlimit"
)

// limitRow is one limit against one count.
type limitRow struct {
	Limit    string // the realm file's attribute
	Scope    string // what is counted: the realm, a client, a user, a user on a client
	Max      string // "none" when unset
	Behavior string
	Online   int64
	Offline  string // the offline count, or why it is not counted
	// Reached: a count is at the limit; the next login is refused or ends the oldest.
	Reached bool
}

type limitsView struct {
	layout
	User         string
	CountOffline bool
	Message      string
	Rows         []limitRow
}

// limitsPage shows the limits with the realm's counts, every client's, and one user's when
// ?user= names one (a realm's users are not enumerated).
func (c *Console) limitsPage(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	user := strings.TrimSpace(r.URL.Query().Get("user"))
	rep, err := c.admin.SessionLimits(r.Context(), rl.Name, user)
	if err != nil {
		return err
	}
	v := limitsView{layout: c.layoutFor(r, s, "Session limits"), User: user, CountOffline: rep.CountOffline, Message: rep.ErrorMessage}
	row := func(name, scope string, n admin.Counts) {
		l := rep.Limits[name]
		lr := limitRow{Limit: name, Scope: scope, Max: "none", Online: n.Online, Offline: "not counted (countOffline is off)"}
		if l.Max > 0 {
			lr.Max, lr.Behavior = strconv.Itoa(l.Max), behaviorName(l.Behavior)
			lr.Reached = n.Online >= int64(l.Max) || (rep.CountOffline && n.Offline >= int64(l.Max))
		}
		if rep.CountOffline {
			lr.Offline = strconv.FormatInt(n.Offline, 10)
		}
		v.Rows = append(v.Rows, lr)
	}
	row(sessionlimit.Realm, "the realm, all users", rep.Realm)
	for _, cc := range rep.Clients {
		row(sessionlimit.Client, "client "+cc.ClientID+", all users", cc.Counts)
	}
	if u := rep.User; u != nil {
		row(sessionlimit.UserRealm, "user "+u.UserID+" in the realm", u.Counts)
		for _, cc := range u.Clients {
			row(sessionlimit.UserClient, "user "+u.UserID+" on client "+cc.ClientID, cc.Counts)
		}
	}
	c.render(w, http.StatusOK, "limits", v)
	return nil
}

func behaviorName(b string) string {
	if b == realm.TerminateOldestSession {
		return "terminate the oldest session"
	}
	return "deny the new session"
}
