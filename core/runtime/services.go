package runtime

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/actiontoken"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/core/cleanup"
	"github.com/sessiond/sessiond/core/dpop"
	"github.com/sessiond/sessiond/core/eventlog"
	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/core/httpapi"
	loginflow "github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/login/devlogin"
	"github.com/sessiond/sessiond/core/preload"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/core/volatile"
	"github.com/sessiond/sessiond/providers/cachelifespan/remaining"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// wire builds the services over the started providers and returns the HTTP API. issuerBase
// is the base URL of the tokens' issuers.
func (rt *Runtime) wire(opts Options, issuerBase string) (*httpapi.Server, error) {
	store, ok := rt.providers.Get(spi.UserSessions).(usersessions.Provider)
	if !ok {
		return nil, fmt.Errorf("the user-sessions provider does not implement the user-sessions SPI")
	}
	lifespans, ok := rt.providers.Get(spi.CacheLifespan).(cachelifespan.Provider)
	if !ok {
		return nil, fmt.Errorf("the cache-lifespan provider does not implement the cache-lifespan SPI")
	}
	planner, ok := rt.providers.Get(spi.OfflinePreload).(offlinepreload.Provider)
	if !ok {
		return nil, fmt.Errorf("the offline-preload provider does not implement the offline-preload SPI")
	}
	// Optional abilities of the provider itself (in process; the plugin protocol does not
	// carry them): whether it can write now, and how long it lets one write take.
	rt.writeProbe, _ = store.(usersessions.WriteProber)
	var writeTimeout time.Duration
	if b, ok := store.(usersessions.WriteBounder); ok {
		ctx, cancel := context.WithTimeout(rt.bg, readinessProbe)
		d, err := b.WriteTimeout(ctx)
		cancel()
		writeTimeout = d
		if err != nil {
			return nil, fmt.Errorf("the user-sessions provider's write timeout: %w", err)
		}
	}
	if opts.wrapStore != nil {
		store = opts.wrapStore(store)
	}
	kek, err := rt.keyEncryptionKey()
	if err != nil {
		return nil, err
	}
	keys, err := token.NewKeyManager(store, token.KeyOptions{Now: opts.now, Log: rt.log.Named("keys"), Passive: keyPassive(rt.realms, 0), KEK: kek})
	if err != nil {
		return nil, err
	}
	if err := rt.checkKeys(keys); err != nil {
		return nil, err
	}
	if every := rt.settings.KeyRotationInterval; every > 0 {
		rt.goBackground(func(ctx context.Context) { rt.rotateKeys(ctx, keys, every) })
	}
	tokens := token.New(keys, token.Options{IssuerBase: issuerBase, Now: opts.now, RefuseLegacy: rt.settings.RefuseLegacyTokens, Log: rt.log.Named("tokens"),
		VerifiedTokens: rt.settings.VerifiedTokenCache})
	features := rt.settings.Features
	sessionStore := usersessions.Provider(store)
	if !features.Enabled(conf.FeaturePersistentUserSessions) {
		// Online sessions live in this process only, as in Keycloak with the feature off;
		// offline sessions and everything else still go to the store.
		online := memory.New(rt.log.Named("online-sessions"))
		if err := online.Configure(rt.bg, spi.Config{spi.HostNodeID: rt.settings.NodeID}); err != nil {
			return nil, fmt.Errorf("in-memory online sessions: %w", err)
		}
		sessionStore = volatile.New(online, store)
		rt.log.Info("persistent-user-sessions is off: online sessions are kept in memory and lost on restart")
	}
	rt.store = sessionStore
	rt.storeReady = newCachedCheck(storeCheckName, readinessEvery, rt.storeCheck)
	// Concurrent refreshes share one store call, and so one commit (group commit); each
	// is answered once its own write is committed. group-commit-max-in-flight lets
	// store calls go at once, so that their commits overlap.
	// A group-commit store call ends when the store would end the write anyway: the
	// callers of a batch whose commit hangs get their answer at the store's bound, not at
	// the group commit's default.
	rt.writer = groupcommit.New(sessionStore, groupcommit.Options{Timeout: writeTimeout, MaxInFlight: rt.settings.GroupCommitInFlight})
	// The cache asks the cache-lifespan provider once per batch of sessions it takes in.
	// The built-in default's answer is each session's own end, which is what the cache
	// does when not told: it is not asked, saving a plugin round trip per cache miss.
	var cacheLifespans cache.Lifespans
	if rt.settings.SPIs[spi.CacheLifespan].Provider != remaining.ID {
		cacheLifespans = cache.ProviderLifespans(lifespans)
	}
	rt.cache = cache.New(groupcommit.Front(sessionStore, rt.writer), cache.Options{
		NodeID: rt.settings.NodeID, MaxEntries: rt.settings.CacheMaxEntries,
		Lifespans: cacheLifespans, Now: opts.now, Log: rt.log.Named("cache"),
	})
	rt.goBackground(rt.cache.Follow)
	// An eager offline preload starts once the stored expiries are current (below): a
	// recompute rewrites sessions behind the cache, which would void a preload beside it.
	recomputed := make(chan struct{})
	rt.preload = preload.New(preload.Deps{
		Store: sessionStore, Cache: rt.cache, Planner: planner, Now: opts.now, Log: rt.log.Named("preload"),
		Wait:   recomputed,
		Expect: func(sessions int) { GrowHeapFor(rt.log.Named("preload"), min(sessions, rt.cache.Stats().MaxEntries)) },
		Realms: func() []string {
			var names []string
			for _, r := range rt.realms.List() {
				names = append(names, r.Name)
			}
			return names
		},
	})
	// Planned before the runtime serves, so that readiness is right from the first probe;
	// executed in the background.
	rt.preload.Plan(rt.bg)
	if rt.preload.Status().State == preload.Running { // an eager plan: Execute preloads
		rt.goBackground(func(ctx context.Context) {
			defer ReturnPreloadGarbage(rt.log)
			defer RelaxGC(rt.log)()
			rt.preload.Execute(ctx)
		})
	}
	events, err := rt.observe(sessionStore)
	if err != nil {
		return nil, err
	}
	if m := rt.obs.metrics; m != nil {
		if err := m.WatchLegacyTokens(tokens); err != nil {
			return nil, err
		}
	}
	notBefore := rt.startPolicies(store, opts.now)
	if err := rt.startPush(store, keys, tokens, opts.now); err != nil {
		return nil, err
	}
	adm := rt.adminService(sessionStore, keys, opts.now)
	// Session limits count in the store itself, never in this node's cache: every node
	// must see every node's sessions. A session ended to make room goes the admin API's way.
	limits := sessionlimit.New(sessionlimit.Deps{Store: sessionStore, End: adm.EndForLimit, Now: opts.now, Log: rt.log.Named("session-limits")})
	if !features.Enabled(conf.FeaturePersistentUserSessions) {
		for _, r := range rt.realms.List() {
			if r.SessionLimits.Any() {
				rt.log.Warn("persistent-user-sessions is off: online sessions are in each node's memory, so this realm's session limits hold per node, not across nodes",
					"realm", r.Name)
			}
		}
	}
	sessions := session.New(session.Deps{
		Store:              rt.cache,
		Realms:             rt.realms,
		Tokens:             tokens,
		NotBefore:          notBefore,
		Now:                opts.now,
		PersistentSessions: features.Enabled(conf.FeaturePersistentUserSessions),
		TransientSessions:  features.Enabled(conf.FeatureTransientSessions),
		Log:                rt.log.Named("sessions"),
		Events:             events,
		Ends:               rt.sessionEnds(),
		Limits:             limits,
		Records:            store,
	})

	persistent := features.Enabled(conf.FeaturePersistentUserSessions)
	cleaner, err := cleanup.New(rt.cleanupDeps(sessionStore),
		cleanup.Options{Interval: rt.settings.CleanupInterval, BatchSize: rt.settings.CleanupBatchSize})
	if err != nil {
		return nil, err
	}
	if err := rt.watch(cleaner); err != nil {
		return nil, err
	}
	rt.goBackground(func(ctx context.Context) {
		// Stored expiries first: a pass over stale ones could remove sessions a longer
		// timeout keeps. A realm whose recompute fails is retried by every pass, which
		// deletes nothing until it succeeds.
		if done, _ := cleaner.Recompute(ctx, cleanup.RulesFor(persistent, rt.realms.List()...)...); rewrote(done) {
			rt.cache.Forget() // the cleaner wrote behind the cache's back
		}
		close(recomputed)
		cleaner.Run(ctx)
	})

	actions := actiontoken.New(actiontoken.Deps{Tokens: tokens, Store: store, Realms: rt.realms, NotBefore: rt.policies,
		Now: opts.now, Log: rt.log.Named("action-tokens")})
	// The records of used action tokens go once the tokens have expired, on the sessions'
	// cleanup schedule.
	rt.goBackground(func(ctx context.Context) { actions.Run(ctx, cleaner.Options().Interval) })

	frontend, admin, err := rt.credentials(opts)
	if err != nil {
		return nil, err
	}
	guard := rt.authGuard(opts.now)
	loginDeps := loginflow.Deps{
		Records: store, Sessions: sessions, UserSessions: rt.cache, Tokens: tokens, Realms: rt.realms,
		End: adm.EndSession, PersistentSessions: persistent, Now: opts.now, Log: rt.log.Named("login"),
	}
	if opts.Profile == conf.ProfileDev {
		loginDeps.DevFrontend = func(realmName string) string { return devlogin.URL(issuerBase, realmName) }
		rt.log.Warn("start-dev serves a development login front-end for realms without loginFrontendUrl: any username signs in without a password; start never serves it",
			"url", devlogin.URL(issuerBase, "{realm}"))
	}
	logins := loginflow.New(loginDeps)
	var devLogin http.Handler
	if opts.Profile == conf.ProfileDev {
		devLogin = devlogin.Handler(logins)
	}
	rt.goBackground(func(ctx context.Context) { rt.cleanLogins(ctx, logins) })
	proofs := dpop.New(store, dpop.Options{Now: opts.now})
	rt.goBackground(func(ctx context.Context) { rt.cleanProofs(ctx, proofs) })
	var adminConsole http.Handler
	if rt.settings.AdminConsoleEnabled {
		if adminConsole, err = rt.console(adm, sessions, guard, frontend, admin, store, kek, tokens.Issuer, opts.now); err != nil {
			return nil, err
		}
	}
	if err := rt.addDemoAccountConsole(opts.Profile, tokens.Issuer); err != nil {
		return nil, err
	}
	accounts := rt.accountService(sessionStore, tokens, adm, notBefore, persistent, opts.now)
	return httpapi.New(rt.log.Named("http"), httpapi.Deps{
		Ready:         rt,
		Sessions:      sessions,
		Keys:          keys,
		Realms:        rt.realms,
		Issuer:        tokens.Issuer,
		FrontendToken: frontend,
		AdminToken:    admin,
		// The view-only admin credential is never generated: start-dev's admin one does all.
		AdminViewerToken: rt.settings.AdminViewerToken,
		Admin:            adm,
		Login:            logins,
		DevLogin:         devLogin,
		HealthElsewhere:  rt.settings.Listen.Management,
		Guard:            guard,
		Actions:          actions,
		Console:          adminConsole,
		SSF:              rt.sharedSignals(),
		Account:          accounts,
		AccountConsole:   rt.accountConsole(accounts, logins, store, kek, opts.now),
		DPoP:             proofs,
	}), nil
}

