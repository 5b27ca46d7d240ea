package ssf

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Delivery is a stream's delivery method (SSF 1.0 §8.1.1): RFC 8935 push to EndpointURL,
// with Authorization as the request's Authorization header when set. Authorization is a
// secret the receiver chose: it is stored, sent, and never answered back.
type Delivery struct {
	Method      string `json:"method"`
	EndpointURL string `json:"endpoint_url,omitempty"`
	// Authorization is write-only: Config never carries it out.
	Authorization string `json:"authorization_header,omitempty"`
}

// Config is a stream's configuration as the stream management API reads and writes it
// (SSF 1.0 §8.1.1). The transmitter supplies StreamID, Issuer, EventsSupported and
// EventsDelivered; the receiver EventsRequested, Delivery and Description. Audience is
// the receiver's name in the SETs' aud claim: sessiond takes it from the creator (an
// administrator configures streams), defaulting to the endpoint's origin.
type Config struct {
	StreamID        string   `json:"stream_id"`
	Issuer          string   `json:"iss"`
	Audience        string   `json:"aud"`
	EventsSupported []string `json:"events_supported"`
	EventsRequested []string `json:"events_requested"`
	EventsDelivered []string `json:"events_delivered"`
	Delivery        Delivery `json:"delivery"`
	Description     string   `json:"description,omitempty"`
}

// Status is a stream's status (SSF 1.0 §8.1.2).
type Status struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

// stored is a stream's record value.
type stored struct {
	Realm           string    `json:"realm"`
	ID              string    `json:"id"`
	Audience        string    `json:"aud"`
	EventsRequested []string  `json:"eventsRequested"`
	EndpointURL     string    `json:"endpointUrl"`
	Authorization   string    `json:"authorization,omitempty"`
	Description     string    `json:"description,omitempty"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason,omitempty"`
	Created         time.Time `json:"created"`
	version         int64
}

// delivered are the event types a stream gets: those it requested that sessiond supports.
func (s *stored) delivered() []string {
	var out []string
	for _, e := range supported {
		if slices.Contains(s.EventsRequested, e) {
			out = append(out, e)
		}
	}
	return out
}

func (s *stored) wants(event string) bool { return slices.Contains(s.delivered(), event) }

