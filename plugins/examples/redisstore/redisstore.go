// Package redisstore is a user-sessions provider for sessiond that keeps sessions in Redis:
// the worked example of a third-party provider (see docs/plugin-author-guide.md).
//
// # Data model
//
// Every key starts with the key-prefix option; the keys of one realm share
// "<prefix>r<len>:<realm>:" after it, so a realm's data can be found, counted or dropped
// together. For a session of that realm, with <kind> "on" (online) or "off" (offline):
//
//	…s:<kind>:<id>           string  the user session (JSON, with its Version)
//	…c:<kind>:<id>           hash    its client sessions: client id → JSON (with Version)
//	…i:<kind>                zset    every session id of the realm, score 0: lexical order is
//	                                 id order, so List pages with ZRANGEBYLEX after the last id
//	…u:<kind>:<user>         zset    the ids of one user's sessions
//	…l:<kind>:<client>       zset    the ids of the sessions with a client session for a client
//	…L:<kind>                set     the client ids that ever had a client session (CountByClient)
//
// and, across realms, <prefix>exp and <prefix>cexp: sorted sets of user and client sessions
// scored by ExpiresAt (unix microseconds), which DeleteExpired reads from the oldest. Keys
// carry no Redis TTL: the core decides when a session ends and writes it as ExpiresAt, and a
// key Redis dropped on its own would leave the indexes pointing at nothing and tell no
// watcher. Records live under <prefix>rec:…, the revocation-push outbox under <prefix>d:….
//
// # Consistency
//
// Every write is an optimistic transaction: WATCH the keys of one session, read them, check
// the Version the caller gave, then MULTI/EXEC the new value, the index updates and the
// PUBLISH of the change together. EXEC fails when another writer changed a watched key in
// between; the write is then re-read and re-checked, so of two nodes rotating one refresh
// token exactly one wins and the other gets spi.ErrConflict. Reads of several keys go in one
// MULTI/EXEC, so they see one moment.
//
// # Change feed
//
// Each write publishes its change on <prefix>changes inside its transaction. Watch
// SUBSCRIBEs, waits for Redis to confirm, and only then reports Subscribed: a write committed
// afterwards is published afterwards, and so reaches it. Redis pub/sub is not durable; when
// the subscription connection breaks, or stays silent past a ping, Watch returns an error
// wrapping spi.ErrUnavailable and sessiond empties its cache and subscribes again.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// ID is the provider id: the <id> of --spi-user-sessions-<id>-… keys.
const ID = "redis"

// Version is this provider's own version, shown by `sessiond plugins list`.
const Version = "0.1.0"

// Option names.
const (
	OptURL          = "url"
	OptPassword     = "password"
	OptKeyPrefix    = "key-prefix"
	OptPoolSize     = "pool-size"
	OptDialTimeout  = "dial-timeout"
	OptPingInterval = "watch-ping-interval"
)

const (
	defaultPageSize = 100
	// maxRetries bounds how often one item's transaction is retried when other writers keep
	// changing its keys; past it the call fails as unavailable rather than spin.
	maxRetries = 50
)

// Provider is the Redis user-sessions store. It is safe for concurrent use.
type Provider struct {
	log hclog.Logger
	now func() time.Time // stamps records and deliveries

	mu           sync.RWMutex
	rdb          *redis.Client
	k            keys
	origin       string
	pingInterval time.Duration
}

var _ usersessions.Provider = (*Provider)(nil)

// New returns an unconfigured provider. It does no I/O: sessiond builds providers to ask
// them for their Descriptor.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provider{log: log, now: time.Now}
}

// Describe implements spi.Provider. The options are what an operator sets as
// --spi-user-sessions-redis-<name>; sessiond checks values against these types and lists
// them, with their defaults, in show-config.
func (p *Provider) Describe() spi.Descriptor {
	return spi.Descriptor{
		SPI:     spi.UserSessions,
		ID:      ID,
		Version: Version,
		Help:    "Keeps user sessions in Redis (example third-party plugin); nodes sharing one Redis and key prefix share sessions.",
		Options: []spi.Option{
			{Name: OptURL, Type: spi.String, Default: "redis://127.0.0.1:6379/0",
				Help: "Redis URL: redis://[user@]host:port/db, or rediss:// for TLS. Put the password in the password option."},
			{Name: OptPassword, Type: spi.String, Secret: true,
				Help: "Redis password; overrides one in the URL."},
			{Name: OptKeyPrefix, Type: spi.String, Default: "sessiond:",
				Help: "Prefix of every key and of the change channel; nodes that share sessions use the same one."},
			{Name: OptPoolSize, Type: spi.Int, Default: "0",
				Help: "Most connections to Redis (besides one per change-feed subscriber); 0 means 10 per CPU."},
			{Name: OptDialTimeout, Type: spi.Duration, Default: "5s",
				Help: "How long connecting to Redis may take."},
			{Name: OptPingInterval, Type: spi.Duration, Default: "15s",
				Help: "A change-feed subscription that hears nothing for this long is pinged; no answer within as long again breaks the feed."},
		},
	}
}

