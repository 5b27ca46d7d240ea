// Package memory is the user-sessions provider that keeps everything in process memory. It is
// for tests and throwaway runs: nothing survives a restart and nodes cannot share it.
//
// Sessions are indexed by realm (in id order, for keyset paging), by user and by client, so
// listings and counts touch only the sessions they could select.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// ID is the provider id of this package.
const ID = "memory"

// Version is this provider's own version.
const Version = "1.0.0"

// Option names.
const (
	OptMaxSessions = "max-sessions"
	OptWatchBuffer = "watch-buffer"
)

const (
	defaultWatchBuffer = 10000
	// defaultPageSize applies when a Page or StreamRequest asks for no limit, so that one
	// call never copies the whole store.
	defaultPageSize = 100
)

var errClosed = fmt.Errorf("memory provider is closed: %w", spi.ErrUnavailable)

// Provider is the in-memory user-sessions store. It is safe for concurrent use.
type Provider struct {
	log hclog.Logger
	now func() time.Time // stamps records and deliveries; replaced in tests

	mu          sync.RWMutex
	closed      bool
	maxSessions int
	watchBuffer int
	origin      string
	sessions    map[usersessions.Key]*stored
	realms      map[string]*realmIndex
	records     map[recordKey]*usersessions.Record
	deliveries  map[string]*usersessions.Delivery
	watchers    map[*watcher]struct{}
}

// stored is one user session and its client sessions. s.Clients is always nil; the client
// sessions live in clients so that Update cannot touch them by accident.
type stored struct {
	s       usersessions.UserSession
	clients map[string]*usersessions.ClientSession
}

var _ usersessions.Provider = (*Provider)(nil)

// New returns an empty store, usable with default options before Configure.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{
		log:         log,
		now:         time.Now,
		watchBuffer: defaultWatchBuffer,
		sessions:    make(map[usersessions.Key]*stored),
		realms:      make(map[string]*realmIndex),
		records:     make(map[recordKey]*usersessions.Record),
		deliveries:  make(map[string]*usersessions.Delivery),
		watchers:    make(map[*watcher]struct{}),
	}
}

// Describe implements spi.Provider.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.UserSessions,
		ID:      ID,
		Version: Version,
		Help:    "Keeps sessions in process memory only, lost when sessiond stops; for tests and throwaway runs, not production.",
		Options: []spi.Option{
			{Name: OptMaxSessions, Type: spi.Int, Default: "0",
				Help: "Most user sessions (online and offline, all realms) held at once; creating more fails. 0 means unlimited."},
			{Name: OptWatchBuffer, Type: spi.Int, Default: strconv.Itoa(defaultWatchBuffer),
				Help: "Changes a slow change-feed subscriber may fall behind by before its feed breaks and it must reload."},
		},
	}
}

// Configure implements spi.Provider.
func (p *Provider) Configure(_ context.Context, cfg spi.Config) error {
	maxSessions, err := intOption(cfg, OptMaxSessions, 0, 0)
	if err != nil {
		return err
	}
	watchBuffer, err := intOption(cfg, OptWatchBuffer, defaultWatchBuffer, 1)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxSessions = maxSessions
	p.watchBuffer = watchBuffer
	p.origin = cfg[spi.HostNodeID]
	p.log.Info("in-memory session store: sessions are lost when sessiond stops", "max_sessions", maxSessions)
	return nil
}

func intOption(cfg spi.Config, name string, def, least int) (int, error) {
	v, ok := cfg[name]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("option %s: %q is not a whole number: %w", name, v, spi.ErrInvalid)
	}
	if n < least {
		return 0, fmt.Errorf("option %s: %d is below the least allowed value %d: %w", name, n, least, spi.ErrInvalid)
	}
	return n, nil
}

// Close implements spi.Provider. It breaks every running Watch; later calls fail with
// spi.ErrUnavailable.
func (p *Provider) Close(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for w := range p.watchers {
		w.breakFeed(errClosed)
	}
	return nil
}

// lock takes the write lock unless ctx has ended or the provider is closed; on a nil
// error the caller must unlock.
func (p *Provider) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errClosed
	}
	return nil
}

// rlock is lock for readers.
func (p *Provider) rlock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return errClosed
	}
	return nil
}

