package console

// The Actions page, the push outbox and the acting pages (sign out a session or a user,
// sign out all, not-before, push), each answered with a page saying what was done.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

type actionsView struct {
	layout
	NotBefore     time.Time
	NotBeforeNote string
}

// actionsPage is the realm's actions: sign out all, revocation (not-before), push.
func (c *Console) actionsPage(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	v := actionsView{layout: c.layoutFor(r, s, "Actions")}
	v.NotBefore, err = c.admin.NotBefore(r.Context(), rl.Name)
	switch {
	case errors.Is(err, admin.ErrNotConfigured):
		v.NotBeforeNote = err.Error()
	case err != nil:
		return err
	}
	c.render(w, http.StatusOK, "actions", v)
	return nil
}

// logoutAllConfirm says what signing out all active sessions does and does not do before
// it is done (seed 000).
func (c *Console) logoutAllConfirm(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	if _, err := c.realm(r); err != nil {
		return err
	}
	c.render(w, http.StatusOK, "logoutall", c.layoutFor(r, s, "Sign out all active sessions"))
	return nil
}

type deliveriesView struct {
	layout
	pager
	State      string
	Deliveries []admin.DeliveryRep
}

// deliveriesPage is the revocation-push outbox of the realm, paged.
func (c *Console) deliveriesPage(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	size, err := c.pageSizeOf(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	state := q.Get("state")
	ds, next, err := c.admin.Deliveries(r.Context(), rl.Name, usersessions.DeliveryState(state), admin.Query{Max: size, After: q.Get("after")})
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "deliveries", deliveriesView{layout: c.layoutFor(r, s, "Push outbox"), pager: pagerOf(r, next), State: state, Deliveries: ds})
	return nil
}

// Acting pages. Each answers with a page saying what was done.

// resultView is the page after an action.
type resultView struct {
	layout
	Heading string
	Lines   []string
	Clients []clientResult
	Back    string
}

// clientResult is what a notice did at one client's URL.
type clientResult struct {
	ClientID, URL, Result string
}

// clientResults names, for every URL a notice went to, the clients it belongs to and
// whether it took the notice.
func clientResults(rl *realm.Realm, rep admin.Report) []clientResult {
	var out []clientResult
	seen := map[string]bool{}
	for _, cl := range rl.Clients {
		for _, u := range []string{cl.AdminURL, cl.BackchannelLogoutURL} {
			res := ""
			switch {
			case u == "":
				continue
			case slices.Contains(rep.Failed, u):
				res = "failed (retried from the outbox)"
			case slices.Contains(rep.Succeeded, u):
				res = "succeeded"
			default:
				continue
			}
			seen[u] = true
			out = append(out, clientResult{ClientID: cl.ClientID, URL: u, Result: res})
		}
	}
	for _, u := range append(slices.Clone(rep.Succeeded), rep.Failed...) {
		if !seen[u] {
			res := "succeeded"
			if slices.Contains(rep.Failed, u) {
				res = "failed (retried from the outbox)"
			}
			out = append(out, clientResult{URL: u, Result: res})
		}
	}
	return out
}

func (c *Console) result(w http.ResponseWriter, r *http.Request, s *signedIn, heading, back string, rep admin.Report, lines ...string) {
	rl, _ := c.realm(r)
	v := resultView{layout: c.layoutFor(r, s, heading), Heading: heading, Lines: lines, Back: back}
	if rl != nil {
		v.Clients = clientResults(rl, rep)
	}
	c.render(w, http.StatusOK, "result", v)
}

func (c *Console) realmURL(r *http.Request, page string) string {
	return Path + "realms/" + pathEscape(r.PathValue("realm")) + "/" + page
}

// pushNote is what a result says of clients that could not all be told.
func pushNote(w http.ResponseWriter, res admin.Result) []string {
	if res.PushErr == nil {
		return nil
	}
	if rec, ok := w.(*recorder); ok {
		rec.detail = "clients not all notified: " + res.PushErr.Error()
	}
	return []string{"The clients could not all be told: " + res.PushErr.Error()}
}

// formBool reads a form's true/false field; absent is false.
func formBool(r *http.Request, name string) (bool, error) {
	v := r.PostForm.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badInput("%s must be true or false, not %q", name, v)
	}
	return b, nil
}

func (c *Console) logoutSession(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	offline, err := formBool(r, "offline")
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	res, err := c.admin.LogoutSession(r.Context(), r.PathValue("realm"), id, offline)
	if err != nil {
		return err
	}
	heading := "Session signed out"
	lines := []string{fmt.Sprintf("Session %s has ended; its clients were sent back-channel logouts.", id)}
	if offline {
		heading = "Offline session revoked"
		lines = []string{fmt.Sprintf("Offline session %s has ended: its offline tokens no longer refresh.", id)}
	}
	c.result(w, r, s, heading, c.realmURL(r, "sessions"), res.Report, append(lines, pushNote(w, res)...)...)
	return nil
}

