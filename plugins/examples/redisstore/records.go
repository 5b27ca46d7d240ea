package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

type storedRecord struct {
	Value   []byte `json:"v"`
	Version int64  `json:"n"`
	Updated int64  `json:"u"`
}

// GetRecords implements usersessions.Provider.
func (p *Provider) GetRecords(ctx context.Context, kind string, ks []string) ([]*usersessions.Record, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		return nil, nil
	}
	names := make([]string, len(ks))
	for i, key := range ks {
		names[i] = k.record(kind, key)
	}
	raws, err := rdb.MGet(ctx, names...).Result()
	if err != nil {
		return nil, fail(ctx, "get records", err)
	}
	out := make([]*usersessions.Record, len(ks))
	for i, raw := range raws {
		s, ok := raw.(string)
		if !ok {
			continue
		}
		if out[i], err = decodeRecord(kind, ks[i], s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeRecord(kind, key, raw string) (*usersessions.Record, error) {
	var sr storedRecord
	if err := json.Unmarshal([]byte(raw), &sr); err != nil {
		return nil, fmt.Errorf("stored record %s/%s is not valid: %w", kind, key, err)
	}
	return &usersessions.Record{Kind: kind, Key: key, Value: sr.Value, Version: sr.Version, Updated: fromMicros(sr.Updated)}, nil
}

// PutRecord implements usersessions.Provider.
func (p *Provider) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	if r != nil {
		if err := r.CheckText(); err != nil {
			return nil, err
		}
	}
	if r == nil || r.Kind == "" || r.Key == "" {
		return nil, fmt.Errorf("a record needs a kind and a key: %w", spi.ErrInvalid)
	}
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	rk := k.record(r.Kind, r.Key)
	var out *usersessions.Record
	err = optimistic(ctx, rdb, func(tx *redis.Tx) error {
		var stored int64
		raw, err := tx.Get(ctx, rk).Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			old, err := decodeRecord(r.Kind, r.Key, raw)
			if err != nil {
				return err
			}
			stored = old.Version
		}
		if r.Version != stored {
			return fmt.Errorf("put of record %s/%s at Version %d, stored %d: %w", r.Kind, r.Key, r.Version, stored, spi.ErrConflict)
		}
		sr := storedRecord{Value: r.Value, Version: stored + 1, Updated: micros(p.now())}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, rk, encode(sr), 0)
			pipe.SAdd(ctx, k.recordSet(r.Kind), r.Key)
			p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.RecordChanged, Record: usersessions.RecordKey{Kind: r.Kind, Key: r.Key}})
			return nil
		})
		out = &usersessions.Record{Kind: r.Kind, Key: r.Key, Value: sr.Value, Version: sr.Version, Updated: fromMicros(sr.Updated)}
		return err
	}, rk)
	if err != nil {
		return nil, fail(ctx, "put record", err)
	}
	return out, nil
}

// ListRecords implements usersessions.Provider.
func (p *Provider) ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error) {
	if err := usersessions.CheckText("record kind", kind); err != nil {
		return nil, err
	}
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	ks, err := rdb.SMembers(ctx, k.recordSet(kind)).Result()
	if err != nil {
		return nil, fail(ctx, "list records", err)
	}
	recs, err := p.GetRecords(ctx, kind, ks)
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for _, r := range recs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// DeleteRecord implements usersessions.Provider. Its change is published whether or not the
// record existed: watchers re-read it and find it gone either way.
func (p *Provider) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := (&usersessions.Record{Kind: kind, Key: key}).CheckText(); err != nil {
		return err
	}
	rdb, k, err := p.state()
	if err != nil {
		return err
	}
	_, err = rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, k.record(kind, key))
		pipe.SRem(ctx, k.recordSet(kind), key)
		p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.RecordChanged, Record: usersessions.RecordKey{Kind: kind, Key: key}})
		return nil
	})
	return fail(ctx, "delete record", err)
}

// storedDelivery is an outbox entry; the delivery's due time is also its score in <prefix>due
// while it is pending. As in the memory provider, a claim's lease is kept in NextAttempt.
type storedDelivery struct {
	RealmID     string `json:"r"`
	ClientID    string `json:"c"`
	Kind        string `json:"k"`
	Target      string `json:"t"`
	Payload     []byte `json:"p"`
	State       string `json:"s"`
	Attempts    int    `json:"a"`
	NextAttempt int64  `json:"n"`
	LastError   string `json:"e,omitempty"`
	Created     int64  `json:"c0"`
	Updated     int64  `json:"u"`
}

