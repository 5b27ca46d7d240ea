package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

type recordRow struct {
	Kind    string `db:"kind"`
	Key     string `db:"record_key"`
	Value   []byte `db:"value"`
	Version int64  `db:"version"`
	Updated dbTime `db:"updated"`
}

func (r *recordRow) record() *usersessions.Record {
	return &usersessions.Record{Kind: r.Kind, Key: r.Key, Value: r.Value, Version: r.Version, Updated: r.Updated.Time}
}

const recordSelect = "kind, record_key, value, version, updated"

func records(rows []recordRow) []*usersessions.Record {
	out := make([]*usersessions.Record, len(rows))
	for i := range rows {
		out[i] = rows[i].record()
	}
	return out
}

// nonNil keeps an empty value from being bound as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// GetRecords implements usersessions.Provider in one statement.
func (s *Store) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	out := make([]*usersessions.Record, len(keys))
	if len(keys) == 0 {
		return out, s.usable(ctx)
	}
	// A kind or key that cannot be stored names nothing (usersessions.CheckText).
	if usersessions.CheckText("record kind", kind) != nil {
		return out, s.usable(ctx)
	}
	b := batch{{"record_key", text}}
	var rows [][]any
	for _, k := range keys {
		if usersessions.CheckText("record key", k) == nil {
			rows = append(rows, []any{k})
		}
	}
	if len(rows) == 0 {
		return out, s.usable(ctx)
	}
	args, err := s.d.args(b, rows)
	if err != nil {
		return nil, err
	}
	var found []recordRow
	err = s.query(ctx, "get records", &found, fmt.Sprintf("SELECT %s FROM record WHERE kind = ? AND record_key IN (SELECT k_record_key FROM %s)",
		recordSelect, s.d.relation(b)), append([]any{kind}, args...)...)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]*recordRow, len(found))
	for i := range found {
		byKey[found[i].Key] = &found[i]
	}
	for i, k := range keys {
		if r := byKey[k]; r != nil {
			out[i] = r.record()
		}
	}
	return out, nil
}

// PutRecord implements usersessions.Provider: an INSERT that does nothing when the key is
// taken (Version 0), or an UPDATE that applies only at the stored version.
func (s *Store) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	switch {
	case r == nil:
		return nil, fmt.Errorf("put record: nil record: %w", spi.ErrInvalid)
	case r.Kind == "" || r.Key == "":
		return nil, fmt.Errorf("put record %q/%q: kind and key are required: %w", r.Kind, r.Key, spi.ErrInvalid)
	case r.Version < 0:
		return nil, fmt.Errorf("put record %s/%s: negative version %d: %w", r.Kind, r.Key, r.Version, spi.ErrInvalid)
	}
	if err := r.CheckText(); err != nil {
		return nil, fmt.Errorf("put record: %w", err)
	}
	now := micro(s.now())
	value := nonNil(slices.Clone(r.Value))
	var n int64
	err := s.write(ctx, "put record", func(w *writer) error {
		var err error
		if r.Version == 0 {
			n, err = w.exec(ctx, "INSERT INTO record (kind, record_key, value, version, updated) VALUES (?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
				r.Kind, r.Key, value, s.d.bindTime(now))
		} else {
			n, err = w.exec(ctx, "UPDATE record SET value = ?, version = version + 1, updated = ? WHERE kind = ? AND record_key = ? AND version = ?",
				value, s.d.bindTime(now), r.Kind, r.Key, r.Version)
		}
		if err == nil && n > 0 {
			w.emit(usersessions.Change{Kind: usersessions.RecordChanged, Record: usersessions.RecordKey{Kind: r.Kind, Key: r.Key}})
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case n == 0:
		return nil, fmt.Errorf("put record %s/%s at version %d: %w", r.Kind, r.Key, r.Version, spi.ErrConflict)
	}
	return &usersessions.Record{Kind: r.Kind, Key: r.Key, Value: value, Version: r.Version + 1, Updated: now}, nil
}

// ListRecords implements usersessions.Provider, in key order.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error) {
	if err := usersessions.CheckText("record kind", kind); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var rows []recordRow
	err := s.query(ctx, "list records", &rows, "SELECT "+recordSelect+" FROM record WHERE kind = ? ORDER BY record_key", kind)
	if err != nil {
		return nil, err
	}
	return records(rows), nil
}

