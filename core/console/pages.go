package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/useragent"
)

var funcs = template.FuncMap{
	"ms":   func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC") },
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"path": pathEscape,
	"dur":  func(seconds int64) string { return (time.Duration(seconds) * time.Second).String() },
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return url.PathEscape(s) }

// realm returns the page's realm.
func (c *Console) realm(r *http.Request) (*realm.Realm, error) {
	name := r.PathValue("realm")
	rl, ok := c.realms.Realm(name)
	if !ok {
		return nil, fmt.Errorf("realm %q: %w", name, admin.ErrUnknownRealm)
	}
	return rl, nil
}

// row is one session as the tables show it.
type row struct {
	admin.SessionRep
	Offline bool
	Device  string
	Clients []string // clientIds, sorted
}

func rowsOf(reps []admin.SessionRep, offline bool) []row {
	out := make([]row, 0, len(reps))
	for _, rep := range reps {
		clients := make([]string, 0, len(rep.Clients))
		for _, id := range rep.Clients {
			clients = append(clients, id)
		}
		slices.Sort(clients)
		out = append(out, row{SessionRep: rep, Offline: offline, Device: useragent.Parse(rep.UserAgent).String(), Clients: clients})
	}
	return out
}

// Session types of the Sessions page's filter, as Keycloak's console names them.
const (
	typeAll     = "all"
	typeRegular = "regular"
	typeOffline = "offline"
)

// maxPageSize is the largest page a console page lists: a page is read with one session
// more than it shows (onePage), and rendered whole.
const maxPageSize = 500

// pageSizeOf reads max=, 1 to maxPageSize; the console's page size when absent.
func (c *Console) pageSizeOf(r *http.Request) (int, error) {
	v := r.URL.Query().Get("max")
	if v == "" {
		return c.pageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, badInput("max must be a whole number from 1 to %d, not %q", maxPageSize, v)
	}
	return n, nil
}

// pager links a paged listing's pages.
type pager struct {
	Next  string // the next page's URL, "" on the last
	First string // the first page's URL, "" on the first
}

// pagerOf links the page r asked for to the next one, whose cursor is next ("" for none),
// and back to the first.
func pagerOf(r *http.Request, next string) pager {
	var p pager
	if next != "" {
		p.Next = pageURL(r, next)
	}
	if r.URL.Query().Get("after") != "" {
		p.First = pageURL(r, "")
	}
	return p
}

type sessionsView struct {
	layout
	pager
	Type       string
	Rows       []row
	Client     *admin.ClientRep
	ClientPath string
	// The client's own not-before policy (the client page), and why it cannot be shown.
	NotBefore     time.Time
	NotBeforeNote string
}

// sessionList is the Sessions page: one page of the realm's sessions of a type, read
// through the admin service's cursor paging, so that a page costs the same at any realm
// size. "all" lists the regular sessions, then the offline ones; its cursor says which
// (r.<id> or o.<id>).
func (c *Console) sessionList(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		typ = typeAll
	}
	size, err := c.pageSizeOf(r)
	if err != nil {
		return err
	}
	rows, next, err := c.sessionsPage(r.Context(), rl.Name, typ, q.Get("after"), size)
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "sessions", sessionsView{layout: c.layoutFor(r, s, "Sessions"), pager: pagerOf(r, next), Type: typ, Rows: rows})
	return nil
}

