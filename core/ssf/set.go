package ssf

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// payload is the Delivery.Payload of an SSF delivery: the event, without the SET's
// per-attempt claims (iat) or the stream's delivery settings, which are read when the SET
// is sent so that a changed endpoint or a deleted stream takes effect on queued events.
type payload struct {
	Stream string `json:"stream"`
	Event  string `json:"event"`
	Txn    string `json:"txn,omitempty"`
	// session-revoked
	SessionID string `json:"sid,omitempty"`
	UserID    string `json:"uid,omitempty"`
	ClientID  string `json:"client,omitempty"`
	Offline   bool   `json:"offline,omitempty"`
	At        int64  `json:"at,omitempty"` // unix seconds
	Initiator string `json:"initiator,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// verification
	State string `json:"state,omitempty"`
}

// SessionsEnded queues a session-revoked SET for each ended session to each stream of its
// realm that delivers that event and is not disabled: one delivery per session and stream,
// whose id is the SET's jti. The SETs of one call share a txn (RFC 8417 §2.2): they come
// from one action. It implements session.Ends.
func (t *Transmitter) SessionsEnded(ctx context.Context, ends []session.Ended) error {
	byRealm := map[string][]session.Ended{}
	var order []string
	for _, e := range ends {
		if _, ok := byRealm[e.Realm]; !ok {
			order = append(order, e.Realm)
		}
		byRealm[e.Realm] = append(byRealm[e.Realm], e)
	}
	txn := strings.ToLower(rand.Text())
	now := t.now()
	var ds []*usersessions.Delivery
	for _, realmName := range order {
		all, err := t.streams(ctx, realmName)
		if err != nil {
			return err
		}
		for _, s := range all {
			if s.Status == StatusDisabled || !s.wants(EventSessionRevoked) {
				continue
			}
			for _, e := range byRealm[realmName] {
				d, err := t.delivery(s, now, payload{
					Stream: s.ID, Event: EventSessionRevoked, Txn: txn, SessionID: e.SessionID, UserID: e.UserID,
					ClientID: e.ClientID, Offline: e.Offline, At: e.At.Unix(), Initiator: e.Initiator, Reason: e.Reason,
				})
				if err != nil {
					return err
				}
				ds = append(ds, d)
			}
		}
	}
	if len(ds) == 0 {
		return nil
	}
	if err := t.queue().Queue(ctx, ds); err != nil {
		return fmt.Errorf("ssf: queue %d session-revoked events: %w", len(ds), err)
	}
	t.log.Debug("session-revoked events queued", "sessions", len(ends), "events", len(ds), "txn", txn)
	return nil
}

// Verify queues a verification event to a stream (SSF 1.0 §8.1.4) with the receiver's
// state, which the SET carries back. Like every event it waits while the stream is paused;
// a disabled stream refuses it.
func (t *Transmitter) Verify(ctx context.Context, realmName, id, state string) error {
	s, err := t.get(ctx, realmName, id)
	if err != nil {
		return err
	}
	if len(state) > maxText {
		return invalidf("state is longer than %d bytes", maxText)
	}
	if s.Status == StatusDisabled {
		return invalidf("stream %s is disabled; enable it to verify it", s.ID)
	}
	d, err := t.delivery(s, t.now(), payload{Stream: s.ID, Event: EventVerification, State: state})
	if err != nil {
		return err
	}
	if err := t.queue().Queue(ctx, []*usersessions.Delivery{d}); err != nil {
		return fmt.Errorf("ssf: queue a verification event: %w", err)
	}
	return nil
}

func (t *Transmitter) delivery(s *stored, now time.Time, p payload) (*usersessions.Delivery, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("ssf: encode an event: %w", err)
	}
	return &usersessions.Delivery{
		ID: t.newID(now), RealmID: s.Realm, ClientID: s.Audience, Kind: revocationpush.SecurityEvent,
		Target: s.EndpointURL, Payload: b,
	}, nil
}

// Subject identifiers (SSF 1.0 §3).
type subject struct {
	Format string `json:"format"`
	// opaque
	ID string `json:"id,omitempty"`
	// iss_sub
	Iss string `json:"iss,omitempty"`
	Sub string `json:"sub,omitempty"`
	// complex
	User        *subject `json:"user,omitempty"`
	Session     *subject `json:"session,omitempty"`
	Application *subject `json:"application,omitempty"`
}

// claims are a SET's (RFC 8417 §2.2, SSF 1.0 §4): sub_id names the subject; events holds
// one event.
type claims struct {
	Iss    string                    `json:"iss"`
	Jti    string                    `json:"jti"`
	Iat    int64                     `json:"iat"`
	Aud    string                    `json:"aud"`
	Txn    string                    `json:"txn,omitempty"`
	SubID  subject                   `json:"sub_id"`
	Events map[string]map[string]any `json:"events"`
}

// Notice builds the notice of one attempt at an SSF delivery: the SET signed now with the
// realm's active key, jti the delivery's id (the same at every attempt), to the stream's
// endpoint as it is now. A deleted or disabled stream, or one no longer requesting the
// event, fails the delivery (spi.ErrInvalid, not retried); a paused one keeps it
// (retried). It implements push.SETs.
func (t *Transmitter) Notice(ctx context.Context, d *usersessions.Delivery, now time.Time) (revocationpush.Notice, error) {
	var p payload
	if err := json.Unmarshal(d.Payload, &p); err != nil || p.Stream == "" {
		return revocationpush.Notice{}, fmt.Errorf("ssf: delivery %s has an unreadable payload: %w", d.ID, spi.ErrInvalid)
	}
	s, err := t.get(ctx, d.RealmID, p.Stream)
	switch {
	case errors.Is(err, spi.ErrNotFound):
		return revocationpush.Notice{}, invalidf("stream %s is gone; event %s dropped", p.Stream, d.ID)
	case err != nil:
		return revocationpush.Notice{}, fmt.Errorf("ssf: event %s: %w", d.ID, err)
	case s.Status == StatusDisabled:
		return revocationpush.Notice{}, invalidf("stream %s is disabled; event %s dropped", s.ID, d.ID)
	case s.Status == StatusPaused:
		return revocationpush.Notice{}, fmt.Errorf("ssf: stream %s is paused; event %s waits", s.ID, d.ID)
	case p.Event != EventVerification && !s.wants(p.Event):
		return revocationpush.Notice{}, invalidf("stream %s no longer requests %s; event %s dropped", s.ID, p.Event, d.ID)
	}
	c := claims{Iss: t.issuer(d.RealmID), Jti: d.ID, Iat: now.Unix(), Aud: s.Audience, Txn: p.Txn}
	switch p.Event {
	case EventSessionRevoked:
		c.SubID = subject{Format: "complex",
			User:    &subject{Format: "iss_sub", Iss: c.Iss, Sub: p.UserID},
			Session: &subject{Format: "opaque", ID: p.SessionID},
		}
		if p.ClientID != "" {
			c.SubID.Application = &subject{Format: "opaque", ID: p.ClientID}
		}
		ev := map[string]any{"event_timestamp": p.At}
		if p.Initiator != "" {
			ev["initiating_entity"] = p.Initiator
		}
		if p.Reason != "" {
			reason := p.Reason
			if p.Offline {
				reason += " (offline session)"
			}
			ev["reason_admin"] = map[string]string{"en": reason}
		}
		c.Events = map[string]map[string]any{EventSessionRevoked: ev}
	case EventVerification:
		c.SubID = subject{Format: "opaque", ID: s.ID}
		ev := map[string]any{}
		if p.State != "" {
			ev["state"] = p.State
		}
		c.Events = map[string]map[string]any{EventVerification: ev}
	default:
		return revocationpush.Notice{}, invalidf("delivery %s has unknown event %q", d.ID, p.Event)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return revocationpush.Notice{}, fmt.Errorf("ssf: encode SET %s: %w", d.ID, err)
	}
	raw, err := t.keys.SignSET(ctx, d.RealmID, b)
	if err != nil {
		return revocationpush.Notice{}, fmt.Errorf("ssf: sign SET %s: %w", d.ID, err)
	}
	return revocationpush.Notice{ClientID: s.Audience, Token: raw, PushURL: s.EndpointURL, Authorization: s.Authorization}, nil
}
