package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// payload is Delivery.Payload: what a notice needs besides the delivery's own fields. The
// signed token is not stored: it expires within seconds, so every attempt signs anew, with
// the realm's key of the moment.
type payload struct {
	Action     string   `json:"action"`
	AdminURL   string   `json:"adminUrl,omitempty"`
	LogoutURL  string   `json:"logoutUrl,omitempty"`
	NotBefore  int64    `json:"notBefore,omitempty"`  // Unix seconds, as the adapter protocol has it
	SessionIDs []string `json:"sessionIds,omitempty"` // adapter session ids (LOGOUT); the session (BACKCHANNEL_LOGOUT)
	UserID     string   `json:"userId,omitempty"`     // sub of a back-channel logout token
}

func (p payload) encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("push: encode a %s notice: %w", p.Action, err)
	}
	return b, nil
}

// adminAction is the signed body of Keycloak's adapter actions (AdminAction and its
// PushNotBeforeAction and LogoutAction), in Keycloak's field order. A LOGOUT without
// adapterSessionIds logs out every session of the adapter: the field must then be absent,
// not empty.
type adminAction struct {
	ID                string   `json:"id"`
	Expiration        int64    `json:"expiration"`
	Resource          string   `json:"resource"`
	Action            string   `json:"action"`
	AdapterSessionIDs []string `json:"adapterSessionIds,omitempty"`
	NotBefore         int64    `json:"notBefore"`
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// attempt makes one attempt at each delivery and records the outcomes; before[i] is how many
// attempts delivery i had before. ctx bounds the attempt (see leased); the outcomes are
// recorded even once it has ended. It returns one result per delivery, in order.
func (o *Outbox) attempt(ctx context.Context, ds []*usersessions.Delivery, before []int) []revocationpush.Result {
	now := o.now()
	results := make([]revocationpush.Result, len(ds))
	var notices []revocationpush.Notice
	var of []int // notices[k] is for ds[of[k]]
	for i, d := range ds {
		n, err := o.notice(ctx, d, now)
		if err != nil {
			// A notice that cannot be built never will be; a key that cannot be read now
			// may be readable later.
			results[i] = revocationpush.Result{NoticeID: d.ID, Target: d.Target, Error: err.Error(), Retry: !errors.Is(err, spi.ErrInvalid)}
			continue
		}
		notices = append(notices, n)
		of = append(of, i)
	}
	if len(notices) > 0 {
		got, err := o.provider.Push(ctx, notices)
		for k, i := range of {
			switch {
			case err != nil:
				results[i] = revocationpush.Result{NoticeID: ds[i].ID, Target: ds[i].Target, Error: "revocation-push provider: " + err.Error(), Retry: true}
			case k >= len(got):
				results[i] = revocationpush.Result{NoticeID: ds[i].ID, Target: ds[i].Target, Error: errNoResult.Error(), Retry: true}
			default:
				results[i] = got[k]
			}
		}
	}
	outcomes := make([]usersessions.DeliveryOutcome, len(ds))
	for i, d := range ds {
		outcomes[i] = o.outcome(d, results[i], before[i]+1, now)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := o.store.Finish(fctx, outcomes); err != nil {
		o.log.Warn("cannot record revocation push outcomes; the deliveries are attempted again when their lease ends",
			"deliveries", len(ds), "error", err)
	}
	return results
}

// outcome turns the result of attempt number n into what the outbox records, and counts it.
func (o *Outbox) outcome(d *usersessions.Delivery, r revocationpush.Result, n int, now time.Time) usersessions.DeliveryOutcome {
	// The error may be a remote party's words: stored as text every store holds.
	why := usersessions.StorableText(r.Error)
	if why == "" {
		why = "not delivered"
	}
	out := o.outcomeOf(d, r, n, now, why)
	// Where the provider says the attempt went is what the push answer names (reported);
	// recorded, the deliveries listing names the same.
	if r.Target != "" {
		out.Target = usersessions.StorableText(reported(d, r))
	}
	return out
}

func (o *Outbox) outcomeOf(d *usersessions.Delivery, r revocationpush.Result, n int, now time.Time, why string) usersessions.DeliveryOutcome {
	switch {
	case r.OK:
		o.delivered.Add(1)
		o.log.Debug("revocation notice delivered", "id", d.ID, "realm", d.RealmID, "client", d.ClientID, "action", d.Kind,
			"target", reported(d, r), "attempt", n)
		return usersessions.DeliveryOutcome{ID: d.ID, State: usersessions.Delivered}
	case !r.Retry:
		o.failed.Add(1)
		o.log.Warn("revocation notice refused; not retried", "id", d.ID, "realm", d.RealmID, "client", d.ClientID,
			"action", d.Kind, "target", reported(d, r), "error", why)
		return usersessions.DeliveryOutcome{ID: d.ID, State: usersessions.Failed, Error: why}
	case n >= o.opts.MaxAttempts:
		o.failed.Add(1)
		why = fmt.Sprintf("gave up after %d attempts: %s", n, why)
		o.log.Warn("revocation notice not delivered", "id", d.ID, "realm", d.RealmID, "client", d.ClientID,
			"action", d.Kind, "target", reported(d, r), "error", why)
		return usersessions.DeliveryOutcome{ID: d.ID, State: usersessions.Failed, Error: why}
	default:
		o.retried.Add(1)
		next := now.Add(o.backoff(n))
		o.log.Debug("revocation notice not delivered; retrying", "id", d.ID, "client", d.ClientID, "attempt", n, "next", next, "error", why)
		return usersessions.DeliveryOutcome{ID: d.ID, State: usersessions.Pending, NextAttempt: next, Error: why}
	}
}

// backoff is the wait after n failed attempts: BackoffInitial doubled n-1 times, at most
// BackoffMax, less a random part of up to half, so that clients coming back are not hit by
// every node at the same instant. It is never longer than the undrawn wait, which tests
// rely on.
func (o *Outbox) backoff(n int) time.Duration {
	d := o.opts.BackoffInitial
	for i := 1; i < n && d < o.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, o.opts.BackoffMax)
	half := d / 2
	return d - half + time.Duration(rand.Int64N(int64(half)+1))
}

// notice builds the notice of one attempt, signing its token at now.
func (o *Outbox) notice(ctx context.Context, d *usersessions.Delivery, now time.Time) (revocationpush.Notice, error) {
	if d.Kind == revocationpush.SecurityEvent {
		return o.setNotice(ctx, d, now)
	}
	var p payload
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return revocationpush.Notice{}, fmt.Errorf("push: delivery %s has an unreadable payload: %w", d.ID, spi.ErrInvalid)
	}
	n := revocationpush.Notice{
		ID: d.ID, Action: p.Action, RealmID: d.RealmID, ClientID: d.ClientID, AdminURL: p.AdminURL, LogoutURL: p.LogoutURL,
		NotBefore: fromUnix(p.NotBefore), SessionIDs: p.SessionIDs,
	}
	var err error
	switch p.Action {
	case revocationpush.PushNotBefore:
		// The policy may have moved since the delivery was made: a retry carries the later
		// one, so that a late retry never takes a client back to an older policy.
		if cur := o.notBefore(d.RealmID, d.ClientID); cur.After(n.NotBefore) {
			n.NotBefore = cur.Truncate(time.Second).UTC()
		}
		n.Expires = now.Add(actionLifespan)
		n.Token, err = o.sign(ctx, d.RealmID, adminAction{ID: d.ID, Expiration: n.Expires.Unix(), Resource: d.ClientID, Action: p.Action, NotBefore: unix(n.NotBefore)})
	case revocationpush.Logout:
		n.Expires = now.Add(actionLifespan)
		n.Token, err = o.sign(ctx, d.RealmID, adminAction{ID: d.ID, Expiration: n.Expires.Unix(), Resource: d.ClientID, Action: p.Action,
			AdapterSessionIDs: p.SessionIDs, NotBefore: p.NotBefore})
	case revocationpush.BackchannelLogout:
		if len(p.SessionIDs) != 1 || p.UserID == "" {
			return n, fmt.Errorf("push: back-channel logout %s needs one session and its user: %w", d.ID, spi.ErrInvalid)
		}
		n.Expires = now.Add(logoutTokenLifespan)
		n.Token, err = o.tokens.LogoutToken(ctx, d.RealmID, token.LogoutClaims{
			Subject: p.UserID, SessionID: p.SessionIDs[0], Audience: d.ClientID, IssuedAt: now, Expiry: n.Expires,
		})
	default:
		return n, fmt.Errorf("push: delivery %s has unknown action %q: %w", d.ID, p.Action, spi.ErrInvalid)
	}
	if err != nil {
		return n, fmt.Errorf("push: sign the %s notice for client %q: %w", p.Action, d.ClientID, err)
	}
	return n, nil
}

func (o *Outbox) sign(ctx context.Context, realmName string, a adminAction) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	return o.keys.Sign(ctx, realmName, b)
}