// pageURL is the page's own URL with another cursor.
func pageURL(r *http.Request, after string) string {
	q := r.URL.Query()
	q.Del("after")
	if after != "" {
		q.Set("after", after)
	}
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

func (c *Console) sessionsPage(ctx context.Context, realmName, typ, after string, size int) ([]row, string, error) {
	switch typ {
	case typeRegular, typeOffline:
		return c.onePage(ctx, realmName, typ == typeOffline, after, size, "")
	case typeAll:
	default:
		return nil, "", badInput("type must be all, regular or offline, not %q", typ)
	}
	phase, id := "r", ""
	if after != "" {
		var ok bool
		phase, id, ok = strings.Cut(after, ".")
		if !ok || (phase != "r" && phase != "o") || (phase == "r" && id == "") {
			return nil, "", badInput("this page link is not one the console made (after=%q); start from the first page", after)
		}
	}
	if phase == "o" {
		return c.onePage(ctx, realmName, true, id, size, "o.")
	}
	rows, next, err := c.onePage(ctx, realmName, false, id, size, "r.")
	if err != nil || next != "" {
		return rows, next, err
	}
	// The regular sessions end on this page: the offline ones follow. With the page
	// already full, one offline session read tells whether there is a next page.
	room := size - len(rows)
	off, _, err := c.admin.RealmSessions(ctx, realmName, true, admin.Query{Max: room + 1})
	if err != nil {
		return nil, "", err
	}
	if len(off) > room {
		next = "o." // from the first offline session when this page holds none
		if room > 0 {
			next += off[room-1].ID
		}
		off = off[:room]
	}
	return append(rows, rowsOf(off, true)...), next, nil
}

// onePage reads a page of one type of session, and one more to tell whether a next page
// has anything on it; next is the cursor of that page, with prefix, or "".
func (c *Console) onePage(ctx context.Context, realmName string, offline bool, after string, size int, prefix string) ([]row, string, error) {
	reps, _, err := c.admin.RealmSessions(ctx, realmName, offline, admin.Query{Max: size + 1, After: after})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(reps) > size {
		reps = reps[:size]
		next = prefix + reps[size-1].ID
	}
	return rowsOf(reps, offline), next, nil
}

type explainView struct {
	layout
	SessionID string
	*session.Explanation
}

// explainPage is "why does it expire": the explain view (the same as GET
// /realms/{realm}/sessions/{id}/explain) as a page.
func (c *Console) explainPage(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	e, err := c.explain.Explain(r.Context(), rl.Name, r.PathValue("id"))
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "explain", explainView{layout: c.layoutFor(r, s, "Why does it expire"), SessionID: r.PathValue("id"), Explanation: e})
	return nil
}

type clientRow struct {
	admin.ClientRep
	Active, Offline string
}

type clientsView struct {
	layout
	Clients []clientRow
}

// clientList is the Clients page: every client with its active and offline session counts
// (client-session-stats).
func (c *Console) clientList(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	clients, err := c.admin.Clients(r.Context(), rl.Name, "")
	if err != nil {
		return err
	}
	stats, err := c.admin.Stats(r.Context(), rl.Name)
	if err != nil {
		return err
	}
	byClient := map[string]admin.ClientStat{}
	for _, st := range stats {
		byClient[st.ClientID] = st
	}
	v := clientsView{layout: c.layoutFor(r, s, "Clients")}
	for _, cl := range clients {
		st := byClient[cl.ClientID]
		delete(byClient, cl.ClientID)
		v.Clients = append(v.Clients, clientRow{ClientRep: cl, Active: or0(st.Active), Offline: or0(st.Offline)})
	}
	// Sessions of clients no longer configured are counted too, under their clientId.
	for _, st := range stats {
		if _, gone := byClient[st.ClientID]; gone {
			v.Clients = append(v.Clients, clientRow{ClientRep: admin.ClientRep{ID: st.ID, ClientID: st.ClientID}, Active: or0(st.Active), Offline: or0(st.Offline)})
		}
	}
	c.render(w, http.StatusOK, "clients", v)
	return nil
}

