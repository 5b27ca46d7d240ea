package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// NotBefore is a realm's not-before policy; the zero time means none.
func (s *Service) NotBefore(ctx context.Context, realmName string) (time.Time, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.needPolicies(); err != nil {
		return time.Time{}, err
	}
	return s.policies.Realm(r.Name), nil
}

// Change says what to set a not-before policy to: the current time (Keycloak's "Set to
// now"), a given time, or nothing (the zero Change clears it).
type Change struct {
	Now bool
	At  time.Time
}

func (s *Service) resolve(c Change) time.Time {
	if c.Now {
		return s.clock()
	}
	return c.At
}

// SetNotBefore sets a realm's not-before policy and returns it as stored. Every token and
// session issued before it stops working, on every node; pushing it to clients is a
// separate action (PushRevocation), as in Keycloak's console.
func (s *Service) SetNotBefore(ctx context.Context, realmName string, c Change) (time.Time, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.needPolicies(); err != nil {
		return time.Time{}, err
	}
	if err := s.policies.SetRealm(ctx, r.Name, s.resolve(c)); err != nil {
		return time.Time{}, fmt.Errorf("set the not-before of realm %q: %w", r.Name, err)
	}
	return s.policies.Realm(r.Name), nil
}

// ClientNotBefore is the not-before policy of the client with internal id clientUUID.
func (s *Service) ClientNotBefore(ctx context.Context, realmName, clientUUID string) (time.Time, error) {
	if _, err := s.realm(realmName); err != nil {
		return time.Time{}, err
	}
	c, err := s.clientByID(realmName, clientUUID)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.needPolicies(); err != nil {
		return time.Time{}, err
	}
	return s.policies.Client(realmName, c.ClientID), nil
}

// SetClientNotBefore sets a client's own not-before policy.
func (s *Service) SetClientNotBefore(ctx context.Context, realmName, clientUUID string, ch Change) (time.Time, error) {
	if _, err := s.realm(realmName); err != nil {
		return time.Time{}, err
	}
	c, err := s.clientByID(realmName, clientUUID)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.needPolicies(); err != nil {
		return time.Time{}, err
	}
	if err := s.policies.SetClient(ctx, realmName, c.ClientID, s.resolve(ch)); err != nil {
		return time.Time{}, fmt.Errorf("set the not-before of client %q: %w", c.ClientID, err)
	}
	return s.policies.Client(realmName, c.ClientID), nil
}

// PushRevocation sends the not-before policy to every client of the realm with an admin URL
// (clientUUID "") or to one client, and reports which URLs took it (POST push-revocation,
// POST clients/{id}/push-revocation). A client that is down is retried from the outbox; it
// is reported failed here until a later attempt succeeds.
func (s *Service) PushRevocation(ctx context.Context, realmName, clientUUID string) (Report, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return Report{}, err
	}
	clientID := ""
	if clientUUID != "" {
		c, err := s.clientByID(r.Name, clientUUID)
		if err != nil {
			return Report{}, err
		}
		clientID = c.ClientID
	}
	if err := s.needPush(); err != nil {
		return Report{}, err
	}
	rep, err := s.push.PushNotBefore(ctx, r.Name, clientID)
	if err != nil {
		return rep, fmt.Errorf("push the not-before of realm %q: %w", r.Name, err)
	}
	return merge(Report{}, rep), nil
}

// DeliveryRep is one entry of the revocation-push outbox, as the admin API shows it: never
// the payload (it carries a signed token) nor credentials in the target URL. Attempts
// counts every attempt started, the first, made when the push was asked for, included.
type DeliveryRep struct {
	ID          string `json:"id"`
	ClientID    string `json:"clientId"`
	Kind        string `json:"kind"`
	Target      string `json:"target"`
	State       string `json:"state"`
	Attempts    int    `json:"attempts"`
	NextAttempt int64  `json:"nextAttempt,omitempty"` // ms since the epoch
	LastError   string `json:"lastError,omitempty"`
	Created     int64  `json:"created"`
	Updated     int64  `json:"updated"`
}

// Deliveries is one page of a realm's push deliveries in a state ("" for all), after the
// delivery id q.After. next is the After of the following page, "" when this one was not
// full. Deliveries page by cursor only: q.First must be 0.
func (s *Service) Deliveries(ctx context.Context, realmName string, state usersessions.DeliveryState, q Query) (page []DeliveryRep, next string, err error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, "", err
	}
	switch state {
	case "", usersessions.Pending, usersessions.Delivered, usersessions.Failed:
	default:
		return nil, "", invalidf("state must be pending, delivered or failed, not %q", state)
	}
	if q.First != 0 {
		return nil, "", invalidf("deliveries are paged with after=, not first=")
	}
	if q, err = q.normalise(); err != nil {
		return nil, "", err
	}
	if err := s.needPush(); err != nil {
		return nil, "", err
	}
	got, err := s.push.Deliveries(ctx, usersessions.DeliveryFilter{RealmID: r.Name, State: state, Page: usersessions.Page{After: q.After, Limit: q.Max}})
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries of realm %q: %w", r.Name, err)
	}
	out := make([]DeliveryRep, 0, len(got))
	for _, d := range got {
		rep := DeliveryRep{
			ID: d.ID, ClientID: d.ClientID, Kind: d.Kind, Target: redact.URL(d.Target), State: string(d.State),
			Attempts: d.Attempts, LastError: d.LastError, Created: d.Created.UnixMilli(), Updated: d.Updated.UnixMilli(),
		}
		if !d.NextAttempt.IsZero() && d.State == usersessions.Pending {
			rep.NextAttempt = d.NextAttempt.UnixMilli()
		}
		out = append(out, rep)
	}
	if len(got) >= q.Max {
		next = got[len(got)-1].ID
	}
	return out, next, nil
}
