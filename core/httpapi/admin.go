package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Admin is the admin service as the HTTP layer uses it; *admin.Service implements it.
type Admin interface {
	Audit(admin.AuditEvent)
	Stats(ctx context.Context, realm string) ([]admin.ClientStat, error)
	SessionLimits(ctx context.Context, realm, userID string) (*admin.LimitsRep, error)
	Clients(ctx context.Context, realm, clientID string) ([]admin.ClientRep, error)
	RealmSessions(ctx context.Context, realm string, offline bool, q admin.Query) ([]admin.SessionRep, string, error)
	ClientSessions(ctx context.Context, realm, clientUUID string, offline bool, q admin.Query) ([]admin.SessionRep, string, error)
	ClientSessionCount(ctx context.Context, realm, clientUUID string, offline bool) (int64, error)
	UserSessions(ctx context.Context, realm, userID string, emit func([]admin.SessionRep) error) error
	UserOfflineSessions(ctx context.Context, realm, userID, clientUUID string, emit func([]admin.SessionRep) error) error
	LogoutSession(ctx context.Context, realm, id string, offline bool) (admin.Result, error)
	LogoutUser(ctx context.Context, realm, userID string) (admin.Result, error)
	LogoutAll(ctx context.Context, realm string) (admin.Result, error)
	RevokeOfflineToken(ctx context.Context, realm, userID, clientID string) (admin.Result, error)
	NotBefore(ctx context.Context, realm string) (time.Time, error)
	SetNotBefore(ctx context.Context, realm string, c admin.Change) (time.Time, error)
	ClientNotBefore(ctx context.Context, realm, clientUUID string) (time.Time, error)
	SetClientNotBefore(ctx context.Context, realm, clientUUID string, c admin.Change) (time.Time, error)
	PushRevocation(ctx context.Context, realm, clientUUID string) (admin.Report, error)
	Deliveries(ctx context.Context, realm string, state usersessions.DeliveryState, q admin.Query) ([]admin.DeliveryRep, string, error)
	Keys(ctx context.Context, realm string) (admin.KeysRep, error)
	RotateKeys(ctx context.Context, realm string) (admin.KeysRep, error)
}

// role is what an admin credential allows (admin.Credentials.Match).
type role = admin.Role

const (
	roleView   = admin.RoleView   // GET routes
	roleManage = admin.RoleManage // every route
)

// adminRoute is one admin API route. Acting routes change something and need the manage
// role; every call of one is audited. A refused credential or role on any route is audited
// too, as a refused authentication (authfail: aggregated, and slowed when it keeps failing).
type adminRoute struct {
	pattern string // method and path under /admin/realms/{realm}
	action  string // the audit event's action
	acting  bool
	target  func(r *http.Request) string
	handle  func(s *Server, w http.ResponseWriter, r *http.Request) error
}

const adminPrefix = "/admin/realms/{realm}"

// errNoAdminRoute is a path under /admin/ that names no route.
var errNoAdminRoute = fmt.Errorf("no such admin route: %w", spi.ErrNotFound)

// actionUnknownRoute is the audit action of a refused credential on a path under /admin/
// that names no route; the event's target is the method and path, both it and the realm
// cut to maxAuditedPath bytes.
const (
	actionUnknownRoute = "unknown-route"
	maxAuditedPath     = 256
)