func or0(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// clientSessions is a client's Sessions or Offline Access tab, paged.
func (c *Console) clientSessions(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	typ := q.Get("type")
	switch typ {
	case "":
		typ = typeRegular
	case typeRegular, typeOffline:
	default:
		return badInput("type must be regular or offline, not %q", typ)
	}
	size, err := c.pageSizeOf(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	reps, next, err := c.admin.ClientSessions(r.Context(), rl.Name, id, typ == typeOffline, admin.Query{Max: size, After: q.Get("after")})
	if err != nil {
		return err
	}
	var client *admin.ClientRep
	if all, err := c.admin.Clients(r.Context(), rl.Name, ""); err == nil {
		for i := range all {
			if all[i].ID == id {
				client = &all[i]
			}
		}
	}
	v := sessionsView{layout: c.layoutFor(r, s, "Client sessions"), pager: pagerOf(r, next),
		Type: typ, Rows: rowsOf(reps, typ == typeOffline), Client: client, ClientPath: r.URL.Path}
	v.NotBefore, err = c.admin.ClientNotBefore(r.Context(), rl.Name, id)
	switch {
	case errors.Is(err, admin.ErrNotConfigured):
		v.NotBeforeNote = err.Error()
	case err != nil:
		return err
	}
	c.render(w, http.StatusOK, "client", v)
	return nil
}

type userView struct {
	layout
	User    string
	Rows    []row
	Cut     bool // more than maxUserSessions: the first ones are shown
	Regular int
	// Asked is what was searched for when it was a username, not a user id; Candidates
	// are the user ids of a username several users signed in with.
	Asked      string
	Candidates []string
	// Partial: the username lookup stopped at usernameScan sessions.
	Partial bool
	// Consents are the clients the user's offline sessions hold offline tokens of (the
	// Consents tab: revoke one client's offline tokens).
	Consents []string
}

// consents lists the clients of the offline rows.
func (v *userView) consents() {
	for _, rw := range v.Rows {
		if !rw.Offline {
			continue
		}
		for _, c := range rw.Clients {
			if !slices.Contains(v.Consents, c) {
				v.Consents = append(v.Consents, c)
			}
		}
	}
	slices.Sort(v.Consents)
}

// usernameScan bounds the sessions of each type a username lookup reads, a store page at a
// time: sessiond keeps no user directory, so a username is found in the sessions.
const usernameScan = 100000

// usersNamed returns the ids of the users with sessions under that login username, read
// through the realm's sessions by cursor; complete is false when it stopped at
// usernameScan sessions of a type.
func (c *Console) usersNamed(ctx context.Context, realmName, username string) (ids []string, complete bool, err error) {
	complete = true
	for _, offline := range []bool{false, true} {
		after, read := "", 0
		for {
			page, next, err := c.admin.RealmSessions(ctx, realmName, offline, admin.Query{Max: admin.MaxResults, After: after})
			if err != nil {
				return nil, false, err
			}
			for _, rep := range page {
				if rep.Username == username && !slices.Contains(ids, rep.UserID) {
					ids = append(ids, rep.UserID)
				}
			}
			read += len(page)
			if next == "" {
				break
			}
			if read >= usernameScan {
				complete = false
				break
			}
			after = next
		}
	}
	slices.Sort(ids)
	return ids, complete, nil
}

// errEnough stops a user's listing at maxUserSessions.
var errEnough = errors.New("enough sessions read")

// userPage is a user's sessions (Users → Sessions): regular ones, then each client's
// offline ones, at most maxUserSessions in all. sessiond keeps no user directory: a user is
// the user id sessions are stored under; a value with no session under it is looked up as a
// login username in the realm's sessions (as `sessiond admin --user` does), which reads the
// realm a page at a time, up to usernameScan sessions of each type.
func (c *Console) userPage(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	v := userView{layout: c.layoutFor(r, s, "Users"), User: strings.TrimSpace(r.URL.Query().Get("user"))}
	if v.User == "" {
		c.render(w, http.StatusOK, "user", v)
		return nil
	}
	if err := c.userSessions(r.Context(), rl, &v); err != nil {
		return err
	}
	if len(v.Rows) == 0 {
		// No session under that id: it may be a username.
		ids, complete, err := c.usersNamed(r.Context(), rl.Name, v.User)
		if err != nil {
			return err
		}
		v.Partial = !complete
		switch len(ids) {
		case 1:
			v.Asked, v.User = v.User, ids[0]
			if err := c.userSessions(r.Context(), rl, &v); err != nil {
				return err
			}
		case 0:
		default:
			v.Asked, v.Candidates = v.User, ids
		}
	}
	v.consents()
	c.render(w, http.StatusOK, "user", v)
	return nil
}

// userSessions lists v.User's sessions into v.
func (c *Console) userSessions(ctx context.Context, rl *realm.Realm, v *userView) error {
	collect := func(offline bool) func([]admin.SessionRep) error {
		return func(page []admin.SessionRep) error {
			for _, rw := range rowsOf(page, offline) {
				if offline && slices.ContainsFunc(v.Rows, func(x row) bool { return x.Offline && x.ID == rw.ID }) {
					continue // one offline session holds several clients' tokens
				}
				if len(v.Rows) >= maxUserSessions {
					v.Cut = true
					return errEnough
				}
				v.Rows = append(v.Rows, rw)
			}
			return nil
		}
	}
	if err := c.admin.UserSessions(ctx, rl.Name, v.User, collect(false)); err != nil && !errors.Is(err, errEnough) {
		return err
	}
	v.Regular = len(v.Rows)
	for _, cl := range rl.Clients {
		if v.Cut {
			break
		}
		id := cmpOr(cl.ID, cl.ClientID)
		if err := c.admin.UserOfflineSessions(ctx, rl.Name, v.User, id, collect(true)); err != nil && !errors.Is(err, errEnough) {
			return err
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Scan is usernameScan, for the page to say where a lookup stopped.
func (userView) Scan() int { return usernameScan }