// Create implements usersessions.Provider.
func (p *Provider) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	return eachItem(ctx, p, sessions, p.create)
}

// eachItem applies write to every item under the write lock, one error per item.
func eachItem[T any](ctx context.Context, p *Provider, items []T, write func(T) error) ([]error, error) {
	if err := p.lock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.Unlock()
	errs := make([]error, len(items))
	for i, it := range items {
		errs[i] = write(it)
	}
	return errs, nil
}

func (p *Provider) create(s *usersessions.UserSession) error {
	if s == nil {
		return fmt.Errorf("nil user session: %w", spi.ErrInvalid)
	}
	k := s.Key()
	if err := validKey(k); err != nil {
		return err
	}
	if err := s.CheckText(); err != nil {
		return fmt.Errorf("create user session: %w", err)
	}
	if _, ok := p.sessions[k]; ok {
		return fmt.Errorf("user session %s: %w", keyString(k), spi.ErrExists)
	}
	if p.maxSessions > 0 && len(p.sessions) >= p.maxSessions {
		return fmt.Errorf("user session %s: the memory provider already holds %d sessions, its %s limit: %w",
			keyString(k), p.maxSessions, OptMaxSessions, spi.ErrInvalid)
	}
	st := &stored{s: cloneSession(s), clients: make(map[string]*usersessions.ClientSession, len(s.Clients))}
	st.s.Clients = nil
	st.s.Version = 1
	for cid, c := range s.Clients {
		if cid == "" || c == nil {
			return fmt.Errorf("user session %s: client session without a client id: %w", keyString(k), spi.ErrInvalid)
		}
		cc := cloneClient(c)
		cc.ClientID, cc.UserSessionID, cc.RealmID, cc.Offline = cid, k.ID, k.RealmID, k.Offline
		cc.Version = 1
		st.clients[cid] = cc
	}
	p.sessions[k] = st
	p.index(k).add(st)
	p.publish(usersessions.Change{Kind: usersessions.Upserted, Session: k})
	return nil
}

// Get implements usersessions.Provider.
func (p *Provider) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	if err := p.rlock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.RUnlock()
	out := make([]*usersessions.UserSession, len(keys))
	for i, k := range keys {
		if st, ok := p.sessions[k]; ok {
			out[i] = st.export()
		}
	}
	return out, nil
}

// Update implements usersessions.Provider.
func (p *Provider) Update(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	return eachItem(ctx, p, sessions, p.update)
}

func (p *Provider) update(s *usersessions.UserSession) error {
	if s == nil {
		return fmt.Errorf("nil user session: %w", spi.ErrInvalid)
	}
	if err := s.CheckText(); err != nil {
		return fmt.Errorf("update user session: %w", err)
	}
	k := s.Key()
	st, ok := p.sessions[k]
	if !ok {
		return fmt.Errorf("user session %s: %w", keyString(k), spi.ErrNotFound)
	}
	if st.s.Version != s.Version {
		return fmt.Errorf("user session %s: stored version %d, given %d: %w", keyString(k), st.s.Version, s.Version, spi.ErrConflict)
	}
	ri := p.realms[k.RealmID]
	ri.remove(st)
	next := cloneSession(s)
	next.Clients = nil
	next.Version = st.s.Version + 1
	st.s = next
	ri.add(st)
	p.publish(usersessions.Change{Kind: usersessions.Upserted, Session: k})
	return nil
}

// Touch implements usersessions.Provider. The later LastRefresh wins, together with its
// ExpiresAt; of two touches with the same LastRefresh the later ExpiresAt wins. So touches
// commute, whatever order they arrive in.
func (p *Provider) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	return eachItem(ctx, p, touches, p.touch)
}

