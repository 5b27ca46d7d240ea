package accountconsole

import (
	"net/http"
	"strings"

	"github.com/sessiond/sessiond/core/account"
)

// deviceRow is one session on the Device activity page.
type deviceRow struct {
	account.SessionRep
	Device  string // "Firefox 128 on Linux"
	Clients string
}

type devicesView struct {
	view
	Sessions []deviceRow
	Others   int // sessions that are not the current one
}

// deviceActivity lists the person's sessions, the current one first and marked, each with
// its browser and system, where it was last used from, when it started, was last used and
// expires, and its clients; each other one can be signed out, or all others at once.
func (c *Console) deviceActivity(w http.ResponseWriter, r *http.Request, v *view) error {
	devices, err := c.account.Devices(r.Context(), v.caller)
	if err != nil {
		return err
	}
	out := devicesView{view: *v}
	out.Title = "Device activity"
	for _, d := range devices {
		for _, s := range d.Sessions {
			row := deviceRow{SessionRep: s, Device: s.Browser}
			if s.OS != "" {
				row.Device += " on " + s.OS
			}
			var names []string
			for _, cl := range s.Clients {
				names = append(names, cl.ClientName)
			}
			row.Clients = strings.Join(names, ", ")
			if !s.Current {
				out.Others++
			}
			out.Sessions = append(out.Sessions, row)
		}
	}
	// Current first, then the most recently used, across devices.
	rows := out.Sessions
	for i := 1; i < len(rows); i++ {
		for j := i; j > 0 && before(rows[j], rows[j-1]); j-- {
			rows[j], rows[j-1] = rows[j-1], rows[j]
		}
	}
	c.render(w, http.StatusOK, "devices", out)
	return nil
}

func before(a, b deviceRow) bool {
	if a.Current != b.Current {
		return a.Current
	}
	return a.LastAccess > b.LastAccess
}

type appRow struct {
	account.ClientRep
	Scopes string
}

type appsView struct {
	view
	Apps []appRow
}

// applications lists the clients the person uses, with the scopes and dates of their
// offline tokens; those holding offline tokens can be revoked.
func (c *Console) applications(w http.ResponseWriter, r *http.Request, v *view) error {
	apps, err := c.account.Applications(r.Context(), v.caller)
	if err != nil {
		return err
	}
	out := appsView{view: *v}
	out.Title = "Applications"
	for _, a := range apps {
		row := appRow{ClientRep: a}
		if a.Consent != nil {
			var names []string
			for _, s := range a.Consent.Scopes {
				names = append(names, s.Name)
			}
			row.Scopes = strings.Join(names, " ")
		}
		out.Apps = append(out.Apps, row)
	}
	c.render(w, http.StatusOK, "applications", out)
	return nil
}
