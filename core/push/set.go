package push

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// SETs builds the notice of a Shared Signals delivery (Kind revocationpush.SecurityEvent)
// for one attempt: it signs the Security Event Token at now and says where it goes.
// *ssf.Transmitter is one. An error wrapping spi.ErrInvalid is never retried (the stream
// is gone); any other is (a paused stream, an unreadable key).
type SETs interface {
	Notice(ctx context.Context, d *usersessions.Delivery, now time.Time) (revocationpush.Notice, error)
}

// NewID is a delivery id that sorts by creation time; a SET's jti is its delivery's id, so
// that every retry of one event carries the same jti.
func NewID(now time.Time) string { return newID(now) }

// Queue stores deliveries made elsewhere (SSF events, with their own payloads) as due now,
// with no attempt started, and wakes this node's worker so that the first attempt follows
// at once rather than at the next poll. Run (on whichever node claims them first) makes
// every attempt, with the outbox's retries.
func (o *Outbox) Queue(ctx context.Context, ds []*usersessions.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	now := o.now()
	for _, d := range ds {
		if d.ID == "" || d.Kind == "" {
			return fmt.Errorf("push: a queued delivery needs an id and a kind: %w", spi.ErrInvalid)
		}
		d.Attempts, d.NextAttempt = 0, now
	}
	if err := o.store.Enqueue(ctx, ds); err != nil {
		return fmt.Errorf("push: queue %d deliveries: %w", len(ds), err)
	}
	o.Wake()
	return nil
}

// Wake makes Run look for due deliveries now rather than at its next poll. It never blocks.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// setNotice is notice for a SecurityEvent delivery: the SETs dependency builds it.
func (o *Outbox) setNotice(ctx context.Context, d *usersessions.Delivery, now time.Time) (revocationpush.Notice, error) {
	if o.sets == nil {
		return revocationpush.Notice{}, fmt.Errorf("push: delivery %s is a Security Event Token, and no SSF transmitter is running: %w", d.ID, spi.ErrInvalid)
	}
	n, err := o.sets.Notice(ctx, d, now)
	if err != nil {
		return n, err
	}
	n.ID, n.Action, n.RealmID = d.ID, revocationpush.SecurityEvent, d.RealmID
	return n, nil
}
