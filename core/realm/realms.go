package realm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sessiond/sessiond/spi"
)

// Realms is the live set of realms, by name. Readers never block: they read an immutable
// snapshot through an atomic pointer. Writers (start-up, the admin API) validate a whole new
// snapshot and swap it in, one writer at a time, so a reader sees either the old settings or
// the new ones, never a mix.
type Realms struct {
	mu   sync.Mutex // serialises writers only
	snap atomic.Pointer[Snapshot]
}

// Snapshot is one immutable version of the set. Take one with Realms.Snapshot when several
// lookups must agree with each other.
type Snapshot struct {
	byName  map[string]*Realm
	clients map[string]map[string]*Client // realm name → clientId → client
	byID    map[string]map[string]*Client // realm name → internal id → client
}

// NewRealms validates the realms and returns a set holding them, with the warnings of all.
func NewRealms(realms ...*Realm) (*Realms, []Warning, error) {
	rs := &Realms{}
	warnings, err := rs.Replace(realms...)
	if err != nil {
		return nil, warnings, err
	}
	return rs, warnings, nil
}

// Snapshot returns the current version.
func (rs *Realms) Snapshot() *Snapshot {
	if s := rs.snap.Load(); s != nil {
		return s
	}
	return &Snapshot{}
}

// Realm returns the realm with that name.
func (rs *Realms) Realm(name string) (*Realm, bool) { return rs.Snapshot().Realm(name) }

// Client returns a realm and its client with that clientId, from one snapshot.
func (rs *Realms) Client(realmName, clientID string) (*Realm, *Client, bool) {
	return rs.Snapshot().Client(realmName, clientID)
}

// List returns the realms sorted by name.
func (rs *Realms) List() []*Realm { return rs.Snapshot().List() }

// Replace validates the realms and, if none has a hard problem and no two share a name,
// makes them the whole set. On error the set is unchanged.
func (rs *Realms) Replace(realms ...*Realm) ([]Warning, error) {
	var warnings []Warning
	var errs []error
	for _, r := range realms {
		w, err := r.Validate()
		warnings = append(warnings, w...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.describe(), err))
		}
	}
	if len(errs) > 0 {
		return warnings, errors.Join(errs...)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	next, err := index(realms)
	if err != nil {
		return warnings, err
	}
	rs.snap.Store(next)
	return warnings, nil
}

// Put validates one realm and adds it, or replaces the realm of the same name. It returns
// that realm's warnings. The realm must not be changed afterwards (Clone first).
func (rs *Realms) Put(r *Realm) ([]Warning, error) {
	warnings, err := r.Validate()
	if err != nil {
		return warnings, fmt.Errorf("%s: %w", r.describe(), err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	cur := rs.Snapshot()
	realms := make([]*Realm, 0, len(cur.byName)+1)
	for name, old := range cur.byName {
		if name != r.Name {
			realms = append(realms, old)
		}
	}
	next, err := index(append(realms, r))
	if err != nil {
		return warnings, err
	}
	rs.snap.Store(next)
	return warnings, nil
}

// index builds a snapshot of realms that passed Validate; it fails on a duplicate name.
func index(realms []*Realm) (*Snapshot, error) {
	s := &Snapshot{
		byName:  make(map[string]*Realm, len(realms)),
		clients: make(map[string]map[string]*Client, len(realms)),
		byID:    make(map[string]map[string]*Client, len(realms)),
	}
	var errs []error
	for _, r := range realms {
		if prev, dup := s.byName[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: %w: duplicate realm name, also in %s", r.describe(), spi.ErrInvalid, prev.describe()))
			continue
		}
		s.byName[r.Name] = r
		byClientID := make(map[string]*Client, len(r.Clients))
		byID := make(map[string]*Client, len(r.Clients))
		for _, c := range r.Clients {
			byClientID[c.ClientID] = c
			id := c.ID
			if id == "" {
				id = c.ClientID
			}
			byID[id] = c
		}
		s.clients[r.Name] = byClientID
		s.byID[r.Name] = byID
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Realm returns the realm with that name.
func (s *Snapshot) Realm(name string) (*Realm, bool) {
	r, ok := s.byName[name]
	return r, ok
}

// Client returns a realm and its client with that clientId.
func (s *Snapshot) Client(realmName, clientID string) (*Realm, *Client, bool) {
	return s.lookup(s.clients, realmName, clientID)
}

// ClientByID returns a realm and its client with that internal id (Keycloak's client UUID,
// as the admin API addresses clients).
func (s *Snapshot) ClientByID(realmName, id string) (*Realm, *Client, bool) {
	return s.lookup(s.byID, realmName, id)
}

func (s *Snapshot) lookup(index map[string]map[string]*Client, realmName, key string) (*Realm, *Client, bool) {
	r, ok := s.byName[realmName]
	if !ok {
		return nil, nil, false
	}
	c, ok := index[realmName][key]
	return r, c, ok
}

// List returns the realms sorted by name.
func (s *Snapshot) List() []*Realm {
	out := make([]*Realm, 0, len(s.byName))
	for _, r := range s.byName {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Realm) int { return strings.Compare(a.Name, b.Name) })
	return out
}