// adminRoutes lists the admin API: Keycloak's paths and shapes where Keycloak has the
// route (REFERENCE.md "Keycloak's admin API"), sessiond's own beside them. The security
// tests walk this table, so a route added here is tested for its credentials.
func adminRoutes() []adminRoute {
	session := pathTarget("session", "id")
	user := pathTarget("user", "id")
	client := pathTarget("client", "id")
	realmWide := func(r *http.Request) string { return "realm/" + r.PathValue("realm") }
	routes := []adminRoute{
		{"GET /client-session-stats", "view-client-session-stats", false, realmWide, (*Server).adminStats},
		{"GET /session-limits", "view-session-limits", false, realmWide, (*Server).adminSessionLimits},
		{"GET /clients", "view-clients", false, realmWide, (*Server).adminClients},
		{"GET /sessions", "view-sessions", false, realmWide, (*Server).adminRealmSessions},
		{"GET /users/{id}/sessions", "view-user-sessions", false, user, (*Server).adminUserSessions},
		{"GET /users/{id}/offline-sessions/{client}", "view-user-offline-sessions", false, user, (*Server).adminUserOfflineSessions},
		{"GET /clients/{id}/user-sessions", "view-client-sessions", false, client, clientSessions(false)},
		{"GET /clients/{id}/offline-sessions", "view-client-offline-sessions", false, client, clientSessions(true)},
		{"GET /clients/{id}/session-count", "view-client-session-count", false, client, clientCount(false)},
		{"GET /clients/{id}/offline-session-count", "view-client-offline-session-count", false, client, clientCount(true)},
		{"GET /not-before", "view-not-before", false, realmWide, (*Server).adminNotBefore},
		{"GET /clients/{id}/not-before", "view-client-not-before", false, client, (*Server).adminClientNotBefore},
		{"GET /push-deliveries", "view-push-deliveries", false, realmWide, (*Server).adminDeliveries},
		{"GET /keys", "view-keys", false, realmWide, (*Server).adminKeys},

		{"DELETE /sessions/{id}", "logout-session", true, session, (*Server).adminLogoutSession},
		{"POST /users/{id}/logout", "logout-user", true, user, (*Server).adminLogoutUser},
		{"POST /logout-all", "logout-all", true, realmWide, (*Server).adminLogoutAll},
		{"DELETE /users/{id}/consents/{client}", "revoke-offline-token", true, func(r *http.Request) string {
			return "user/" + r.PathValue("id") + "/client/" + r.PathValue("client")
		}, (*Server).adminRevokeConsent},
		{"PUT /not-before", "set-not-before", true, realmWide, (*Server).adminSetNotBefore},
		{"PUT /clients/{id}/not-before", "set-client-not-before", true, client, (*Server).adminSetClientNotBefore},
		{"POST /push-revocation", "push-revocation", true, realmWide, (*Server).adminPushRevocation},
		{"POST /clients/{id}/push-revocation", "push-client-revocation", true, client, (*Server).adminPushRevocation},
		{"POST /keys/rotate", "rotate-keys", true, realmWide, (*Server).adminRotateKeys},
		{"POST /users/{id}/action-tokens", "mint-action-token", true, user, (*Server).adminMintActionToken},
		{"PUT /users/{id}/execute-actions-email", "execute-actions-email", true, user, (*Server).adminExecuteActionsEmail},
	}
	return append(routes, ssfAdminRoutes(realmWide)...)
}

func pathTarget(kind, param string) func(*http.Request) string {
	return func(r *http.Request) string { return kind + "/" + r.PathValue(param) }
}

func (s *Server) adminRoutes() {
	for _, rt := range adminRoutes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		s.mux.HandleFunc(method+" "+adminPrefix+path, s.adminHandler(rt))
	}
	// Anything else under /admin/ is answered once the caller is known: a 401 without a
	// credential (nothing about the API is told to a stranger), a JSON 404 otherwise. A
	// refused credential is audited and slowed, as on every route: someone is probing.
	s.mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		realmName := ""
		if rest, ok := strings.CutPrefix(r.URL.Path, "/admin/realms/"); ok {
			realmName, _, _ = strings.Cut(rest, "/")
		}
		if _, err := s.adminGate(w, r, actionUnknownRoute, cut(realmName), cut(r.Method+" "+r.URL.Path)); err != nil {
			return
		}
		s.writeError(w, r, fmt.Errorf("no admin route %s %s: %w", r.Method, r.URL.Path, errNoAdminRoute))
	})
}

// cut bounds what a caller wrote before it goes into an audit event.
func cut(s string) string {
	if len(s) <= maxAuditedPath {
		return s
	}
	return strings.ToValidUTF8(s[:maxAuditedPath], "") + "…"
}

// adminGate authenticates an admin API caller: one that failed too often is refused before
// its credential is compared; a refused credential is answered and handed to the guard
// (audited with the action and target asked for) and the error returned.
func (s *Server) adminGate(w http.ResponseWriter, r *http.Request, action, realmName, target string) (role, error) {
	ref := authfail.Refusal{Attempt: authfail.Attempt{Kind: authfail.KindAdmin, Realm: realmName, Addr: remoteIP(r)},
		Action: action, Target: target, Actor: admin.ActorAnonymous}
	if err := s.guard.Check(ref.Attempt); err != nil {
		ref.Reason = authfail.ReasonThrottled
		s.denied(w, r, ref, err)
		return 0, err
	}
	actor, got, err := s.adminAuth(r)
	ref.Actor = actor
	switch {
	case err == nil:
		return got, nil
	case errors.Is(err, errNoBearer):
		ref.Reason = authfail.ReasonMissing
	case errors.Is(err, errForbidden):
		ref.Reason = authfail.ReasonForbidden
	default:
		ref.Reason = authfail.ReasonInvalid
	}
	s.denied(w, r, ref, err)
	return 0, err
}

