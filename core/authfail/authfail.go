// Package authfail answers failed authentication: every refusal is audited, repeats of one
// aggregated into a summary so that a flood writes a bounded number of lines, and a caller
// that keeps failing is slowed (429) before its credential is even compared.
//
// It covers the three kinds of caller sessiond authenticates: OAuth clients (token,
// introspection, revocation and logout endpoints), the login front-end and the
// administrator (admin API and session explanations). It also bounds a fourth kind, which
// needs no authentication but costs as much: a browser starting a login at the
// authorization endpoint, which writes a pending login to the store that lives until the
// realm's login timeout. Each start takes from the address's budget (StartLogin), and its
// refusals are audited and counted as the others' are. State is per node, in memory and
// bounded: see Options for the bounds and what happens past them.
package authfail

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Kind is who failed to authenticate.
type Kind string

const (
	KindClient   Kind = "client"   // an OAuth client (RFC 6749 §2.3)
	KindFrontend Kind = "frontend" // the login front-end's bearer credential
	KindAdmin    Kind = "admin"    // the admin or view-only admin bearer credential
	// KindLogin is a browser starting a login (an authorization request that would write
	// a pending login); only its throttling is a refusal.
	KindLogin Kind = "login"
)

// Reasons of a Refusal: a closed set, the event log's reason field and the metrics' label.
const (
	ReasonMissing       = "missing_credentials" // no credential, or no client id
	ReasonMalformed     = "malformed"           // credentials that cannot be read
	ReasonUnknownClient = "unknown_client"      // a client id the realm does not have
	ReasonInvalidSecret = "invalid_secret"      // a known confidential client, a wrong or no secret
	ReasonDisabled      = "client_disabled"     // a known client that is disabled
	ReasonInvalid       = "invalid_credential"  // a bearer credential that matches none
	ReasonForbidden     = "forbidden"           // a valid credential not allowed here (not a failure to authenticate)
	ReasonThrottled     = "throttled"           // refused unseen: the caller failed (KindLogin: started logins) too often (429)
)

// Reasons lists the closed set of reasons.
func Reasons() []string {
	return []string{ReasonMissing, ReasonMalformed, ReasonUnknownClient, ReasonInvalidSecret,
		ReasonDisabled, ReasonInvalid, ReasonForbidden, ReasonThrottled}
}

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{KindClient, KindFrontend, KindAdmin, KindLogin} }

// Attempt is one attempt to authenticate, as far as it is known before the credential is
// compared.
type Attempt struct {
	Kind  Kind
	Realm string
	// ClientID is the client id as presented (KindClient); the Guard bounds it and keeps
	// only safe characters before it is written anywhere. Never a secret.
	ClientID string
	// Addr is the caller's address (the host part of the request's RemoteAddr, which a
	// trusted proxy's headers may have set).
	Addr string
}

// Refusal is one refused attempt.
type Refusal struct {
	Attempt
	Reason string // one of the Reason* values
	Detail string // the description the caller was answered
	Status int    // the HTTP status answered
	// The admin API's: the role the credential held ("anonymous" when it matched none), and
	// what was asked of which target.
	Actor, Action, Target string
}

// Record is what the Guard writes to the security event log: a refusal, written as it
// happens (Count 0), or a summary of Count further refusals like it (same kind, realm,
// client id, address, reason and actor) seen since Since. Overflow marks the summary of
// refusals that were not tracked individually because the table of keys was full; it has
// only a Kind.
type Record struct {
	Time time.Time
	Refusal
	Count    int
	Since    time.Time
	Overflow bool
}

// Summary says in words what a summary record counts; "" for a single refusal.
func (r Record) Summary() string {
	switch {
	case r.Overflow:
		return fmt.Sprintf("%d more %s authentication refusals since %s, from callers not tracked one by one (too many at once)",
			r.Count, r.Kind, r.Since.UTC().Format(time.RFC3339))
	case r.Count > 0:
		return fmt.Sprintf("%d more refusals of the same kind in the last %s", r.Count, r.Time.Sub(r.Since).Round(time.Second))
	}
	return ""
}

// Sink receives the records. AuthRefused must not block for long: it runs on the request
// path (a first refusal) and on the flush goroutine (summaries).
type Sink interface {
	AuthRefused(Record)
}

// Counter counts refusals, for the metrics; *metrics.Metrics implements it.
type Counter interface {
	AuthRefused(kind, reason string)
}

// ThrottledError refuses an attempt, before its credential is compared, from a caller that
// failed too often. The HTTP layer answers it 429 with Retry-After.
type ThrottledError struct {
	Kind       Kind
	RetryAfter time.Duration
	// ByClient: the client's own limit refused it, not the address's.
	ByClient bool
}