// touch applies all of t or, when the session or client session is missing, none of it.
func (p *Provider) touch(t usersessions.Touch) error {
	if err := t.CheckText(); err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	st, ok := p.sessions[t.Session]
	if !ok {
		return fmt.Errorf("touch of user session %s: %w", keyString(t.Session), spi.ErrNotFound)
	}
	var c *usersessions.ClientSession
	if t.ClientID != "" {
		if c, ok = st.clients[t.ClientID]; !ok {
			return fmt.Errorf("touch of client session %s/%s: %w", keyString(t.Session), t.ClientID, spi.ErrNotFound)
		}
	}
	advance(&st.s.LastRefresh, &st.s.ExpiresAt, t.LastRefresh, t.ExpiresAt)
	if c != nil {
		advance(&c.LastRefresh, &c.ExpiresAt, t.LastRefresh, t.ClientExpiresAt)
	}
	p.publish(usersessions.Change{Kind: usersessions.Upserted, Session: t.Session})
	return nil
}

func advance(last, expires *time.Time, newLast, newExpires time.Time) {
	newLast, newExpires = utcMicro(newLast), utcMicro(newExpires)
	switch {
	case newLast.After(*last):
		*last, *expires = newLast, newExpires
	case newLast.Equal(*last) && newExpires.After(*expires):
		*expires = newExpires
	}
}

// PutClientSessions implements usersessions.Provider. Putting a missing client session with
// a non-zero Version fails with spi.ErrNotFound.
func (p *Provider) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	return eachItem(ctx, p, clients, p.putClient)
}

func (p *Provider) putClient(c *usersessions.ClientSession) error {
	if c == nil {
		return fmt.Errorf("nil client session: %w", spi.ErrInvalid)
	}
	ck := c.Key()
	if err := validKey(ck.Session); err != nil {
		return err
	}
	if err := c.CheckText(); err != nil {
		return fmt.Errorf("put client session: %w", err)
	}
	if ck.ClientID == "" {
		return fmt.Errorf("client session of %s without a client id: %w", keyString(ck.Session), spi.ErrInvalid)
	}
	st, ok := p.sessions[ck.Session]
	if !ok {
		return fmt.Errorf("client session %s/%s: user session %w", keyString(ck.Session), ck.ClientID, spi.ErrNotFound)
	}
	old, exists := st.clients[ck.ClientID]
	switch {
	case c.Version == 0 && exists:
		return fmt.Errorf("client session %s/%s: %w", keyString(ck.Session), ck.ClientID, spi.ErrExists)
	case c.Version != 0 && !exists:
		return fmt.Errorf("client session %s/%s: %w", keyString(ck.Session), ck.ClientID, spi.ErrNotFound)
	case c.Version != 0 && old.Version != c.Version:
		return fmt.Errorf("client session %s/%s: stored version %d, given %d: %w",
			keyString(ck.Session), ck.ClientID, old.Version, c.Version, spi.ErrConflict)
	}
	next := cloneClient(c)
	next.Version = c.Version + 1
	st.clients[ck.ClientID] = next
	if !exists {
		p.realms[ck.Session.RealmID].addClient(ck.ClientID, ck.Session)
	}
	p.publish(usersessions.Change{Kind: usersessions.Upserted, Session: ck.Session, ClientID: ck.ClientID})
	return nil
}

// DeleteClientSessions implements usersessions.Provider.
func (p *Provider) DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error {
	if err := p.lock(ctx); err != nil {
		return err
	}
	defer p.mu.Unlock()
	for _, ck := range keys {
		if st, ok := p.sessions[ck.Session]; ok {
			p.removeClient(st, ck.ClientID)
		}
	}
	return nil
}

func (p *Provider) removeClient(st *stored, clientID string) bool {
	if _, ok := st.clients[clientID]; !ok {
		return false
	}
	k := st.s.Key()
	delete(st.clients, clientID)
	p.realms[k.RealmID].removeClient(clientID, k)
	p.publish(usersessions.Change{Kind: usersessions.Removed, Session: k, ClientID: clientID})
	return true
}

// Delete implements usersessions.Provider.
func (p *Provider) Delete(ctx context.Context, keys []usersessions.Key) (int, error) {
	if err := p.lock(ctx); err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	n := 0
	for _, k := range keys {
		if st, ok := p.sessions[k]; ok {
			p.remove(st)
			p.publish(usersessions.Change{Kind: usersessions.Removed, Session: k})
			n++
		}
	}
	return n, nil
}

func (p *Provider) remove(st *stored) {
	k := st.s.Key()
	delete(p.sessions, k)
	ri := p.realms[k.RealmID]
	ri.remove(st)
	if ri.empty() {
		delete(p.realms, k.RealmID)
	}
}