// config is the stream as the API answers it.
func (t *Transmitter) config(s *stored) Config {
	return Config{
		StreamID: s.ID, Issuer: t.issuer(s.Realm), Audience: s.Audience,
		EventsSupported: slices.Clone(supported), EventsRequested: orEmpty(s.EventsRequested), EventsDelivered: orEmpty(s.delivered()),
		Delivery:    Delivery{Method: DeliveryPush, EndpointURL: s.EndpointURL},
		Description: s.Description,
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func key(realmName, id string) string { return url.PathEscape(realmName) + "/" + id }

// Limits of what a receiver may write.
const (
	maxText   = 1024 // description, audience, a reason
	maxURL    = 2048
	maxEvents = 32
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("ssf: "+format+": %w", append(args, spi.ErrInvalid)...)
}

// Update is what a receiver writes: a create or replace (PUT) sets every field given and
// leaves the rest empty; a PATCH changes only the fields given (non-nil).
type Update struct {
	StreamID        string    `json:"stream_id"`
	Audience        *string   `json:"aud"`
	EventsRequested *[]string `json:"events_requested"`
	Delivery        *Delivery `json:"delivery"`
	Description     *string   `json:"description"`
	// Transmitter-supplied fields: accepted when they repeat what the transmitter has
	// (a receiver PUTs back what it read), refused otherwise.
	Issuer          *string   `json:"iss"`
	EventsSupported *[]string `json:"events_supported"`
	EventsDelivered *[]string `json:"events_delivered"`
}

// apply writes u onto s (all fields when replace), checking each.
func (t *Transmitter) apply(s *stored, u Update, replace bool) error {
	if u.Issuer != nil && *u.Issuer != t.issuer(s.Realm) {
		return invalidf("iss is the transmitter's (%s) and cannot be set", t.issuer(s.Realm))
	}
	if replace || u.Delivery != nil {
		if u.Delivery == nil {
			return invalidf("delivery is required: {\"method\": %q, \"endpoint_url\": \"https://…\"}", DeliveryPush)
		}
		d := u.Delivery
		if d.Method != DeliveryPush {
			return invalidf("delivery method %q is not supported; sessiond pushes (%s)", d.Method, DeliveryPush)
		}
		if err := checkEndpoint(d.EndpointURL); err != nil {
			return err
		}
		if len(d.Authorization) > maxText || strings.ContainsAny(d.Authorization, "\r\n") {
			return invalidf("authorization_header must be one line of at most %d bytes", maxText)
		}
		s.EndpointURL, s.Authorization = d.EndpointURL, d.Authorization
	}
	if replace || u.EventsRequested != nil {
		var ev []string
		if u.EventsRequested != nil {
			ev = *u.EventsRequested
		}
		if len(ev) > maxEvents {
			return invalidf("events_requested lists %d event types; at most %d", len(ev), maxEvents)
		}
		for _, e := range ev {
			if u, err := url.Parse(e); err != nil || !u.IsAbs() || len(e) > maxURL {
				return invalidf("events_requested: %q is not an event type URI", e)
			}
		}
		s.EventsRequested = slices.Compact(slices.Sorted(slices.Values(ev)))
	}
	if replace || u.Description != nil {
		s.Description = ""
		if u.Description != nil {
			s.Description = *u.Description
		}
		if len(s.Description) > maxText {
			return invalidf("description is longer than %d bytes", maxText)
		}
	}
	if replace || u.Audience != nil {
		s.Audience = ""
		if u.Audience != nil {
			s.Audience = strings.TrimSpace(*u.Audience)
		}
		if len(s.Audience) > maxText {
			return invalidf("aud is longer than %d bytes", maxText)
		}
		if s.Audience == "" {
			e, _ := url.Parse(s.EndpointURL)
			s.Audience = e.Scheme + "://" + e.Host
		}
	}
	if u.EventsSupported != nil && !slices.Equal(slices.Sorted(slices.Values(*u.EventsSupported)), slices.Sorted(slices.Values(supported))) {
		return invalidf("events_supported is the transmitter's and cannot be set")
	}
	if u.EventsDelivered != nil && !slices.Equal(slices.Sorted(slices.Values(*u.EventsDelivered)), s.delivered()) {
		return invalidf("events_delivered is the transmitter's and cannot be set; request events with events_requested")
	}
	return nil
}

// checkEndpoint accepts an absolute http(s) URL without a fragment.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return invalidf("delivery.endpoint_url is required for %s", DeliveryPush)
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(raw) > maxURL:
		return invalidf("delivery.endpoint_url %q is not an absolute http(s) URL", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return invalidf("delivery.endpoint_url must not have a fragment")
	}
	return nil
}

// Create adds a stream to realm from u (stream_id must be absent: the transmitter names
// it), enabled.
func (t *Transmitter) Create(ctx context.Context, realmName string, u Update) (Config, error) {
	r, err := t.realm(realmName)
	if err != nil {
		return Config{}, err
	}
	if u.StreamID != "" {
		return Config{}, invalidf("stream_id is the transmitter's; leave it out of a create")
	}
	all, err := t.streams(ctx, r.Name)
	if err != nil {
		return Config{}, err
	}
	if len(all) >= MaxStreams {
		return Config{}, fmt.Errorf("ssf: realm %q has %d streams, the most it may have: %w", r.Name, len(all), spi.ErrConflict)
	}
	s := &stored{Realm: r.Name, ID: strings.ToLower(rand.Text()), Status: StatusEnabled, Created: t.now().UTC()}
	if err := t.apply(s, u, true); err != nil {
		return Config{}, err
	}
	if err := t.put(ctx, s); err != nil {
		return Config{}, err
	}
	t.log.Info("SSF stream created", "realm", r.Name, "stream", s.ID, "aud", s.Audience, "events", s.delivered())
	return t.config(s), nil
}

// Get returns one stream of realm; an unknown one wraps spi.ErrNotFound.
func (t *Transmitter) Get(ctx context.Context, realmName, id string) (Config, error) {
	s, err := t.get(ctx, realmName, id)
	if err != nil {
		return Config{}, err
	}
	return t.config(s), nil
}

// List returns every stream of realm, oldest first.
func (t *Transmitter) List(ctx context.Context, realmName string) ([]Config, error) {
	r, err := t.realm(realmName)
	if err != nil {
		return nil, err
	}
	all, err := t.streams(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	out := make([]Config, len(all))
	for i, s := range all {
		out[i] = t.config(s)
	}
	return out, nil
}

// Update changes a stream: every receiver-supplied field (replace, PUT) or those u gives
// (PATCH). A write another node made meanwhile is spi.ErrConflict.
func (t *Transmitter) Update(ctx context.Context, realmName string, u Update, replace bool) (Config, error) {
	if u.StreamID == "" {
		return Config{}, invalidf("stream_id is required")
	}
	s, err := t.get(ctx, realmName, u.StreamID)
	if err != nil {
		return Config{}, err
	}
	if err := t.apply(s, u, replace); err != nil {
		return Config{}, err
	}
	if err := t.put(ctx, s); err != nil {
		return Config{}, err
	}
	t.log.Info("SSF stream updated", "realm", s.Realm, "stream", s.ID, "events", s.delivered())
	return t.config(s), nil
}

// Delete removes a stream; its queued events are dropped at their next attempt.
func (t *Transmitter) Delete(ctx context.Context, realmName, id string) error {
	s, err := t.get(ctx, realmName, id)
	if err != nil {
		return err
	}
	if err := t.store.DeleteRecord(ctx, RecordKind, key(s.Realm, s.ID)); err != nil {
		return fmt.Errorf("ssf: delete stream %s: %w", id, err)
	}
	t.log.Info("SSF stream deleted", "realm", s.Realm, "stream", s.ID)
	return nil
}

// Status returns a stream's status.
func (t *Transmitter) Status(ctx context.Context, realmName, id string) (Status, error) {
	s, err := t.get(ctx, realmName, id)
	if err != nil {
		return Status{}, err
	}
	return Status{StreamID: s.ID, Status: s.Status, Reason: s.Reason}, nil
}

// SetStatus sets a stream's status: enabled, paused (events wait in the outbox) or
// disabled (events are neither queued nor sent).
func (t *Transmitter) SetStatus(ctx context.Context, realmName string, st Status) (Status, error) {
	if st.StreamID == "" {
		return Status{}, invalidf("stream_id is required")
	}
	switch st.Status {
	case StatusEnabled, StatusPaused, StatusDisabled:
	default:
		return Status{}, invalidf("status %q is not one of %s, %s, %s", st.Status, StatusEnabled, StatusPaused, StatusDisabled)
	}
	if len(st.Reason) > maxText {
		return Status{}, invalidf("reason is longer than %d bytes", maxText)
	}
	s, err := t.get(ctx, realmName, st.StreamID)
	if err != nil {
		return Status{}, err
	}
	s.Status, s.Reason = st.Status, st.Reason
	if err := t.put(ctx, s); err != nil {
		return Status{}, err
	}
	t.log.Info("SSF stream status set", "realm", s.Realm, "stream", s.ID, "status", s.Status)
	return Status{StreamID: s.ID, Status: s.Status, Reason: s.Reason}, nil
}

// get reads one stream; a stream_id that no stream of realm has wraps spi.ErrNotFound.
func (t *Transmitter) get(ctx context.Context, realmName, id string) (*stored, error) {
	r, err := t.realm(realmName)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, invalidf("stream_id is required")
	}
	recs, err := t.store.GetRecords(ctx, RecordKind, []string{key(r.Name, id)})
	if err != nil {
		return nil, fmt.Errorf("ssf: read stream %s: %w", id, err)
	}
	if len(recs) != 1 || recs[0] == nil {
		return nil, fmt.Errorf("ssf: stream %q of realm %q: %w", id, r.Name, spi.ErrNotFound)
	}
	return decode(recs[0])
}

// streams lists a realm's streams, oldest first.
func (t *Transmitter) streams(ctx context.Context, realmName string) ([]*stored, error) {
	recs, err := t.store.ListRecords(ctx, RecordKind)
	if err != nil {
		return nil, fmt.Errorf("ssf: list streams: %w", err)
	}
	prefix := url.PathEscape(realmName) + "/"
	var out []*stored
	for _, rec := range recs {
		if rec == nil || !strings.HasPrefix(rec.Key, prefix) {
			continue
		}
		s, err := decode(rec)
		if err != nil {
			t.log.Error("unreadable SSF stream record skipped", "key", rec.Key, "error", err)
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func decode(rec *usersessions.Record) (*stored, error) {
	var s stored
	if err := json.Unmarshal(rec.Value, &s); err != nil {
		return nil, fmt.Errorf("ssf: stream record %q: %w", rec.Key, err)
	}
	s.version = rec.Version
	return &s, nil
}

// put writes a stream at the version it was read at (0: new).
func (t *Transmitter) put(ctx context.Context, s *stored) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("ssf: encode stream %s: %w", s.ID, err)
	}
	rec, err := t.store.PutRecord(ctx, &usersessions.Record{Kind: RecordKind, Key: key(s.Realm, s.ID), Value: b, Version: s.version})
	if err != nil {
		if errors.Is(err, spi.ErrConflict) || errors.Is(err, spi.ErrExists) {
			return fmt.Errorf("ssf: stream %s was changed meanwhile; read it and try again: %w", s.ID, spi.ErrConflict)
		}
		return fmt.Errorf("ssf: store stream %s: %w", s.ID, err)
	}
	s.version = rec.Version
	return nil
}