// DeleteRecord implements usersessions.Provider.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := (&usersessions.Record{Kind: kind, Key: key}).CheckText(); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	return s.write(ctx, "delete record", func(w *writer) error {
		n, err := w.exec(ctx, "DELETE FROM record WHERE kind = ? AND record_key = ?", kind, key)
		if err == nil && n > 0 {
			w.emit(usersessions.Change{Kind: usersessions.RecordChanged, Record: usersessions.RecordKey{Kind: kind, Key: key}})
		}
		return err
	})
}

type deliveryRow struct {
	ID          string `db:"id"`
	RealmID     string `db:"realm_id"`
	ClientID    string `db:"client_id"`
	Kind        string `db:"kind"`
	Target      string `db:"target"`
	Payload     []byte `db:"payload"`
	State       string `db:"state"`
	Attempts    int    `db:"attempts"`
	NextAttempt dbTime `db:"next_attempt"`
	LastError   string `db:"last_error"`
	Created     dbTime `db:"created"`
	Updated     dbTime `db:"updated"`
}

var deliveryBatch = batch{
	{"id", text}, {"realm_id", text}, {"client_id", text}, {"kind", text}, {"target", text},
	{"payload", bytes}, {"state", text}, {"attempts", integer}, {"next_attempt", timestamp},
	{"last_error", text}, {"created", timestamp}, {"updated", timestamp},
}

var deliverySelect = deliveryBatch.names("")

func (r *deliveryRow) delivery() *usersessions.Delivery {
	return &usersessions.Delivery{
		ID: r.ID, RealmID: r.RealmID, ClientID: r.ClientID, Kind: r.Kind, Target: r.Target,
		Payload: r.Payload, State: usersessions.DeliveryState(r.State), Attempts: r.Attempts,
		NextAttempt: r.NextAttempt.Time, LastError: r.LastError, Created: r.Created.Time, Updated: r.Updated.Time,
	}
}

func deliveries(rows []deliveryRow) []*usersessions.Delivery {
	out := make([]*usersessions.Delivery, len(rows))
	for i := range rows {
		out[i] = rows[i].delivery()
	}
	return out
}

// Enqueue implements usersessions.Provider: one INSERT, all or nothing; an id already
// queued fails the call with spi.ErrExists.
func (s *Store) Enqueue(ctx context.Context, ds []*usersessions.Delivery) error {
	now := micro(s.now())
	seen := make(map[string]bool, len(ds))
	rows := make([][]any, len(ds))
	for i, d := range ds {
		switch {
		case d == nil || d.ID == "":
			return fmt.Errorf("enqueue: a delivery needs an id: %w", spi.ErrInvalid)
		case seen[d.ID]:
			return fmt.Errorf("enqueue: delivery %s given twice: %w", d.ID, spi.ErrExists)
		case d.Attempts < 0:
			return fmt.Errorf("enqueue: delivery %s has %d attempts: %w", d.ID, d.Attempts, spi.ErrInvalid)
		}
		if err := d.CheckText(); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		seen[d.ID] = true
		next := d.NextAttempt
		if next.IsZero() {
			next = now
		}
		rows[i] = []any{d.ID, d.RealmID, d.ClientID, d.Kind, d.Target, nonNil(d.Payload), string(usersessions.Pending), int64(d.Attempts), next, "", now, now}
	}
	if len(rows) == 0 {
		return s.usable(ctx)
	}
	return s.write(ctx, "enqueue deliveries", func(w *writer) error {
		args, err := s.d.args(deliveryBatch, rows)
		if err != nil {
			return err
		}
		_, err = w.exec(ctx, fmt.Sprintf("INSERT INTO delivery (%s) SELECT %s FROM %s", deliverySelect, deliveryBatch.names("k_"), s.d.relation(deliveryBatch)), args...)
		return err
	})
}