// authGuard builds the guard of failed authentication and of logins started, which writes to the event sinks
// and counts in the metrics. Its flush of aggregated refusals is background work: it stops
// after the HTTP server, with a final flush, and before the event log.
func (rt *Runtime) authGuard(now func() time.Time) *authfail.Guard {
	o := authfail.Options{
		Limit: rt.settings.AuthFailureLimit, ClientLimit: rt.settings.AuthFailureClientLimit,
		Window: rt.settings.AuthFailureWindow, Now: now,
		LoginLimit: rt.settings.LoginRequestLimit, LoginWindow: rt.settings.LoginRequestWindow,
	}
	if rt.obs.metrics != nil { // an interface holding a nil pointer would not read as "none"
		o.Counter = rt.obs.metrics
	}
	if o.Limit == 0 && o.ClientLimit == 0 {
		rt.log.Warn("failed authentication is not slowed (auth-failure-limit and auth-failure-client-limit are 0); it is still audited")
	}
	if o.LoginLimit == 0 {
		rt.log.Warn("logins started at the authorization endpoint are not limited (login-request-limit is 0): one address can fill the store with pending logins")
	}
	g := authfail.New(rt.obs.events, o)
	rt.goBackground(g.Run)
	return g
}

// rewrote reports whether a recompute changed stored sessions.
func rewrote(done []cleanup.RealmRecompute) bool {
	for _, d := range done {
		if d.Sessions > 0 || d.Clients > 0 {
			return true
		}
	}
	return false
}

