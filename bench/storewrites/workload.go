package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/core/groupcommit"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const (
	clientID = "app"
	idle     = 30 * time.Minute
)

// sess is what the callers know of one session: its key and the last acknowledged state
// of its client session and idle clock. Each session belongs to one caller, which alone
// writes it, so no lock is needed and the version a caller holds is the stored one.
type sess struct {
	key       usersessions.Key
	client    usersessions.ClientSession // as last acknowledged; Version is the stored version
	lastTouch time.Time                  // the latest acknowledged last_refresh of the user session
	refreshes int                        // acknowledged refreshes
}

// ledger is every acknowledged write of one variant, per caller.
type ledger struct {
	realm    string
	byCaller [][]*sess
}

func newLedger(realm string, callers int) *ledger {
	return &ledger{realm: realm, byCaller: make([][]*sess, callers)}
}

// store is one way of writing: the two writes a benchmark caller makes.
type store interface {
	// create stores us with its client session, one write.
	create(ctx context.Context, us *usersessions.UserSession) error
	// refresh rotates the refresh token of s's client session with the version s holds,
	// then moves the user session's idle clock to at; it updates s as each write is
	// acknowledged.
	refresh(ctx context.Context, s *sess, at time.Time, read bool) error
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newSession is a session as a login makes it: one client session, the first refresh
// token issued.
func newSession(realm, id string, at time.Time) *usersessions.UserSession {
	return &usersessions.UserSession{
		ID: id, RealmID: realm, UserID: "user-" + id, LoginUsername: "user-" + id + "@example.com",
		IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) storewrites",
		AuthMethod: "openid-connect", State: usersessions.LoggedIn,
		Started: at, LastRefresh: at, ExpiresAt: at.Add(idle),
		Notes: map[string]string{"AUTH_TIME": fmt.Sprint(at.Unix())},
		Clients: map[string]*usersessions.ClientSession{clientID: {
			UserSessionID: id, RealmID: realm, ClientID: clientID,
			Started: at, LastRefresh: at, ExpiresAt: at.Add(idle),
			AuthMethod: "openid-connect", RedirectURI: "https://app.example.com/callback", Action: "AUTHENTICATE",
			Scope: "openid profile email", Notes: map[string]string{"iss": "https://sso.example.com/realms/" + realm},
			CurrentRefreshToken: "rt-" + id + "-1",
		}},
	}
}

// rotated is c after one refresh with rotation at at, as core/session/refresh.go plans it:
// the new token current, the old one previous, the clocks moved; Version is still the
// one read, which the write checks.
func rotated(c usersessions.ClientSession, at time.Time) usersessions.ClientSession {
	c.PreviousRefreshToken = c.CurrentRefreshToken
	c.CurrentRefreshToken = fmt.Sprintf("rt-%s-%d", c.UserSessionID, c.Version+1)
	c.CurrentRefreshTokenUseCount = 0
	c.RotatedAt, c.LastRefresh, c.ExpiresAt = at, at, at.Add(idle)
	return c
}

