package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/sessiond/sessiond/providers/usersessions/sqlstore"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// maxPayload keeps a NOTIFY payload under PostgreSQL's limit of 8000 bytes.
const maxPayload = 7900

// listenerPing is how often an idle Watch checks that its connection is alive: a
// connection that died without a word would otherwise hide lost changes.
const listenerPing = 15 * time.Second

// payload is one NOTIFY: changes of one transaction, in a compact form.
type payload struct {
	Origin  string       `json:"n,omitempty"`
	Changes []wireChange `json:"c"`
}

type wireChange struct {
	Kind     usersessions.ChangeKind `json:"k"`
	Realm    string                  `json:"r,omitempty"`
	ID       string                  `json:"i,omitempty"`
	Offline  bool                    `json:"o,omitempty"`
	ClientID string                  `json:"c,omitempty"`
	Filter   *wireFilter             `json:"f,omitempty"`
	Record   *wireRecord             `json:"d,omitempty"`
}

type wireRecord struct {
	Kind string `json:"k"`
	Key  string `json:"i"`
}

type wireFilter struct {
	Realm       string                       `json:"r"`
	User        string                       `json:"u,omitempty"`
	Client      string                       `json:"c,omitempty"`
	Offline     usersessions.OfflineSelector `json:"o,omitempty"`
	ActiveSince time.Time                    `json:"a,omitzero"`
}

func toWire(c usersessions.Change) wireChange {
	w := wireChange{Kind: c.Kind, Realm: c.Session.RealmID, ID: c.Session.ID, Offline: c.Session.Offline, ClientID: c.ClientID}
	if c.Kind == usersessions.Flushed {
		f := c.Filter
		w.Filter = &wireFilter{Realm: f.RealmID, User: f.UserID, Client: f.ClientID, Offline: f.Offline, ActiveSince: f.ActiveSince}
	}
	if c.Kind == usersessions.RecordChanged {
		w.Record = &wireRecord{Kind: c.Record.Kind, Key: c.Record.Key}
	}
	return w
}

func (w wireChange) change(origin string) usersessions.Change {
	c := usersessions.Change{
		Kind:     w.Kind,
		Session:  usersessions.Key{RealmID: w.Realm, ID: w.ID, Offline: w.Offline},
		ClientID: w.ClientID,
		Origin:   origin,
	}
	if f := w.Filter; f != nil {
		c.Filter = usersessions.Filter{RealmID: f.Realm, UserID: f.User, ClientID: f.Client, Offline: f.Offline, ActiveSince: f.ActiveSince}
	}
	if r := w.Record; r != nil {
		c.Record = usersessions.RecordKey{Kind: r.Kind, Key: r.Key}
	}
	return c
}

// encode packs changes, all of one origin, into as few payloads as fit the limit.
func encode(changes []usersessions.Change) ([]string, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	head, parts, chunks, err := pack(changes)
	if err != nil {
		return nil, err
	}
	var out []string
	for from := 0; from < len(parts); {
		to := from + 1
		for to < len(parts) && chunks[to] == chunks[from] {
			to++
		}
		out = append(out, head+strings.Join(parts[from:to], ",")+tail)
		from = to
	}
	return out, nil
}

// tail ends a payload that head and parts began.
const tail = "]}"

// pack encodes changes, all of one origin, as the parts of as few payloads as fit the
// limit: payload i is head, the parts whose chunk is i (consecutive) joined by ",", then
// tail, which is the JSON of a payload of those changes. A payload without some of its
// parts fits too: that is what lets a statement send the changes it made of a batch.
func pack(changes []usersessions.Change) (head string, parts []string, chunks []int64, err error) {
	origin := changes[0].Origin
	head = `{"c":[`
	if origin != "" {
		o, err := json.Marshal(origin)
		if err != nil {
			return "", nil, nil, err
		}
		head = `{"n":` + string(o) + `,"c":[`
	}
	var chunk int64
	size := len(origin) + 16 // the envelope
	for _, c := range changes {
		w := toWire(c)
		b, err := json.Marshal(w)
		if err != nil {
			return "", nil, nil, err
		}
		if len(b)+len(origin)+16 > maxPayload && c.Kind == usersessions.RecordChanged {
			// A watcher could not tell which record to re-read; the write is refused instead.
			return "", nil, nil, fmt.Errorf("change of record %.40q… is too large for a notification: %w", c.Record.Kind+"/"+c.Record.Key, spi.ErrInvalid)
		}
		if len(b)+len(origin)+16 > maxPayload {
			// Ids this long are not expected; a flush of the realm tells watchers enough.
			w = wireChange{Kind: usersessions.Flushed, Filter: &wireFilter{Realm: c.Session.RealmID, Offline: usersessions.Both}}
			if b, err = json.Marshal(w); err != nil || len(b)+len(origin)+16 > maxPayload {
				return "", nil, nil, fmt.Errorf("change of %q is too large for a notification: %w", c.Session.RealmID, spi.ErrInvalid)
			}
		}
		if size+len(b)+1 > maxPayload && len(parts) > 0 {
			chunk++
			size = len(origin) + 16
		}
		parts = append(parts, string(b))
		chunks = append(chunks, chunk)
		size += len(b) + 1
	}
	return head, parts, chunks, nil
}