// DeleteMatching implements usersessions.Provider. With a ClientID it returns the number of
// client sessions removed, since no user session goes.
func (p *Provider) DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error) {
	if err := validFilter(f); err != nil {
		return 0, err
	}
	if err := p.lock(ctx); err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	n := 0
	for _, k := range p.selectKeys(f, cursor{}, -1, usersessions.Partition{}) {
		st := p.sessions[k]
		if f.ClientID == "" {
			p.remove(st)
			n++
			continue
		}
		// removeClient publishes per client session; the Flushed below covers them too,
		// but a watcher keyed by session may act on the finer change first.
		if p.removeClient(st, f.ClientID) {
			n++
		}
	}
	if n > 0 {
		p.publish(usersessions.Change{Kind: usersessions.Flushed, Filter: f})
	}
	return n, nil
}

// DeleteExpired implements usersessions.Provider. Oldest expiries go first. The client
// sessions removed with their user session count towards clients; client sessions that
// expired on their own are removed only while clients is below limit, so a caller that
// repeats until both counts are below limit has removed everything expired.
func (p *Provider) DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error) {
	if limit <= 0 {
		return 0, 0, fmt.Errorf("delete expired: limit %d must be positive: %w", limit, spi.ErrInvalid)
	}
	if err := p.lock(ctx); err != nil {
		return 0, 0, err
	}
	defer p.mu.Unlock()

	var expired []*stored
	for _, st := range p.sessions {
		if st.s.ExpiresAt.Before(before) {
			expired = append(expired, st)
		}
	}
	slices.SortFunc(expired, func(a, b *stored) int {
		return cmp.Or(a.s.ExpiresAt.Compare(b.s.ExpiresAt), compareKeys(a.s.Key(), b.s.Key()))
	})
	for _, st := range expired[:min(limit, len(expired))] {
		p.remove(st)
		p.publish(usersessions.Change{Kind: usersessions.Removed, Session: st.s.Key()})
		users++
		clients += len(st.clients)
	}

	// Client sessions whose user session is gone cannot exist here: removing a user
	// session removes its client sessions in the same critical section.
	var own []*usersessions.ClientSession
	for _, st := range p.sessions {
		for _, c := range st.clients {
			if c.ExpiresAt.Before(before) {
				own = append(own, c)
			}
		}
	}
	slices.SortFunc(own, func(a, b *usersessions.ClientSession) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), compareKeys(a.Key().Session, b.Key().Session), cmp.Compare(a.ClientID, b.ClientID))
	})
	for _, c := range own[:min(max(limit-clients, 0), len(own))] {
		p.removeClient(p.sessions[c.Key().Session], c.ClientID)
		clients++
	}
	return users, clients, nil
}

// List implements usersessions.Provider. A page never separates the online and offline
// sessions that share an id (keyset paging by id alone could not resume between them), so
// with usersessions.Both a page may hold one session more than Limit. Limit <= 0 means 100.
func (p *Provider) List(ctx context.Context, f usersessions.Filter, pg usersessions.Page) ([]*usersessions.UserSession, error) {
	if err := validFilter(f); err != nil {
		return nil, err
	}
	if err := pg.CheckText(); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if err := p.rlock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.RUnlock()
	limit := pg.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	var after cursor
	if pg.After != "" {
		after = cursor{key: usersessions.Key{RealmID: f.RealmID, ID: pg.After, Offline: true}, set: true}
	}
	keys := p.selectKeys(f, after, limit, usersessions.Partition{})
	if n := len(keys); n == limit && !keys[n-1].Offline {
		twin := keys[n-1]
		twin.Offline = true
		if st, ok := p.sessions[twin]; ok && matches(st, f) {
			keys = append(keys, twin)
		}
	}
	return p.export(keys), nil
}

// Count implements usersessions.Provider.
func (p *Provider) Count(ctx context.Context, f usersessions.Filter) (int64, error) {
	if err := validFilter(f); err != nil {
		return 0, err
	}
	if err := p.rlock(ctx); err != nil {
		return 0, err
	}
	defer p.mu.RUnlock()
	return int64(len(p.selectKeys(f, cursor{}, -1, usersessions.Partition{}))), nil
}