// credentials returns the front-end and admin bearer credentials. start-dev generates the
// missing ones and shows them once on the operator's terminal, never in the log.
func (rt *Runtime) credentials(opts Options) (frontend, admin string, err error) {
	frontend, admin = rt.settings.FrontendToken, rt.settings.AdminToken
	for _, c := range []struct {
		name string
		val  *string
	}{{"frontend-token", &frontend}, {"admin-token", &admin}} {
		if *c.val != "" {
			continue
		}
		if opts.Profile != conf.ProfileDev {
			rt.log.Warn("credential not configured: its callers are refused", "option", c.name)
			continue
		}
		if *c.val, err = newSecret(); err != nil {
			return "", "", err
		}
		rt.notices = append(rt.notices, fmt.Sprintf("start-dev: generated --%s=%s (shown once)", c.name, *c.val))
	}
	return frontend, admin, nil
}

// eventLog writes the session event stream as structured log lines under
// "sessiond.events", one line an event, for a SIEM to ingest (JSON with log-format=json).
// Its lines are the event log's (eventlog.SessionLine, eventlog.AuditLine): the same fields,
// the same closed set of reasons, the same redaction of what looks like a token.
type eventLog struct {
	log interface{ Info(string, ...any) }
}

func (e eventLog) Emit(ev session.Event) {
	l := eventlog.SessionLine(ev)
	args := []any{"type", l.Type, "realm", l.Realm, "time", l.Timestamp, "outcome", l.Outcome}
	for _, kv := range [][2]string{{"client_id", l.ClientID}, {"session_id", l.SessionID}, {"user_id", l.UserID},
		{"ip", l.IP}, {"reason", l.Reason}, {"detail", l.Detail}, {"reuse", l.Reuse}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if l.Offline != nil && *l.Offline {
		args = append(args, "offline", true)
	}
	if l.Transient {
		args = append(args, "transient", true)
	}
	if l.EndedClientSession {
		args = append(args, "ended_client_session", true)
	}
	e.log.Info("event", args...)
}

// cleanLogins removes expired authentication sessions and codes every cleanup interval
// until ctx ends. Every node does it: a record another node removed first is skipped.
func (rt *Runtime) cleanLogins(ctx context.Context, logins *loginflow.Service) {
	every := rt.settings.CleanupInterval
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := logins.Cleanup(ctx); err != nil {
				rt.log.Warn("expired logins could not all be removed; the next pass tries again", "error", err)
			} else if n > 0 {
				rt.log.Debug("expired logins removed", "records", n)
			}
		}
	}
}