// notifier is the store's Feed: NOTIFY inside the writing transaction, or inside the
// writing statement (Inline), which PostgreSQL delivers to every listener when, and only
// if, it commits.
type notifier struct{ channel string }

func (n notifier) Stage(ctx context.Context, tx *sqlx.Tx, changes []usersessions.Change) error {
	payloads, err := encode(changes)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", n.channel, pq.Array(payloads))
	return err
}

func (notifier) Publish([]usersessions.Change) {}

// Inline implements sqlstore.InlineFeed: the payloads Stage would send, in parts.
func (n notifier) Inline(changes []usersessions.Change) (sqlstore.Notes, error) {
	if len(changes) == 0 {
		return sqlstore.Notes{Channel: n.channel}, nil
	}
	head, parts, chunks, err := pack(changes)
	if err != nil {
		return sqlstore.Notes{}, err
	}
	return sqlstore.Notes{Channel: n.channel, Head: head, Tail: tail, Parts: parts, Chunks: chunks}, nil
}

// Watch implements usersessions.Provider: it LISTENs on the schema's channel on a
// connection of its own, so it reports the changes of every node sharing the schema,
// this one's included (Change.Origin tells them apart), from the moment it is subscribed.
// It returns nil when ctx ends; an error wrapping spi.ErrUnavailable when the connection
// is lost or cannot be made (changes may have been missed: reload and Watch again) or the
// provider was closed; or fn's error.
func (p *Provider) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	if p.Store == nil {
		return fmt.Errorf("watch: postgres provider is not configured: %w", spi.ErrUnavailable)
	}
	lost := make(chan error, 1)
	l := pq.NewListener(p.dsn, 100*time.Millisecond, time.Second, func(ev pq.ListenerEventType, err error) {
		if ev == pq.ListenerEventDisconnected || ev == pq.ListenerEventConnectionAttemptFailed {
			select {
			case lost <- err:
			default:
			}
		}
	})
	listenErr, listenDone := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(listenDone)
		listenErr <- l.Listen(p.channel)
	}()
	defer func() {
		l.Close()
		<-listenDone
		for range l.Notify { // until the listener's goroutine has ended
		}
	}()
	unavailable := func(cause error) error {
		if cause == nil {
			cause = errors.New("connection lost")
		}
		return fmt.Errorf("change feed %s: changes may have been missed: %w", p.channel, mapUnavailable(cause))
	}

	// Listen returns once the channel is subscribed.
	select {
	case <-ctx.Done():
		return nil
	case <-p.done:
		return fmt.Errorf("watch: %w", errProviderClosed)
	case err := <-lost:
		return unavailable(err)
	case err := <-listenErr:
		if err != nil {
			return unavailable(err)
		}
	}
	if err := fn(usersessions.Change{Kind: usersessions.Subscribed}); err != nil {
		return err
	}
	ping := time.NewTicker(listenerPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.done:
			return fmt.Errorf("watch: %w", errProviderClosed)
		case err := <-lost:
			return unavailable(err)
		case <-ping.C:
			if err := l.Ping(); err != nil {
				return unavailable(err)
			}
		case n, ok := <-l.Notify:
			if !ok || n == nil { // nil: the listener reconnected after losing the connection
				return unavailable(nil)
			}
			var pl payload
			if err := json.Unmarshal([]byte(n.Extra), &pl); err != nil {
				return fmt.Errorf("change feed %s: unreadable notification: %w: %w", p.channel, spi.ErrUnavailable, err)
			}
			for _, w := range pl.Changes {
				if ctx.Err() != nil {
					return nil
				}
				if err := fn(w.change(pl.Origin)); err != nil {
					return err
				}
			}
		}
	}
}

var errProviderClosed = fmt.Errorf("postgres provider is closed: %w", spi.ErrUnavailable)

// mapUnavailable is mapError for a failure that, whatever it is, leaves the caller without
// a feed.
func mapUnavailable(err error) error {
	if err = mapError(err); errors.Is(err, spi.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", spi.ErrUnavailable, err)
}