func (e *ThrottledError) Error() string {
	if e.Kind == KindLogin {
		return fmt.Sprintf("too many logins started from this address; retry in %d s", e.RetryAfterSeconds())
	}
	who := "from this address"
	if e.ByClient {
		who = "for this client"
	}
	return fmt.Sprintf("too many failed authentication attempts %s; retry in %d s", who, e.RetryAfterSeconds())
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1: the value of a
// Retry-After header (RFC 9110 §10.2.3).
func (e *ThrottledError) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Defaults of Options.
const (
	DefaultLimit       = 20
	DefaultClientLimit = 100
	DefaultWindow      = time.Minute
	// DefaultLoginLimit: logins an address may start per DefaultLoginWindow. A person
	// starts a handful a minute (one per application, a few retries); 100 leaves room for
	// a NAT or an office proxy of many people (a sustained 1.7 a second, about 6000 an
	// hour) while one address can hold at most 100 + 100 per minute of the realm's login
	// timeout pending logins (3100, a few MB, with the default 30 minutes) instead of
	// whatever its request rate allows.
	DefaultLoginLimit  = 100
	DefaultLoginWindow = time.Minute
	// DefaultAuditWindow: a key's first refusal is written at once, the next ones in this
	// window as one summary when it closes.
	DefaultAuditWindow = 10 * time.Second
	// DefaultMaxAuditKeys bounds the keys aggregated at once: with the audit window, at
	// most 2×1024+3 lines per 10 s (a first line and a summary per key, and one overflow
	// summary per kind), about 200 lines a second whatever the flood.
	DefaultMaxAuditKeys = 1024
	// DefaultMaxAddresses bounds the addresses (and the client/address pairs known good)
	// the limiter remembers: about 150 bytes each.
	DefaultMaxAddresses = 10000
	// knownGoodFor is how long an address that authenticated a client stays exempt from
	// that client's limit.
	knownGoodFor = time.Hour
	// maxField bounds a client id or realm name as written: what a caller sent is cut.
	maxField = 128
)

// Options tune a Guard.
//
// Slowing is per address and per client. Each keeps a token bucket of Limit (ClientLimit)
// failures that refills over Window: once it is empty, attempts are refused with 429 before
// the credential is compared, until one failure's worth has refilled (Window/Limit), so a
// caller that keeps failing gets Limit failures per Window and no more. Success costs
// nothing and refills nothing.
//
//   - Per address, for every kind: an address whose bucket is empty is refused everything,
//     correct credentials included (they cannot be told apart without comparing them, and
//     a refused attacker must learn nothing and cost nothing). Callers sharing the address
//     share the bucket: behind a proxy, sessiond must be told to trust its headers, or
//     every caller has the proxy's address.
//   - Per client, for OAuth clients only, counting wrong or missing secrets of a known
//     confidential client from any address: it bounds a guessing attack spread over many
//     addresses, which the per-address limit cannot see. Anyone who knows a client id
//     (they are not secret) could then lock the client out, as Keycloak's brute force
//     detection lets anyone lock a user out. So the client's limit does not apply to an
//     address that authenticated that client in the last hour (known good): the client's
//     own servers keep working through an attack on it; an attacker, who cannot have
//     authenticated it, is slowed; a new server of the client's that starts during the
//     attack is slowed too, until the attack stops or an old server's address is used.
//     The per-address limit still applies to known good addresses.
//
// Bounds: MaxAddresses addresses, MaxAddresses client/address pairs known good and
// MaxAddresses clients are remembered, the least recently failing (or succeeding) forgotten
// first. An attacker with more addresses than that at once makes each look new (the
// per-address limit no longer holds for it), but the per-client limit does. The budget of
// logins started keeps MaxAddresses addresses of its own, with the same trade-off. For the audit,
// MaxAuditKeys keys are aggregated at once; refusals beyond them are counted per kind and
// written as one overflow summary per audit window.
type Options struct {
	// Limit is the failures an address may make per Window; 0 turns the per-address limit
	// off. ClientLimit the same for one client (from addresses not known good); 0 turns it
	// off. Both 0: nothing is ever slowed (refusals are still audited).
	Limit, ClientLimit int
	Window             time.Duration // 0 means DefaultWindow
	// LoginLimit is the logins an address may start per LoginWindow (StartLogin): every
	// start takes from a token bucket of LoginLimit that refills over LoginWindow, kept
	// apart from the failures'. Unlike failures, IPv6 addresses are counted by their /64
	// prefix, which one host usually holds whole. 0 turns it off.
	LoginLimit   int
	LoginWindow  time.Duration // 0 means DefaultLoginWindow
	AuditWindow  time.Duration // 0 means DefaultAuditWindow
	MaxAuditKeys int           // 0 means DefaultMaxAuditKeys
	MaxAddresses int           // 0 means DefaultMaxAddresses
	Counter      Counter       // nil counts nothing
	Now          func() time.Time
}

// Guard audits and slows failed authentication. Its methods are safe for concurrent use;
// Run flushes the aggregated audit and must run until the server stops.
type Guard struct {
	now     func() time.Time
	counter Counter
	limits  *limiter
	logins  *limiter // of the logins started, by address only
	audit   *aggregator
}

// New returns a Guard writing to sink.
func New(sink Sink, o Options) *Guard {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = DefaultLoginWindow
	}
	if o.AuditWindow <= 0 {
		o.AuditWindow = DefaultAuditWindow
	}
	if o.MaxAuditKeys <= 0 {
		o.MaxAuditKeys = DefaultMaxAuditKeys
	}
	if o.MaxAddresses <= 0 {
		o.MaxAddresses = DefaultMaxAddresses
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Guard{
		now:     o.Now,
		counter: o.Counter,
		limits:  newLimiter(o.Limit, o.ClientLimit, o.Window, o.MaxAddresses),
		logins:  newLimiter(o.LoginLimit, 0, o.LoginWindow, o.MaxAddresses),
		audit:   newAggregator(sink, o.AuditWindow, o.MaxAuditKeys),
	}
}

// Check refuses an attempt with a *ThrottledError when its address or client failed too
// often. It is called before the credential is compared, and records nothing: the caller
// reports the refusal (ReasonThrottled) as any other.
func (g *Guard) Check(a Attempt) error {
	wait, byClient := g.limits.wait(a, g.now())
	if wait <= 0 {
		return nil
	}
	return &ThrottledError{Kind: a.Kind, RetryAfter: wait, ByClient: byClient}
}

// StartLogin takes a login's worth of a.Addr's budget (a.Kind KindLogin), or refuses it
// with a *ThrottledError when the address started too many: then nothing is taken, and
// the caller reports the refusal (ReasonThrottled) to Refused and writes nothing.
func (g *Guard) StartLogin(a Attempt) error {
	wait := g.logins.take(loginKey(a.Addr), g.now())
	if wait <= 0 {
		return nil
	}
	return &ThrottledError{Kind: KindLogin, RetryAfter: wait}
}

// Refused audits a refusal and, when it is a failure to authenticate, charges it to the
// address and (a known client's wrong secret) to the client.
func (g *Guard) Refused(r Refusal) {
	now := g.now()
	switch r.Reason {
	case ReasonThrottled, ReasonForbidden:
		// Not a new failure: a throttled attempt was not compared, a forbidden one
		// authenticated.
	default:
		g.limits.fail(r.Attempt, r.Reason == ReasonInvalidSecret, now)
	}
	if g.counter != nil {
		g.counter.AuthRefused(string(r.Kind), r.Reason)
	}
	r.Realm, r.ClientID, r.Target = safe(r.Realm), safe(r.ClientID), safe(r.Target)
	g.audit.record(r, now)
}

// Succeeded remembers that a.Addr authenticated a.ClientID (KindClient), which exempts the
// address from that client's limit.
func (g *Guard) Succeeded(a Attempt) {
	if a.Kind == KindClient {
		g.limits.succeeded(a, g.now())
	}
}

// Run writes the aggregated summaries as their windows close, until ctx ends; it then
// writes every summary still open, and refusals that come later are written one by one.
func (g *Guard) Run(ctx context.Context) {
	tick := time.NewTicker(max(g.audit.window/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			g.audit.flush(g.now(), false)
		case <-ctx.Done():
			g.audit.flush(g.now(), true)
			return
		}
	}
}

// Flush writes the summaries whose window has closed by now; all of them when final. Run
// calls it; tests drive it with their clock.
func (g *Guard) Flush(final bool) { g.audit.flush(g.now(), final) }

// safe bounds what a caller wrote and keeps characters that are safe in any log format:
// letters, digits and -._~:/@+=; anything else becomes '?', and a value longer than
// maxField bytes is cut and ends with "…".
func safe(s string) string {
	cut := len(s) > maxField
	if cut {
		s = s[:maxField]
	}
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-._~:/@+= ", r):
			return r
		}
		return '?'
	}, s)
	if cut {
		clean += "…"
	}
	return clean
}