// Claim implements usersessions.Provider. The lease is kept in next_attempt: a claimed
// delivery is due again at now+lease unless Finish says otherwise first. On PostgreSQL,
// nodes claiming at once skip each other's rows.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*usersessions.Delivery, error) {
	if lease <= 0 || limit <= 0 {
		return nil, fmt.Errorf("claim: lease %v and limit %d must be positive: %w", lease, limit, spi.ErrInvalid)
	}
	var rows []deliveryRow
	err := s.write(ctx, "claim deliveries", func(w *writer) error {
		// The state is a literal so that PostgreSQL can use the partial index of due rows.
		return w.query(ctx, &rows, fmt.Sprintf(`UPDATE delivery SET next_attempt = ?, attempts = attempts + 1, updated = ?
			WHERE id IN (SELECT id FROM delivery WHERE state = '%s' AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?%s)
			RETURNING %s`, usersessions.Pending, s.d.skipLocked(), deliverySelect),
			s.d.bindTime(now.Add(lease)), s.d.bindTime(now), s.d.bindTime(now), limit)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b deliveryRow) int { return a.NextAttempt.Compare(b.NextAttempt.Time) })
	return deliveries(rows), nil
}

// Finish implements usersessions.Provider in one UPDATE of the rows still pending; of two
// outcomes for one id, the later counts.
func (s *Store) Finish(ctx context.Context, outcomes []usersessions.DeliveryOutcome) error {
	last := make(map[string]usersessions.DeliveryOutcome, len(outcomes))
	for _, o := range outcomes {
		switch o.State {
		case usersessions.Pending, usersessions.Delivered, usersessions.Failed:
		default:
			return fmt.Errorf("finish delivery %s: unknown state %q: %w", o.ID, o.State, spi.ErrInvalid)
		}
		if err := usersessions.CheckText("delivery error", o.Error); err != nil {
			return fmt.Errorf("finish delivery: %w", err)
		}
		if err := usersessions.CheckText("delivery target", o.Target); err != nil {
			return fmt.Errorf("finish delivery: %w", err)
		}
		last[o.ID] = o
	}
	if len(last) == 0 {
		return s.usable(ctx)
	}
	b := batch{{"id", text}, {"state", text}, {"next_attempt", timestamp}, {"last_error", text}, {"target", text}}
	var rows [][]any
	for _, o := range last {
		rows = append(rows, []any{o.ID, string(o.State), o.NextAttempt, o.Error, o.Target})
	}
	now := micro(s.now())
	return s.write(ctx, "finish deliveries", func(w *writer) error {
		args, err := s.d.args(b, rows)
		if err != nil {
			return err
		}
		_, err = w.exec(ctx, fmt.Sprintf(`UPDATE delivery AS d SET state = k_state, last_error = k_last_error, updated = ?,
			target = CASE WHEN k_target <> '' THEN k_target ELSE d.target END,
			next_attempt = CASE WHEN k_state = '%s' THEN k_next_attempt ELSE d.next_attempt END
			FROM %s WHERE d.id = k_id AND d.state = '%s'`, usersessions.Pending, s.d.relation(b), usersessions.Pending), append([]any{s.d.bindTime(now)}, args...)...)
		return err
	})
}

// ListDeliveries implements usersessions.Provider: keyset paging by id.
func (s *Store) ListDeliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	if err := f.CheckText(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	limit := f.Page.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	where, args := "id > ?", []any{f.Page.After}
	if f.RealmID != "" {
		where, args = where+" AND realm_id = ?", append(args, f.RealmID)
	}
	if f.State != "" {
		where, args = where+" AND state = ?", append(args, string(f.State))
	}
	var rows []deliveryRow
	err := s.query(ctx, "list deliveries", &rows, "SELECT "+deliverySelect+" FROM delivery WHERE "+where+" ORDER BY id LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, err
	}
	return deliveries(rows), nil
}