// denied hands a refused credential or role to the guard and answers the refusal.
func (s *Server) denied(w http.ResponseWriter, r *http.Request, ref authfail.Refusal, err error) {
	s.refused(r, ref, err)
	s.writeError(w, r, err)
}

// adminHandler authenticates, authorises and audits one route.
func (s *Server) adminHandler(rt adminRoute) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ev := admin.AuditEvent{Action: rt.action, Realm: r.PathValue("realm"), Target: rt.target(r), IP: remoteIP(r)}
		got, err := s.adminGate(w, r, rt.action, ev.Realm, ev.Target)
		if err != nil {
			return
		}
		ev.Actor = admin.ActorAdmin
		if got < roleManage {
			ev.Actor = admin.ActorViewer
			if rt.acting {
				err := fmt.Errorf("%w: the view-only credential may not %s", errForbidden, rt.action)
				s.denied(w, r, authfail.Refusal{Attempt: authfail.Attempt{Kind: authfail.KindAdmin, Realm: ev.Realm, Addr: ev.IP},
					Reason: authfail.ReasonForbidden, Actor: ev.Actor, Action: rt.action, Target: ev.Target}, err)
				return
			}
		}
		rec := &statusRecorder{ResponseWriter: w}
		if err := rt.handle(s, rec, r); err != nil {
			code, body := s.classify(r, err)
			ev.Outcome, ev.Status, ev.Detail = admin.OutcomeFailed, code, body.Description
			s.writeError(rec, r, err)
		} else {
			ev.Outcome, ev.Status, ev.Detail = admin.OutcomeSuccess, rec.code(), rec.detail
		}
		if rt.acting {
			s.admin.Audit(ev)
		}
	}
}

// adminAuth tells the caller's role from its bearer credential (admin.Credentials.Match:
// constant time). The front-end's credential is known but not allowed.
func (s *Server) adminAuth(r *http.Request) (actor string, _ role, _ error) {
	got, ok := bearerCredential(r)
	if !ok {
		return admin.ActorAnonymous, 0, errNoBearer
	}
	actor, granted := admin.Credentials{Admin: s.adminToken, Viewer: s.viewerToken, Frontend: s.frontendToken}.Match(got)
	switch {
	case granted != admin.RoleNone:
		return actor, granted, nil
	case actor == admin.ActorFrontend:
		return actor, 0, fmt.Errorf("%w: the front-end credential has no admin role", errForbidden)
	}
	return actor, 0, errUnauthenticated
}

// remoteIP is the caller's address as the connection shows it.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// statusRecorder remembers the status an acting route answered, for its audit event.
type statusRecorder struct {
	http.ResponseWriter
	status int
	detail string // what the audit event should add on success (a push that failed)
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (streamSessions' deadlines).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Query parameters.

func queryInt(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest("%s must be a whole number, not %q", name, v)
	}
	return n, nil
}

func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s must be true or false, not %q", name, v)
	}
	return b, nil
}

// pageQuery reads first, max and after.
func pageQuery(r *http.Request) (admin.Query, error) {
	first, err := queryInt(r, "first")
	if err != nil {
		return admin.Query{}, err
	}
	maxN, err := queryInt(r, "max")
	if err != nil {
		return admin.Query{}, err
	}
	if r.URL.Query().Has("max") && maxN < 1 {
		return admin.Query{}, badRequest("max must be 1 to %d, not %d", admin.MaxResults, maxN)
	}
	return admin.Query{First: first, Max: maxN, After: r.URL.Query().Get("after")}, nil
}

// writePage answers one page of a listing, with a Link to the next page (RFC 8288) when
// there may be one: the same query with after= the cursor and without first=.
func writePage[T any](w http.ResponseWriter, r *http.Request, page []T, next string) {
	if next != "" {
		q := r.URL.Query()
		q.Del("first")
		q.Set("after", next)
		link := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		w.Header().Set("Link", "<"+link.String()+`>; rel="next"`)
	}
	if page == nil {
		page = []T{}
	}
	writeJSON(w, http.StatusOK, page)
}