// CountByClient implements usersessions.Provider. Clients without sessions of that kind
// are absent from the map.
func (p *Provider) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	if realmID == "" {
		return nil, fmt.Errorf("count by client: realm id is required: %w", spi.ErrInvalid)
	}
	if err := usersessions.CheckText("realm id", realmID); err != nil {
		return nil, fmt.Errorf("count by client: %w", err)
	}
	if err := p.rlock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.RUnlock()
	out := make(map[string]int64)
	ri, ok := p.realms[realmID]
	if !ok {
		return out, nil
	}
	for cid, keys := range ri.byClient {
		var n int64
		for k := range keys {
			if k.Offline != offline {
				continue
			}
			if !liveAt.IsZero() {
				st := p.sessions[k]
				if c := st.clients[cid]; !usersessions.Live(st.s.ExpiresAt, liveAt) || c == nil || !usersessions.Live(c.ExpiresAt, liveAt) {
					continue
				}
			}
			n++
		}
		if n > 0 {
			out[cid] = n
		}
	}
	return out, nil
}

// Stream implements usersessions.Provider. Each page is copied under the read lock, which
// is released while fn runs, so a slow consumer does not hold up writers. A session written
// during the stream is seen or not depending on whether its page was already read.
func (p *Provider) Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	if err := validFilter(req.Filter); err != nil {
		return err
	}
	part := req.Partition
	if part.Count < 0 || (part.Count > 0 && (part.Index < 0 || part.Index >= part.Count)) || (part.Count == 0 && part.Index != 0) {
		return fmt.Errorf("stream: partition %d of %d: %w", part.Index, part.Count, spi.ErrInvalid)
	}
	size := req.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	var after cursor
	for {
		if err := p.rlock(ctx); err != nil {
			return err
		}
		keys := p.selectKeys(req.Filter, after, size, part)
		page := p.export(keys)
		p.mu.RUnlock()
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < size {
			return nil
		}
		after = cursor{key: keys[len(keys)-1], set: true}
	}
}

func (p *Provider) export(keys []usersessions.Key) []*usersessions.UserSession {
	out := make([]*usersessions.UserSession, len(keys))
	for i, k := range keys {
		out[i] = p.sessions[k].export()
	}
	return out
}

// export returns a deep copy with the client sessions filled in.
func (st *stored) export() *usersessions.UserSession {
	s := cloneSession(&st.s)
	s.Clients = make(map[string]*usersessions.ClientSession, len(st.clients))
	for cid, c := range st.clients {
		s.Clients[cid] = cloneClient(c)
	}
	return &s
}

func validKey(k usersessions.Key) error {
	if k.RealmID == "" || k.ID == "" {
		return fmt.Errorf("user session key %s: realm id and session id are required: %w", keyString(k), spi.ErrInvalid)
	}
	return nil
}

func validFilter(f usersessions.Filter) error {
	if f.RealmID == "" {
		return fmt.Errorf("session filter: realm id is required: %w", spi.ErrInvalid)
	}
	if err := f.CheckText(); err != nil {
		return fmt.Errorf("session filter: %w", err)
	}
	return nil
}

func keyString(k usersessions.Key) string {
	kind := "online"
	if k.Offline {
		kind = "offline"
	}
	return fmt.Sprintf("%s/%s (%s)", k.RealmID, k.ID, kind)
}

// utcMicro is the precision the contract promises: microseconds, UTC.
func utcMicro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

func cloneSession(s *usersessions.UserSession) usersessions.UserSession {
	c := *s
	c.Notes = maps.Clone(s.Notes)
	c.Started, c.LastRefresh, c.ExpiresAt = utcMicro(s.Started), utcMicro(s.LastRefresh), utcMicro(s.ExpiresAt)
	return c
}

func cloneClient(c *usersessions.ClientSession) *usersessions.ClientSession {
	n := *c
	n.Notes = maps.Clone(c.Notes)
	n.Started, n.LastRefresh, n.ExpiresAt, n.RotatedAt = utcMicro(c.Started), utcMicro(c.LastRefresh), utcMicro(c.ExpiresAt), utcMicro(c.RotatedAt)
	return &n
}
