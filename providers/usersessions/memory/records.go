package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

type recordKey struct{ kind, key string }

// GetRecords implements usersessions.Provider.
func (p *Provider) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	if err := p.rlock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.RUnlock()
	out := make([]*usersessions.Record, len(keys))
	for i, k := range keys {
		if r, ok := p.records[recordKey{kind, k}]; ok {
			out[i] = cloneRecord(r)
		}
	}
	return out, nil
}

// PutRecord implements usersessions.Provider. A Version that does not match fails with
// spi.ErrConflict, including 0 for a record that exists and non-zero for one that does not.
func (p *Provider) PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error) {
	if r == nil || r.Kind == "" || r.Key == "" {
		return nil, fmt.Errorf("record: kind and key are required: %w", spi.ErrInvalid)
	}
	if err := r.CheckText(); err != nil {
		return nil, fmt.Errorf("put record: %w", err)
	}
	if err := p.lock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.Unlock()
	rk := recordKey{r.Kind, r.Key}
	var stored int64
	if old, ok := p.records[rk]; ok {
		stored = old.Version
	}
	if stored != r.Version {
		return nil, fmt.Errorf("record %s/%s: stored version %d, given %d: %w", r.Kind, r.Key, stored, r.Version, spi.ErrConflict)
	}
	next := cloneRecord(r)
	next.Version = stored + 1
	next.Updated = utcMicro(p.now())
	p.records[rk] = next
	p.publish(usersessions.Change{Kind: usersessions.RecordChanged, Record: usersessions.RecordKey{Kind: r.Kind, Key: r.Key}})
	return cloneRecord(next), nil
}

// ListRecords implements usersessions.Provider; records come in key order.
func (p *Provider) ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error) {
	if err := usersessions.CheckText("record kind", kind); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	if err := p.rlock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.RUnlock()
	var out []*usersessions.Record
	for rk, r := range p.records {
		if rk.kind == kind {
			out = append(out, cloneRecord(r))
		}
	}
	slices.SortFunc(out, func(a, b *usersessions.Record) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// DeleteRecord implements usersessions.Provider; deleting a missing record is not an error.
func (p *Provider) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := (&usersessions.Record{Kind: kind, Key: key}).CheckText(); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	if err := p.lock(ctx); err != nil {
		return err
	}
	defer p.mu.Unlock()
	rk := recordKey{kind, key}
	if _, ok := p.records[rk]; ok {
		delete(p.records, rk)
		p.publish(usersessions.Change{Kind: usersessions.RecordChanged, Record: usersessions.RecordKey{Kind: kind, Key: key}})
	}
	return nil
}

func cloneRecord(r *usersessions.Record) *usersessions.Record {
	c := *r
	c.Value = slices.Clone(r.Value)
	return &c
}

// Enqueue implements usersessions.Provider. The batch is atomic: every delivery needs an
// id not yet in the outbox, or none is stored. Deliveries start Pending with the attempts
// given, due at NextAttempt (now when unset).
func (p *Provider) Enqueue(ctx context.Context, deliveries []*usersessions.Delivery) error {
	if err := p.lock(ctx); err != nil {
		return err
	}
	defer p.mu.Unlock()
	seen := make(map[string]bool, len(deliveries))
	for _, d := range deliveries {
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
		if _, ok := p.deliveries[d.ID]; ok {
			return fmt.Errorf("enqueue: delivery %s: %w", d.ID, spi.ErrExists)
		}
		seen[d.ID] = true
	}
	now := utcMicro(p.now())
	for _, d := range deliveries {
		n := cloneDelivery(d)
		n.State, n.LastError = usersessions.Pending, ""
		n.Created, n.Updated = now, now
		if n.NextAttempt.IsZero() {
			n.NextAttempt = now
		}
		p.deliveries[n.ID] = n
	}
	return nil
}

// Claim implements usersessions.Provider. The lease is kept in NextAttempt: a claimed
// delivery is due again at now+lease unless Finish says otherwise first. Claiming counts
// as an attempt, so a node that dies mid-delivery still uses one up. Earliest due first.
func (p *Provider) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*usersessions.Delivery, error) {
	if lease <= 0 || limit <= 0 {
		return nil, fmt.Errorf("claim: lease %v and limit %d must be positive: %w", lease, limit, spi.ErrInvalid)
	}
	if err := p.lock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.Unlock()
	var due []*usersessions.Delivery
	for _, d := range p.deliveries {
		if d.State == usersessions.Pending && !d.NextAttempt.After(now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b *usersessions.Delivery) int {
		return cmp.Or(a.NextAttempt.Compare(b.NextAttempt), cmp.Compare(a.ID, b.ID))
	})
	due = due[:min(limit, len(due))]
	out := make([]*usersessions.Delivery, len(due))
	for i, d := range due {
		d.NextAttempt = utcMicro(now.Add(lease))
		d.Attempts++
		d.Updated = utcMicro(now)
		out[i] = cloneDelivery(d)
	}
	return out, nil
}

// Finish implements usersessions.Provider. Outcomes for unknown deliveries (an operator may
// have purged them meanwhile) and for deliveries no longer pending are ignored.
func (p *Provider) Finish(ctx context.Context, outcomes []usersessions.DeliveryOutcome) error {
	for _, o := range outcomes {
		switch o.State {
		case usersessions.Pending, usersessions.Delivered, usersessions.Failed:
		default:
			return fmt.Errorf("finish delivery %s: unknown state %q: %w", o.ID, o.State, spi.ErrInvalid)
		}
		if err := usersessions.CheckText("delivery error", o.Error); err != nil {
			return fmt.Errorf("finish delivery: %w", err)
		}
	}
	if err := p.lock(ctx); err != nil {
		return err
	}
	defer p.mu.Unlock()
	now := utcMicro(p.now())
	for _, o := range outcomes {
		d, ok := p.deliveries[o.ID]
		if !ok || d.State != usersessions.Pending {
			continue
		}
		d.State, d.LastError, d.Updated = o.State, o.Error, now
		if o.Target != "" {
			d.Target = o.Target
		}
		if o.State == usersessions.Pending {
			d.NextAttempt = utcMicro(o.NextAttempt)
		}
	}
	return nil
}

// ListDeliveries implements usersessions.Provider: in id order, keyset-paged; an empty
// RealmID lists every realm. Limit <= 0 means 100.
func (p *Provider) ListDeliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	if err := f.CheckText(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	if err := p.rlock(ctx); err != nil {
		return nil, err
	}
	defer p.mu.RUnlock()
	limit := f.Page.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	var out []*usersessions.Delivery
	for _, id := range slices.Sorted(maps.Keys(p.deliveries)) {
		d := p.deliveries[id]
		if id <= f.Page.After || (f.RealmID != "" && d.RealmID != f.RealmID) || (f.State != "" && d.State != f.State) {
			continue
		}
		out = append(out, cloneDelivery(d))
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func cloneDelivery(d *usersessions.Delivery) *usersessions.Delivery {
	c := *d
	c.Payload = slices.Clone(d.Payload)
	c.NextAttempt, c.Created, c.Updated = utcMicro(d.NextAttempt), utcMicro(d.Created), utcMicro(d.Updated)
	return &c
}