func (c *Console) logoutUser(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	user := r.PathValue("id")
	res, err := c.admin.LogoutUser(r.Context(), r.PathValue("realm"), user)
	if err != nil {
		return err
	}
	lines := []string{
		fmt.Sprintf("%d regular sessions of user %s have ended; their clients were sent back-channel logouts.", res.Removed, user),
		"Offline sessions stay: offline tokens are valid after a user logout. Revoke them one by one on this user's page.",
	}
	c.result(w, r, s, "User signed out", c.realmURL(r, "users?user="+url.QueryEscape(user)), res.Report, append(lines, pushNote(w, res)...)...)
	return nil
}

func (c *Console) logoutAll(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	// As the JSON API: a caller that stops waiting must not leave it half done; the
	// service bounds it with its own deadline.
	res, err := c.admin.LogoutAll(context.WithoutCancel(r.Context()), r.PathValue("realm"))
	if err != nil {
		return err
	}
	lines := []string{
		fmt.Sprintf("%d active sessions have ended; their back-channel logouts are queued in the push outbox.", res.Removed),
		"Outstanding access tokens were not revoked: they stay valid until they expire. Offline sessions and their tokens stay too. To revoke those, set the not-before policy to now and push it.",
	}
	c.result(w, r, s, "All active sessions signed out", c.realmURL(r, "actions"), res.Report, append(lines, pushNote(w, res)...)...)
	return nil
}

// setNotBefore sets the realm's not-before policy, or a client's (clients/{id}/not-before).
func (c *Console) setNotBefore(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	var ch admin.Change
	switch a := r.PostForm.Get("action"); a {
	case "now":
		ch.Now = true
	case "clear":
	default:
		return badInput("action must be now or clear, not %q", a)
	}
	realmName, clientUUID := r.PathValue("realm"), r.PathValue("id")
	var t time.Time
	var err error
	whose, back := "The realm's", c.realmURL(r, "actions")
	if clientUUID == "" {
		t, err = c.admin.SetNotBefore(r.Context(), realmName, ch)
	} else {
		t, err = c.admin.SetClientNotBefore(r.Context(), realmName, clientUUID, ch)
		whose, back = "Client "+c.clientName(r, clientUUID)+"'s", c.realmURL(r, "clients/"+pathEscape(clientUUID)+"/sessions")
	}
	if err != nil {
		return err
	}
	line := whose + " not-before policy is cleared: tokens are checked by their own expiry only."
	if !t.IsZero() {
		line = whose + " not-before policy is " + funcs["when"].(func(time.Time) string)(t) +
			": every token and session issued before it is refused, on every node. Push it to tell the clients' adapters."
	}
	c.result(w, r, s, "Not-before policy set", back, admin.Report{}, line)
	return nil
}

// pushRevocation pushes the not-before policy to every client with an admin URL, or to one
// client (clients/{id}/push-revocation), and shows each client URL's result.
func (c *Console) pushRevocation(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	clientUUID := r.PathValue("id")
	rep, err := c.admin.PushRevocation(r.Context(), r.PathValue("realm"), clientUUID)
	if err != nil {
		return err
	}
	back := c.realmURL(r, "actions")
	line := fmt.Sprintf("The not-before policy was pushed to %d client URLs; %d did not take it and are retried from the outbox.",
		len(rep.Succeeded)+len(rep.Failed), len(rep.Failed))
	if len(rep.Succeeded)+len(rep.Failed) == 0 {
		line = "No client of this realm has an admin URL: there was nobody to push to."
	}
	if clientUUID != "" {
		back = c.realmURL(r, "clients/"+pathEscape(clientUUID)+"/sessions")
		if len(rep.Succeeded)+len(rep.Failed) == 0 {
			line = "Client " + c.clientName(r, clientUUID) + " has no admin URL: there was nobody to push to."
		}
	}
	c.result(w, r, s, "Revocation pushed", back, rep, line)
	return nil
}

// clientName is the clientId of the client with that internal id, the id itself when none.
func (c *Console) clientName(r *http.Request, clientUUID string) string {
	if rl, err := c.realm(r); err == nil {
		for _, cl := range rl.Clients {
			if cmpOr(cl.ID, cl.ClientID) == clientUUID {
				return cl.ClientID
			}
		}
	}
	return clientUUID
}

// revokeConsent revokes a user's offline tokens of one client (the Consents tab; DELETE
// users/{id}/consents/{client}).
func (c *Console) revokeConsent(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	user, client := r.PathValue("id"), r.PathValue("client")
	res, err := c.admin.RevokeOfflineToken(r.Context(), r.PathValue("realm"), user, client)
	if err != nil {
		return err
	}
	c.result(w, r, s, "Offline tokens revoked", c.realmURL(r, "users?user="+url.QueryEscape(user)), admin.Report{},
		fmt.Sprintf("User %s's offline tokens of client %s are revoked (%d offline client sessions ended); offline sessions left with no client ended too.", user, client, res.Removed))
	return nil
}