func (sd storedDelivery) delivery(id string) *usersessions.Delivery {
	return &usersessions.Delivery{
		ID: id, RealmID: sd.RealmID, ClientID: sd.ClientID, Kind: sd.Kind, Target: sd.Target, Payload: sd.Payload,
		State: usersessions.DeliveryState(sd.State), Attempts: sd.Attempts, NextAttempt: fromMicros(sd.NextAttempt),
		LastError: sd.LastError, Created: fromMicros(sd.Created), Updated: fromMicros(sd.Updated),
	}
}

func decodeDelivery(raw string) (storedDelivery, error) {
	var sd storedDelivery
	if err := json.Unmarshal([]byte(raw), &sd); err != nil {
		return sd, fmt.Errorf("stored delivery is not valid: %w", err)
	}
	return sd, nil
}

// Enqueue implements usersessions.Provider. The batch is stored in one transaction; a
// delivery id that is already stored, or given twice, is spi.ErrExists and stores nothing.
func (p *Provider) Enqueue(ctx context.Context, deliveries []*usersessions.Delivery) error {
	for _, d := range deliveries {
		if d != nil {
			if err := d.CheckText(); err != nil {
				return err
			}
		}
	}
	rdb, k, err := p.state()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var watched []string
	for _, d := range deliveries {
		switch {
		case d == nil || d.ID == "":
			return fmt.Errorf("enqueue: a delivery needs an id: %w", spi.ErrInvalid)
		case seen[d.ID]:
			return fmt.Errorf("enqueue: delivery %s given twice: %w", d.ID, spi.ErrExists)
		case d.Attempts < 0:
			return fmt.Errorf("enqueue: delivery %s has %d attempts: %w", d.ID, d.Attempts, spi.ErrInvalid)
		}
		seen[d.ID] = true
		watched = append(watched, k.delivery(d.ID))
	}
	if len(deliveries) == 0 {
		return nil
	}
	now := micros(p.now())
	err = optimistic(ctx, rdb, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, watched...).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("enqueue: %d of the deliveries are already stored: %w", n, spi.ErrExists)
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, d := range deliveries {
				sd := storedDelivery{RealmID: d.RealmID, ClientID: d.ClientID, Kind: d.Kind, Target: d.Target, Payload: d.Payload,
					State: string(usersessions.Pending), Attempts: d.Attempts, NextAttempt: micros(d.NextAttempt), Created: now, Updated: now}
				if sd.NextAttempt == 0 {
					sd.NextAttempt = now
				}
				pipe.Set(ctx, k.delivery(d.ID), encode(sd), 0)
				pipe.ZAdd(ctx, k.deliveries(), redis.Z{Member: d.ID})
				pipe.ZAdd(ctx, k.realmDeliveries(d.RealmID), redis.Z{Member: d.ID})
				pipe.ZAdd(ctx, k.due(), redis.Z{Score: float64(sd.NextAttempt), Member: d.ID})
			}
			return nil
		})
		return err
	}, watched...)
	return fail(ctx, "enqueue", err)
}