// streamSessions answers a listing of any length, a page at a time as walk hands the pages
// over: only one is held. An error before the first page is answered as usual; after it,
// the status line is out, so the connection is broken off rather than end a truncated list
// that would look complete.
func streamSessions(w http.ResponseWriter, walk func(emit func([]admin.SessionRep) error) error) error {
	started, n := false, 0
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	err := walk(func(page []admin.SessionRep) error {
		// The server's write timeout bounds one page, not the whole listing: a realm's
		// sessions stream for as long as they take, a client that stops reading does not.
		_ = rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
		if !started {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			if _, err := w.Write([]byte{'['}); err != nil {
				return err
			}
			started = true
		}
		for i := range page {
			if n > 0 {
				if _, err := w.Write([]byte{','}); err != nil {
					return err
				}
			}
			if err := enc.Encode(page[i]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	switch {
	case err != nil && !started:
		return err
	case err != nil:
		panic(http.ErrAbortHandler)
	case !started:
		writeJSON(w, http.StatusOK, []admin.SessionRep{})
		return nil
	}
	_, _ = w.Write([]byte("]\n"))
	return nil
}

// Viewing.

func (s *Server) adminStats(w http.ResponseWriter, r *http.Request) error {
	stats, err := s.admin.Stats(r.Context(), r.PathValue("realm"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, stats)
	return nil
}

func (s *Server) adminSessionLimits(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.admin.SessionLimits(r.Context(), r.PathValue("realm"), r.URL.Query().Get("userId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) adminClients(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.admin.Clients(r.Context(), r.PathValue("realm"), r.URL.Query().Get("clientId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}

func (s *Server) adminRealmSessions(w http.ResponseWriter, r *http.Request) error {
	offline, err := queryBool(r, "offline")
	if err != nil {
		return err
	}
	q, err := pageQuery(r)
	if err != nil {
		return err
	}
	page, next, err := s.admin.RealmSessions(r.Context(), r.PathValue("realm"), offline, q)
	if err != nil {
		return err
	}
	writePage(w, r, page, next)
	return nil
}

func (s *Server) adminUserSessions(w http.ResponseWriter, r *http.Request) error {
	return streamSessions(w, func(emit func([]admin.SessionRep) error) error {
		return s.admin.UserSessions(r.Context(), r.PathValue("realm"), r.PathValue("id"), emit)
	})
}

func (s *Server) adminUserOfflineSessions(w http.ResponseWriter, r *http.Request) error {
	return streamSessions(w, func(emit func([]admin.SessionRep) error) error {
		return s.admin.UserOfflineSessions(r.Context(), r.PathValue("realm"), r.PathValue("id"), r.PathValue("client"), emit)
	})
}

func clientSessions(offline bool) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		q, err := pageQuery(r)
		if err != nil {
			return err
		}
		page, next, err := s.admin.ClientSessions(r.Context(), r.PathValue("realm"), r.PathValue("id"), offline, q)
		if err != nil {
			return err
		}
		writePage(w, r, page, next)
		return nil
	}
}

// countBody is Keycloak's {"count": n}.
type countBody struct {
	Count int64 `json:"count"`
}

func clientCount(offline bool) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		n, err := s.admin.ClientSessionCount(r.Context(), r.PathValue("realm"), r.PathValue("id"), offline)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, countBody{Count: n})
		return nil
	}
}

func (s *Server) adminDeliveries(w http.ResponseWriter, r *http.Request) error {
	q, err := pageQuery(r)
	if err != nil {
		return err
	}
	state := usersessions.DeliveryState(r.URL.Query().Get("state"))
	page, next, err := s.admin.Deliveries(r.Context(), r.PathValue("realm"), state, q)
	if err != nil {
		return err
	}
	writePage(w, r, page, next)
	return nil
}

// Not-before policies.

// notBeforeBody is a not-before policy on the wire: seconds since the epoch, 0 for none (the
// notBefore of Keycloak's realm and client representations).
type notBeforeBody struct {
	NotBefore int64 `json:"notBefore"`
}

func notBeforeOf(t time.Time) notBeforeBody {
	if t.IsZero() {
		return notBeforeBody{}
	}
	return notBeforeBody{NotBefore: t.Unix()}
}

// notBeforeChange is what a PUT of a not-before policy carries: exactly one of
// {"notBefore": <seconds since the epoch>} (0 clears) and {"action": "now" | "clear"}.
type notBeforeChange struct {
	NotBefore *int64 `json:"notBefore"`
	Action    string `json:"action"`
}

func readChange(w http.ResponseWriter, r *http.Request) (admin.Change, error) {
	var body notBeforeChange
	if err := decodeJSON(w, r, &body); err != nil {
		return admin.Change{}, err
	}
	switch {
	case body.NotBefore != nil && body.Action != "":
		return admin.Change{}, badRequest(`give either "notBefore" or "action", not both`)
	case body.NotBefore != nil && *body.NotBefore < 0:
		return admin.Change{}, badRequest(`"notBefore" is seconds since the epoch (0 clears the policy), not %d`, *body.NotBefore)
	case body.NotBefore != nil && *body.NotBefore == 0:
		return admin.Change{}, nil
	case body.NotBefore != nil:
		return admin.Change{At: time.Unix(*body.NotBefore, 0).UTC()}, nil
	case body.Action == "now":
		return admin.Change{Now: true}, nil
	case body.Action == "clear":
		return admin.Change{}, nil
	case body.Action != "":
		return admin.Change{}, badRequest(`"action" must be "now" or "clear", not %q`, body.Action)
	}
	return admin.Change{}, badRequest(`give {"notBefore": <seconds since the epoch>} or {"action": "now" | "clear"}`)
}

func (s *Server) adminNotBefore(w http.ResponseWriter, r *http.Request) error {
	t, err := s.admin.NotBefore(r.Context(), r.PathValue("realm"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notBeforeOf(t))
	return nil
}

func (s *Server) adminClientNotBefore(w http.ResponseWriter, r *http.Request) error {
	t, err := s.admin.ClientNotBefore(r.Context(), r.PathValue("realm"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notBeforeOf(t))
	return nil
}

func (s *Server) adminSetNotBefore(w http.ResponseWriter, r *http.Request) error {
	c, err := readChange(w, r)
	if err != nil {
		return err
	}
	t, err := s.admin.SetNotBefore(r.Context(), r.PathValue("realm"), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notBeforeOf(t))
	return nil
}

func (s *Server) adminSetClientNotBefore(w http.ResponseWriter, r *http.Request) error {
	c, err := readChange(w, r)
	if err != nil {
		return err
	}
	t, err := s.admin.SetClientNotBefore(r.Context(), r.PathValue("realm"), r.PathValue("id"), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notBeforeOf(t))
	return nil
}

// Acting.

// globalResult is Keycloak's GlobalRequestResult: the client URLs a notice reached and the
// ones it did not. Both lists are always present.
type globalResult struct {
	SuccessRequests []string `json:"successRequests"`
	FailedRequests  []string `json:"failedRequests"`
}

func resultOf(rep admin.Report) globalResult {
	g := globalResult{SuccessRequests: rep.Succeeded, FailedRequests: rep.Failed}
	if g.SuccessRequests == nil {
		g.SuccessRequests = []string{}
	}
	if g.FailedRequests == nil {
		g.FailedRequests = []string{}
	}
	return g
}

// acted finishes an action that ended sessions: a push that could not be queued is logged
// and noted in the audit event, and does not fail the action, which is done.
func (s *Server) acted(w http.ResponseWriter, r *http.Request, res admin.Result) {
	if res.PushErr == nil {
		return
	}
	s.log.Warn("sessions ended, but the clients could not all be notified", "path", r.URL.Path, "error", res.PushErr)
	if rec, ok := w.(*statusRecorder); ok {
		rec.detail = "clients not all notified: " + res.PushErr.Error()
	}
}

func (s *Server) adminLogoutSession(w http.ResponseWriter, r *http.Request) error {
	offline, err := queryBool(r, "isOffline")
	if err != nil {
		return err
	}
	res, err := s.admin.LogoutSession(r.Context(), r.PathValue("realm"), r.PathValue("id"), offline)
	if err != nil {
		return err
	}
	s.acted(w, r, res)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) adminLogoutUser(w http.ResponseWriter, r *http.Request) error {
	res, err := s.admin.LogoutUser(r.Context(), r.PathValue("realm"), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.acted(w, r, res)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) adminLogoutAll(w http.ResponseWriter, r *http.Request) error {
	// A sign-out of a large realm takes a while; a caller that stops waiting must not
	// leave it half done. The service bounds it with its own deadline
	// (admin.Deps.LogoutAllTimeout), and queues the sessions' back-channel logouts in the
	// outbox rather than attempting them here.
	res, err := s.admin.LogoutAll(context.WithoutCancel(r.Context()), r.PathValue("realm"))
	if err != nil {
		return err
	}
	s.acted(w, r, res)
	writeJSON(w, http.StatusOK, resultOf(res.Report))
	return nil
}

func (s *Server) adminRevokeConsent(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.admin.RevokeOfflineToken(r.Context(), r.PathValue("realm"), r.PathValue("id"), r.PathValue("client")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) adminPushRevocation(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.admin.PushRevocation(r.Context(), r.PathValue("realm"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resultOf(rep))
	return nil
}

func (s *Server) adminKeys(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.admin.Keys(r.Context(), r.PathValue("realm"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) adminRotateKeys(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.admin.RotateKeys(r.Context(), r.PathValue("realm"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// badRequest is a refusal of a malformed admin request.
func badRequest(format string, args ...any) error {
	return &session.Error{Code: session.InvalidRequest, Description: fmt.Sprintf(format, args...)}
}