// Configure implements spi.Provider: it connects and checks that Redis answers.
func (p *Provider) Configure(ctx context.Context, cfg spi.Config) error {
	c := sdk.ReadConfig(p.Describe(), cfg)
	rawURL, password, prefix := c.String(OptURL), c.String(OptPassword), c.String(OptKeyPrefix)
	poolSize, dialTimeout, ping := c.Int(OptPoolSize), c.Duration(OptDialTimeout), c.Duration(OptPingInterval)
	if err := c.Err(); err != nil {
		return err
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("spi-user-sessions-redis-url: %v: %w", err, spi.ErrInvalid)
	}
	if password != "" {
		opts.Password = password
	}
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	if dialTimeout > 0 {
		opts.DialTimeout = dialTimeout
	}
	// Named after the node, so an operator tells sessiond's connections apart in CLIENT LIST.
	opts.ClientName = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, strings.TrimSuffix("sessiond-redis/"+c.NodeID(), "/"))
	if ping <= 0 {
		return fmt.Errorf("spi-user-sessions-redis-%s must be positive: %w", OptPingInterval, spi.ErrInvalid)
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return fmt.Errorf("redis at %s (db %d) does not answer: %w: %w", opts.Addr, opts.DB, spi.ErrUnavailable, err)
	}
	p.mu.Lock()
	old := p.rdb
	p.rdb, p.k, p.origin, p.pingInterval = rdb, keys{prefix: prefix}, c.NodeID(), ping
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	p.log.Info("redis session store", "addr", opts.Addr, "db", opts.DB, "key_prefix", prefix)
	return nil
}

// Close implements spi.Provider. Running Watch calls end with an error.
func (p *Provider) Close(context.Context) error {
	p.mu.Lock()
	rdb := p.rdb
	p.rdb = nil
	p.mu.Unlock()
	if rdb == nil {
		return nil
	}
	return rdb.Close()
}

// state returns the client and key layout, or an error when not configured.
func (p *Provider) state() (*redis.Client, keys, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.rdb == nil {
		return nil, keys{}, fmt.Errorf("redis provider is not configured or is closed: %w", spi.ErrUnavailable)
	}
	return p.rdb, p.k, nil
}

// fail turns a Redis error into the error a caller branches on: the context's own error
// when ctx ended, the item's sentinel error unchanged, anything else spi.ErrUnavailable
// (sessiond answers 503 with Retry-After).
func fail(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), isItemError(err):
		return err
	}
	return fmt.Errorf("redis %s: %w: %w", op, spi.ErrUnavailable, err)
}