// Claim implements usersessions.Provider. Candidates come off <prefix>due, earliest first;
// each is leased in a transaction of its own, so that when two nodes claim at once each
// delivery goes to one of them.
func (p *Provider) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*usersessions.Delivery, error) {
	if lease <= 0 || limit <= 0 {
		return nil, fmt.Errorf("claim: lease %v and limit %d must be positive: %w", lease, limit, spi.ErrInvalid)
	}
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	at, until := micros(now), micros(now.Add(lease))
	var out []*usersessions.Delivery
	offset := int64(0)
	for len(out) < limit {
		ids, err := rdb.ZRangeByScore(ctx, k.due(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(at, 10),
			Offset: offset, Count: int64(limit - len(out))}).Result()
		if err != nil {
			return nil, fail(ctx, "claim", err)
		}
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			dk := k.delivery(id)
			var claimed *usersessions.Delivery
			passed := false // present but not claimable: a later read must step over it
			err := optimistic(ctx, rdb, func(tx *redis.Tx) error {
				claimed, passed = nil, false
				raw, err := tx.Get(ctx, dk).Result()
				if errors.Is(err, redis.Nil) {
					return tx.ZRem(ctx, k.due(), id).Err()
				}
				if err != nil {
					return err
				}
				sd, err := decodeDelivery(raw)
				if err != nil {
					return err
				}
				if sd.State != string(usersessions.Pending) || sd.NextAttempt > at {
					passed = true // claimed or finished by someone else meanwhile
					return nil
				}
				sd.Attempts++
				sd.NextAttempt, sd.Updated = until, at
				_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
					pipe.Set(ctx, dk, encode(sd), 0)
					pipe.ZAdd(ctx, k.due(), redis.Z{Score: float64(until), Member: id})
					return nil
				})
				if err == nil {
					claimed = sd.delivery(id)
				}
				return err
			}, dk)
			if err != nil {
				return nil, fail(ctx, "claim", err)
			}
			if claimed != nil {
				out = append(out, claimed)
			} else if passed {
				offset++
			}
		}
	}
	return out, nil
}

// Finish implements usersessions.Provider. Outcomes for unknown ids, and for deliveries no
// longer pending, are ignored.
func (p *Provider) Finish(ctx context.Context, outcomes []usersessions.DeliveryOutcome) error {
	for _, o := range outcomes {
		if err := usersessions.CheckText("delivery error", o.Error); err != nil {
			return err
		}
	}
	for _, o := range outcomes {
		switch o.State {
		case usersessions.Pending, usersessions.Delivered, usersessions.Failed:
		default:
			return fmt.Errorf("finish delivery %s: unknown state %q: %w", o.ID, o.State, spi.ErrInvalid)
		}
	}
	rdb, k, err := p.state()
	if err != nil {
		return err
	}
	now := micros(p.now())
	for _, o := range outcomes {
		dk := k.delivery(o.ID)
		err := optimistic(ctx, rdb, func(tx *redis.Tx) error {
			raw, err := tx.Get(ctx, dk).Result()
			if errors.Is(err, redis.Nil) {
				return nil
			}
			if err != nil {
				return err
			}
			sd, err := decodeDelivery(raw)
			if err != nil {
				return err
			}
			if sd.State != string(usersessions.Pending) {
				return nil // recorded already, by a node that took over after this one's lease
			}
			sd.State, sd.LastError, sd.Updated = string(o.State), o.Error, now
			if o.Target != "" {
				sd.Target = o.Target
			}
			if o.State == usersessions.Pending {
				sd.NextAttempt = micros(o.NextAttempt)
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, dk, encode(sd), 0)
				if o.State == usersessions.Pending {
					pipe.ZAdd(ctx, k.due(), redis.Z{Score: float64(sd.NextAttempt), Member: o.ID})
				} else {
					pipe.ZRem(ctx, k.due(), o.ID)
				}
				return nil
			})
			return err
		}, dk)
		if err != nil {
			return fail(ctx, "finish", err)
		}
	}
	return nil
}

// ListDeliveries implements usersessions.Provider: in id order, keyset-paged.
func (p *Provider) ListDeliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	if err := f.CheckText(); err != nil {
		return nil, err
	}
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	limit := f.Page.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	index := k.deliveries()
	if f.RealmID != "" {
		index = k.realmDeliveries(f.RealmID)
	}
	var out []*usersessions.Delivery
	after := f.Page.After
	for len(out) < limit {
		min := "-"
		if after != "" {
			min = "(" + after
		}
		ids, err := rdb.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit)}).Result()
		if err != nil {
			return nil, fail(ctx, "list deliveries", err)
		}
		if len(ids) == 0 {
			break
		}
		after = ids[len(ids)-1]
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = k.delivery(id)
		}
		raws, err := rdb.MGet(ctx, names...).Result()
		if err != nil {
			return nil, fail(ctx, "list deliveries", err)
		}
		for i, raw := range raws {
			s, ok := raw.(string)
			if !ok {
				continue
			}
			sd, err := decodeDelivery(s)
			if err != nil {
				return nil, err
			}
			if (f.State == "" || sd.State == string(f.State)) && len(out) < limit {
				out = append(out, sd.delivery(ids[i]))
			}
		}
	}
	return out, nil
}
