package admin

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Role is what an admin credential allows.
type Role int

const (
	RoleNone   Role = iota // no admin access
	RoleView               // reads only
	RoleManage             // everything
)

// Credentials are the bearer credentials sessiond knows: the administrator's, the
// view-only one and the login front-end's. Both fronts of the admin service (the JSON API
// and the console) tell a caller's role with Match.
type Credentials struct {
	Admin, Viewer, Frontend string
}

// Match tells the actor and role of a presented credential. Every configured credential is
// compared, each in constant time over its SHA-256, so that neither which one matched nor
// their lengths show in the timing. An unset credential matches nothing. The front-end's
// credential is known (ActorFrontend) but has no admin role; one that matches none is
// ActorAnonymous.
func (c Credentials) Match(presented string) (actor string, role Role) {
	if presented == "" {
		return ActorAnonymous, RoleNone
	}
	p := sha256.Sum256([]byte(presented))
	matches := func(want string) bool {
		w := sha256.Sum256([]byte(want))
		return subtle.ConstantTimeCompare(p[:], w[:]) == 1 && want != ""
	}
	isAdmin, isViewer, isFrontend := matches(c.Admin), matches(c.Viewer), matches(c.Frontend)
	switch {
	case isAdmin:
		return ActorAdmin, RoleManage
	case isViewer:
		return ActorViewer, RoleView
	case isFrontend:
		return ActorFrontend, RoleNone
	}
	return ActorAnonymous, RoleNone
}
