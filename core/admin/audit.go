package admin

import (
	"time"

	"github.com/sessiond/sessiond/core/session"
)

// Actor roles, as audit events name who acted, and refusals of the admin API (authfail)
// whose credential it was.
const (
	ActorAdmin     = "admin"     // the manage credential
	ActorViewer    = "viewer"    // the view-only credential
	ActorFrontend  = "frontend"  // the login front-end's credential, refused here
	ActorAnonymous = "anonymous" // no credential, or one that matched none
)

// Outcomes of an admin action. A caller refused before anything was done (credential or
// role) has not acted: the refusal is audited as a failed authentication (core/authfail),
// aggregated with its repeats.
const (
	OutcomeSuccess = "success"
	OutcomeFailed  = "failed" // attempted and refused or broken: bad input, unknown target, store down
)

// AuditEvent is one admin action, as a SIEM reads it. It never carries a credential.
type AuditEvent struct {
	Time    time.Time
	Actor   string // ActorAdmin, ActorViewer, …
	Action  string // e.g. "logout-all", "set-not-before"
	Realm   string
	Target  string // what was acted on, e.g. "session/abc", "user/u-1", "client/app", "realm/demo"
	IP      string // the caller's address
	Outcome string
	Status  int    // the HTTP status answered
	Detail  string // why it was refused or failed; "" on success
}

// Auditor receives audit events. Record must not block for long: it runs on the request
// path.
type Auditor interface {
	Record(AuditEvent)
}

type discard struct{}

func (discard) Record(AuditEvent) {}

type noEvents struct{}

func (noEvents) Emit(session.Event) {}

// Audit stamps an event with the service's clock and sends it to the audit sink.
func (s *Service) Audit(e AuditEvent) {
	if e.Time.IsZero() {
		e.Time = s.clock()
	}
	s.audit.Record(e)
}