// phase runs one measured phase: c.callers goroutines writing for c.dur.
func (b *bench) phase(ctx context.Context, phase, variant string, st store, led *ledger, ts *stats) result {
	var (
		stop     atomic.Bool
		ops      atomic.Int64
		errCount atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	failed := func(err error) {
		errCount.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	t0 := time.Now()
	timer := time.AfterFunc(b.c.dur, func() { stop.Store(true) })
	defer timer.Stop()
	for g := range b.c.callers {
		wg.Go(func() {
			switch phase {
			case "create":
				for n := 0; !stop.Load() && ctx.Err() == nil; n++ {
					us := newSession(led.realm, fmt.Sprintf("s%02d-%08d", g, n), now())
					t0 := time.Now()
					err := st.create(ctx, us)
					ts.op.since(t0)
					if err != nil {
						failed(fmt.Errorf("create %s: %w", us.ID, err))
						return
					}
					cs := *us.Clients[clientID]
					cs.Version = 1 // as Create stores it
					led.byCaller[g] = append(led.byCaller[g], &sess{key: us.Key(), client: cs, lastTouch: us.LastRefresh})
					ops.Add(1)
				}
			case "refresh":
				mine := led.byCaller[g]
				for n := 0; len(mine) > 0 && !stop.Load() && ctx.Err() == nil; n++ {
					s := mine[n%len(mine)]
					t0 := time.Now()
					err := st.refresh(ctx, s, now(), b.c.read)
					ts.op.since(t0)
					if err != nil {
						failed(fmt.Errorf("refresh %s: %w", s.key.ID, err))
						return
					}
					ops.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return result{phase: phase, variant: variant, ops: ops.Load(), elapsed: time.Since(t0), errors: errCount.Load(), firstErr: firstErr}
}

func firstErr(errs []error, err error) error {
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// latencies records durations.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) since(t0 time.Time) {
	d := time.Since(t0)
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// dist is a summary of durations.
type dist struct {
	n              int
	mean, p50, p99 time.Duration
}

func (d dist) String() string {
	return fmt.Sprintf("%d, mean %s p50 %s p99 %s", d.n, ms(d.mean), ms(d.p50), ms(d.p99))
}

func (l *latencies) dist() dist {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return dist{}
	}
	slices.Sort(l.d)
	var sum time.Duration
	for _, d := range l.d {
		sum += d
	}
	return dist{n: len(l.d), mean: sum / time.Duration(len(l.d)), p50: l.d[len(l.d)/2], p99: l.d[len(l.d)*99/100]}
}

// stats are the timings of one phase: each benchmark operation as its caller sees it,
// and each store call (plugin variants; with group commit one call is one batch) or
// transaction (sqlx), in all and per store method.
type stats struct {
	op, calls, create, put, touch, rotate latencies
}

// timed is a groupcommit.Store that times every call to s.
type timed struct {
	s  groupcommit.Store
	st *stats
}

func (t timed) Create(ctx context.Context, s []*usersessions.UserSession) ([]error, error) {
	defer t.st.calls.since(time.Now())
	defer t.st.create.since(time.Now())
	return t.s.Create(ctx, s)
}

func (t timed) Touch(ctx context.Context, s []usersessions.Touch) ([]error, error) {
	defer t.st.calls.since(time.Now())
	defer t.st.touch.since(time.Now())
	return t.s.Touch(ctx, s)
}

func (t timed) PutClientSessions(ctx context.Context, s []*usersessions.ClientSession) ([]error, error) {
	defer t.st.calls.since(time.Now())
	defer t.st.put.since(time.Now())
	return t.s.PutClientSessions(ctx, s)
}

func (t timed) Rotate(ctx context.Context, r []usersessions.Rotation) ([]error, error) {
	defer t.st.calls.since(time.Now())
	defer t.st.rotate.since(time.Now())
	return usersessions.Rotate(ctx, t.s, r)
}

// providerStore writes through the plugin's provider, straight (one store call and so
// one transaction per write) or through a groupcommit.Writer in front of it.
type providerStore struct {
	w groupcommit.Store
	p usersessions.Provider // reads
	// rotate, when set, writes a refresh's rotation and touch as one rotation: in one
	// store call (usersessions.Rotate) or in two at once (usersessions.RotateApart), as
	// core/session commit() does now and did before Rotate.
	rotate func(ctx context.Context, w groupcommit.Store, r []usersessions.Rotation) ([]error, error)
}

func (ps providerStore) create(ctx context.Context, us *usersessions.UserSession) error {
	return firstErr(ps.w.Create(ctx, []*usersessions.UserSession{us}))
}

// refresh writes what core/session/refresh.go commit() writes for a refresh with
// rotation: PutClientSessions with the version read, then a Touch of the user session.
func (ps providerStore) refresh(ctx context.Context, s *sess, at time.Time, read bool) error {
	if read {
		got, err := ps.p.Get(ctx, []usersessions.Key{s.key})
		if err != nil {
			return err
		}
		if got[0] == nil || got[0].Clients[clientID] == nil {
			return fmt.Errorf("read: session or client session missing: %w", spi.ErrNotFound)
		}
		if v := got[0].Clients[clientID].Version; v != s.client.Version {
			return fmt.Errorf("read version %d, last acknowledged %d", v, s.client.Version)
		}
	}
	next := rotated(s.client, at)
	if ps.rotate != nil {
		r := usersessions.Rotation{Client: &next, LastRefresh: at, ExpiresAt: at.Add(idle)}
		if err := firstErr(ps.rotate(ctx, ps.w, []usersessions.Rotation{r})); err != nil {
			return err
		}
		next.Version++
		s.client, s.lastTouch = next, at
		s.refreshes++
		return nil
	}
	if err := firstErr(ps.w.PutClientSessions(ctx, []*usersessions.ClientSession{&next})); err != nil {
		return err
	}
	next.Version++
	s.client = next
	t := usersessions.Touch{Session: s.key, LastRefresh: at, ExpiresAt: at.Add(idle)}
	if err := firstErr(ps.w.Touch(ctx, []usersessions.Touch{t})); err != nil {
		return err
	}
	s.lastTouch = at
	s.refreshes++
	return nil
}

// sqlxStore issues the equivalent SQL straight from Go with sqlx, one transaction per
// write. With channel set, every transaction also does the pg_notify the provider adds
// for its change feed.
type sqlxStore struct {
	db      *sqlx.DB
	channel string
	st      *stats
}

const (
	insertUserSession = `INSERT INTO user_session (realm_id, id, offline, id_hash, user_id, login_username, ip_address,
	user_agent, auth_method, broker_session_id, broker_user_id, remember_me, state, started, last_refresh, expires_at, notes, version)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1)`
	insertClientSession = `INSERT INTO client_session (realm_id, user_session_id, offline, client_id, started, last_refresh,
	expires_at, auth_method, redirect_uri, action, scope, notes, current_refresh_token, current_refresh_token_use_count,
	previous_refresh_token, rotated_at, version)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1)`
	rotateClientSession = `UPDATE client_session SET last_refresh = $5, expires_at = $6, current_refresh_token = $7,
	current_refresh_token_use_count = 0, previous_refresh_token = $8, rotated_at = $9, version = version + 1
	WHERE realm_id = $1 AND user_session_id = $2 AND offline = $3 AND client_id = $4 AND version = $10`
	touchUserSession = `UPDATE user_session SET
	last_refresh = CASE WHEN $4 > last_refresh THEN $4 ELSE last_refresh END,
	expires_at = CASE WHEN $4 > last_refresh OR ($4 = last_refresh AND $5 > expires_at) THEN $5 ELSE expires_at END
	WHERE realm_id = $1 AND id = $2 AND offline = $3`
	readClientVersion = `SELECT version FROM client_session WHERE realm_id = $1 AND user_session_id = $2 AND offline = $3 AND client_id = $4`
)

func jsonNotes(m map[string]string) string {
	out := "{"
	first := true
	for k, v := range m {
		if !first {
			out += ","
		}
		first = false
		out += fmt.Sprintf("%q:%q", k, v)
	}
	return out + "}"
}

func idHash(id string) int64 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int64(h.Sum32() & 0x7fffffff)
}

// tx runs fn in one transaction and commits it.
func (ss sqlxStore) tx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	defer ss.st.calls.since(time.Now())
	tx, err := ss.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// notify is the provider's change-feed NOTIFY of one change, with a payload of the same
// shape and size.
func (ss sqlxStore) notify(ctx context.Context, tx *sqlx.Tx, k usersessions.Key, client string) error {
	if ss.channel == "" {
		return nil
	}
	payload := fmt.Sprintf(`{"o":"storewrites","c":[{"k":1,"r":%q,"i":%q,"c":%q}]}`, k.RealmID, k.ID, client)
	_, err := tx.ExecContext(ctx, "SELECT pg_notify($1, $2)", ss.channel, payload)
	return err
}

func (ss sqlxStore) create(ctx context.Context, us *usersessions.UserSession) error {
	c := us.Clients[clientID]
	return ss.tx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, insertUserSession, us.RealmID, us.ID, us.Offline, idHash(us.ID), us.UserID,
			us.LoginUsername, us.IPAddress, us.UserAgent, us.AuthMethod, us.BrokerSessionID, us.BrokerUserID, us.RememberMe,
			string(us.State), us.Started, us.LastRefresh, us.ExpiresAt, jsonNotes(us.Notes)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertClientSession, us.RealmID, us.ID, us.Offline, clientID, c.Started, c.LastRefresh,
			c.ExpiresAt, c.AuthMethod, c.RedirectURI, c.Action, c.Scope, jsonNotes(c.Notes), c.CurrentRefreshToken,
			c.CurrentRefreshTokenUseCount, c.PreviousRefreshToken, c.RotatedAt); err != nil {
			return err
		}
		return ss.notify(ctx, tx, us.Key(), "")
	})
}

// refresh is the rotation (version checked) and the touch in one transaction.
func (ss sqlxStore) refresh(ctx context.Context, s *sess, at time.Time, read bool) error {
	k := s.key
	next := rotated(s.client, at)
	err := ss.tx(ctx, func(tx *sqlx.Tx) error {
		if read {
			var v int64
			if err := tx.GetContext(ctx, &v, readClientVersion, k.RealmID, k.ID, k.Offline, clientID); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if v != s.client.Version {
				return fmt.Errorf("read version %d, last acknowledged %d", v, s.client.Version)
			}
		}
		res, err := tx.ExecContext(ctx, rotateClientSession, k.RealmID, k.ID, k.Offline, clientID,
			next.LastRefresh, next.ExpiresAt, next.CurrentRefreshToken, next.PreviousRefreshToken, next.RotatedAt, next.Version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("rotation with version %d updated %d rows (%v): %w", next.Version, n, err, spi.ErrConflict)
		}
		res, err = tx.ExecContext(ctx, touchUserSession, k.RealmID, k.ID, k.Offline, at, at.Add(idle))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("touch updated %d rows (%v): %w", n, err, spi.ErrNotFound)
		}
		return ss.notify(ctx, tx, k, clientID)
	})
	if err != nil {
		return err
	}
	next.Version++
	s.client, s.lastTouch = next, at
	s.refreshes++
	return nil
}
