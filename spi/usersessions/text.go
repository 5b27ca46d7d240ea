package usersessions

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sessiond/sessiond/spi"
)

// Text every provider can store.
//
// PostgreSQL's text and jsonb refuse NUL and invalid UTF-8, and gRPC refuses invalid UTF-8
// in a string field, so a string holding either cannot reach some stores at all. The
// contract therefore makes every provider refuse them alike, whatever its own backend could
// hold, rather than fail with a driver error a caller cannot tell from an outage:
//
//   - Writes (Create, Update, Touch, PutClientSessions, PutRecord, Enqueue, Finish) of such text in
//     any string field, note key or note value fail with spi.ErrInvalid, per item in a
//     batch, and store nothing of that item.
//   - Lookups by key (Get, Delete, DeleteClientSessions, GetRecords) treat a key holding
//     such text as one that names nothing: nothing can be stored under it.
//   - Filters, pages and single names (List, Count, CountByClient, DeleteMatching, Stream,
//     ListRecords, DeleteRecord, ListDeliveries) holding it fail with spi.ErrInvalid.

// CheckText is nil when s can be stored by every provider, else an error wrapping
// spi.ErrInvalid that names field and says why.
func CheckText(field, s string) error {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s holds a NUL character, which cannot be stored: %w", field, spi.ErrInvalid)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8, which cannot be stored: %w", field, spi.ErrInvalid)
	}
	return nil
}

// StorableText returns s with each NUL and each invalid UTF-8 sequence replaced by U+FFFD:
// for text a caller only reports (an error message from a remote party), never for an id.
func StorableText(s string) string {
	if CheckText("", s) == nil {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// storable reports whether every one of ss can be stored.
func storable(ss ...string) bool {
	for _, s := range ss {
		if CheckText("", s) != nil {
			return false
		}
	}
	return true
}

// checkTexts checks named strings: name, value, name, value, ….
func checkTexts(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := CheckText(kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func checkNotes(what string, notes map[string]string) error {
	for k, v := range notes {
		if err := CheckText(what+" note key", k); err != nil {
			return err
		}
		if err := CheckText(what+" note value", v); err != nil {
			return err
		}
	}
	return nil
}

// Storable reports whether a session could be stored under k: a key that is not names
// nothing.
func (k Key) Storable() bool { return storable(k.RealmID, k.ID) }

// Storable reports whether a client session could be stored under k.
func (k ClientKey) Storable() bool { return k.Session.Storable() && storable(k.ClientID) }

// CheckText checks every string of the session, its notes and its client sessions.
func (s *UserSession) CheckText() error {
	err := checkTexts("realm id", s.RealmID, "session id", s.ID, "user id", s.UserID,
		"login username", s.LoginUsername, "IP address", s.IPAddress, "user agent", s.UserAgent,
		"auth method", s.AuthMethod, "broker session id", s.BrokerSessionID, "broker user id", s.BrokerUserID,
		"state", string(s.State))
	if err != nil {
		return err
	}
	if err := checkNotes("session", s.Notes); err != nil {
		return err
	}
	for id, c := range s.Clients {
		if err := CheckText("client id", id); err != nil {
			return err
		}
		if c != nil {
			if err := c.CheckText(); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckText checks every string of the client session and its notes.
func (c *ClientSession) CheckText() error {
	err := checkTexts("realm id", c.RealmID, "session id", c.UserSessionID, "client id", c.ClientID,
		"auth method", c.AuthMethod, "redirect URI", c.RedirectURI, "action", c.Action, "scope", c.Scope,
		"current refresh token", c.CurrentRefreshToken, "previous refresh token", c.PreviousRefreshToken)
	if err != nil {
		return err
	}
	return checkNotes("client session", c.Notes)
}

// CheckText checks the key and client id a touch names.
func (t Touch) CheckText() error {
	return checkTexts("realm id", t.Session.RealmID, "session id", t.Session.ID, "client id", t.ClientID)
}

// CheckText checks the strings a filter matches on.
func (f Filter) CheckText() error {
	return checkTexts("realm id", f.RealmID, "user id", f.UserID, "client id", f.ClientID)
}

// CheckText checks the cursor of a page.
func (p Page) CheckText() error { return CheckText("page cursor", p.After) }

// CheckText checks a record's kind and key (its value is bytes, stored as they are).
func (r *Record) CheckText() error { return checkTexts("record kind", r.Kind, "record key", r.Key) }

// CheckText checks every string of a delivery (its payload is bytes, stored as it is).
func (d *Delivery) CheckText() error {
	return checkTexts("delivery id", d.ID, "realm id", d.RealmID, "client id", d.ClientID, "kind", d.Kind,
		"target", d.Target, "state", string(d.State), "last error", d.LastError)
}

// CheckText checks a delivery filter.
func (f DeliveryFilter) CheckText() error {
	return checkTexts("realm id", f.RealmID, "state", string(f.State), "page cursor", f.Page.After)
}