// isItemError reports whether err is the answer about one item of a batch rather than a
// failure of the call.
func isItemError(err error) bool {
	for _, s := range []error{spi.ErrNotFound, spi.ErrExists, spi.ErrConflict, spi.ErrInvalid} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// optimistic runs fn as an optimistic transaction over the watched keys, again whenever
// another client changed one of them before fn's EXEC.
func optimistic(ctx context.Context, rdb *redis.Client, fn func(tx *redis.Tx) error, watched ...string) error {
	for range maxRetries {
		err := rdb.Watch(ctx, fn, watched...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: the keys %v keep changing: %w", maxRetries, watched, spi.ErrUnavailable)
}

// eachItem applies one to every item of a batch: item errors go in the result, the first
// other error ends the call.
func eachItem[T any](ctx context.Context, op string, items []T, one func(T) error) ([]error, error) {
	errs := make([]error, len(items))
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := one(it)
		if err != nil && !isItemError(err) {
			return nil, fail(ctx, op, err)
		}
		errs[i] = err
	}
	return errs, nil
}

// keys is the key layout under one prefix; see the package documentation.
type keys struct{ prefix string }

func kind(offline bool) string {
	if offline {
		return "off"
	}
	return "on"
}

func (k keys) realm(realm string) string {
	return k.prefix + "r" + strconv.Itoa(len(realm)) + ":" + realm + ":"
}
func (k keys) session(s usersessions.Key) string {
	return k.realm(s.RealmID) + "s:" + kind(s.Offline) + ":" + s.ID
}
func (k keys) clients(s usersessions.Key) string {
	return k.realm(s.RealmID) + "c:" + kind(s.Offline) + ":" + s.ID
}
func (k keys) index(realm string, offline bool) string {
	return k.realm(realm) + "i:" + kind(offline)
}
func (k keys) userIndex(realm string, offline bool, user string) string {
	return k.realm(realm) + "u:" + kind(offline) + ":" + user
}
func (k keys) clientIndex(realm string, offline bool, client string) string {
	return k.realm(realm) + "l:" + kind(offline) + ":" + client
}
func (k keys) clientSet(realm string, offline bool) string {
	return k.realm(realm) + "L:" + kind(offline)
}
func (k keys) expiry() string       { return k.prefix + "exp" }
func (k keys) clientExpiry() string { return k.prefix + "cexp" }
func (k keys) channel() string      { return k.prefix + "changes" }

func (k keys) record(kind, key string) string {
	return k.prefix + "rec:" + strconv.Itoa(len(kind)) + ":" + kind + ":" + key
}
func (k keys) recordSet(kind string) string    { return k.prefix + "recs:" + kind }
func (k keys) delivery(id string) string       { return k.prefix + "d:" + id }
func (k keys) deliveries() string              { return k.prefix + "dall" }
func (k keys) realmDeliveries(r string) string { return k.prefix + "dr:" + r }
func (k keys) due() string                     { return k.prefix + "due" }

// member is a session key as a member of the expiry sets: "<len realm>:<realm><0|1><id>";
// a client session appends "<len id>:" before the id and the client id after it.
func member(s usersessions.Key) string {
	off := "0"
	if s.Offline {
		off = "1"
	}
	return strconv.Itoa(len(s.RealmID)) + ":" + s.RealmID + off + s.ID
}

func clientMember(c usersessions.ClientKey) string {
	s := c.Session
	off := "0"
	if s.Offline {
		off = "1"
	}
	return strconv.Itoa(len(s.RealmID)) + ":" + s.RealmID + off + strconv.Itoa(len(s.ID)) + ":" + s.ID + c.ClientID
}

// lengthPrefixed splits "<n>:<n bytes><rest>".
func lengthPrefixed(m string) (string, string, bool) {
	n, rest, ok := strings.Cut(m, ":")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l < 0 || l > len(rest) {
		return "", "", false
	}
	return rest[:l], rest[l:], true
}

func parseMember(m string) (usersessions.Key, bool) {
	realm, rest, ok := lengthPrefixed(m)
	if !ok || rest == "" || (rest[0] != '0' && rest[0] != '1') {
		return usersessions.Key{}, false
	}
	return usersessions.Key{RealmID: realm, Offline: rest[0] == '1', ID: rest[1:]}, true
}

func parseClientMember(m string) (usersessions.ClientKey, bool) {
	realm, rest, ok := lengthPrefixed(m)
	if !ok || rest == "" || (rest[0] != '0' && rest[0] != '1') {
		return usersessions.ClientKey{}, false
	}
	id, client, ok := lengthPrefixed(rest[1:])
	if !ok {
		return usersessions.ClientKey{}, false
	}
	return usersessions.ClientKey{Session: usersessions.Key{RealmID: realm, Offline: rest[0] == '1', ID: id}, ClientID: client}, true
}

func keyString(k usersessions.Key) string {
	return k.RealmID + "/" + k.ID + "/" + kind(k.Offline) + "line"
}

func validKey(k usersessions.Key) error {
	if k.RealmID == "" || k.ID == "" {
		return fmt.Errorf("session key %+v needs a realm and an id: %w", k, spi.ErrInvalid)
	}
	return nil
}

// micros is a time as stored: unix microseconds, 0 for the zero time. Redis sorted-set
// scores are float64, exact for these up to the year 2255.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func score(t time.Time) float64 { return float64(micros(t)) }

// RedisLogger adapts log for go-redis's own messages (failed dials, pool trouble), which it
// otherwise prints to stderr as plain text. A plugin's main installs it once:
// redis.SetLogger(redisstore.RedisLogger(log)).
func RedisLogger(log hclog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLogger{log}
}

type redisLogger struct{ log hclog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
