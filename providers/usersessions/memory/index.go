package memory

import (
	"cmp"
	"hash/fnv"
	"slices"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// realmIndex holds one realm's sessions in key order, and who has which.
type realmIndex struct {
	order    []usersessions.Key // sorted by compareKeys
	byUser   map[string]keySet
	byClient map[string]keySet
}

type keySet map[usersessions.Key]struct{}

// compareKeys orders by id, online before offline; the realm is the same within an index.
func compareKeys(a, b usersessions.Key) int {
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	switch {
	case a.Offline == b.Offline:
		return 0
	case !a.Offline:
		return -1
	default:
		return 1
	}
}

// cursor is a position in key order; the zero cursor is before the first key.
type cursor struct {
	key usersessions.Key
	set bool
}

// start returns the index of the first key after c in sorted keys.
func (c cursor) start(keys []usersessions.Key) int {
	if !c.set {
		return 0
	}
	i, found := slices.BinarySearchFunc(keys, c.key, compareKeys)
	if found {
		i++
	}
	return i
}

func (p *Provider) index(k usersessions.Key) *realmIndex {
	ri, ok := p.realms[k.RealmID]
	if !ok {
		ri = &realmIndex{byUser: make(map[string]keySet), byClient: make(map[string]keySet)}
		p.realms[k.RealmID] = ri
	}
	return ri
}

func (ri *realmIndex) add(st *stored) {
	k := st.s.Key()
	if i, found := slices.BinarySearchFunc(ri.order, k, compareKeys); !found {
		ri.order = slices.Insert(ri.order, i, k)
	}
	addTo(ri.byUser, st.s.UserID, k)
	for cid := range st.clients {
		ri.addClient(cid, k)
	}
}

func (ri *realmIndex) remove(st *stored) {
	k := st.s.Key()
	if i, found := slices.BinarySearchFunc(ri.order, k, compareKeys); found {
		ri.order = slices.Delete(ri.order, i, i+1)
	}
	removeFrom(ri.byUser, st.s.UserID, k)
	for cid := range st.clients {
		ri.removeClient(cid, k)
	}
}

func (ri *realmIndex) addClient(clientID string, k usersessions.Key) { addTo(ri.byClient, clientID, k) }

func (ri *realmIndex) removeClient(clientID string, k usersessions.Key) {
	removeFrom(ri.byClient, clientID, k)
}

func (ri *realmIndex) empty() bool { return len(ri.order) == 0 }

func addTo(m map[string]keySet, name string, k usersessions.Key) {
	set, ok := m[name]
	if !ok {
		set = make(keySet)
		m[name] = set
	}
	set[k] = struct{}{}
}

func removeFrom(m map[string]keySet, name string, k usersessions.Key) {
	if set, ok := m[name]; ok {
		delete(set, k)
		if len(set) == 0 {
			delete(m, name)
		}
	}
}

// selectKeys returns, in key order, up to limit (all when negative) keys after c that f
// and part select. A user or client filter starts from that (usually small) index entry
// instead of the realm's whole order.
func (p *Provider) selectKeys(f usersessions.Filter, c cursor, limit int, part usersessions.Partition) []usersessions.Key {
	ri, ok := p.realms[f.RealmID]
	if !ok || limit == 0 {
		return nil
	}
	candidates := ri.order
	if narrow, ok := ri.narrowest(f); ok {
		candidates = slices.SortedFunc(func(yield func(usersessions.Key) bool) {
			for k := range narrow {
				if !yield(k) {
					return
				}
			}
		}, compareKeys)
	}
	var out []usersessions.Key
	for _, k := range candidates[c.start(candidates):] {
		if !inPartition(k, part) || !matches(p.sessions[k], f) {
			continue
		}
		out = append(out, k)
		if len(out) == limit {
			break
		}
	}
	return out
}

// narrowest returns the smaller of the user and client index entries f names; ok is false
// when f names neither.
func (ri *realmIndex) narrowest(f usersessions.Filter) (keySet, bool) {
	var best keySet
	found := false
	for _, sel := range []struct {
		name string
		m    map[string]keySet
	}{{f.UserID, ri.byUser}, {f.ClientID, ri.byClient}} {
		if sel.name == "" {
			continue
		}
		set := sel.m[sel.name]
		if !found || len(set) < len(best) {
			best, found = set, true
		}
	}
	return best, found
}

func matches(st *stored, f usersessions.Filter) bool {
	if !f.Offline.Matches(st.s.Offline) {
		return false
	}
	if f.UserID != "" && st.s.UserID != f.UserID {
		return false
	}
	if !usersessions.Live(st.s.ExpiresAt, f.LiveAt) {
		return false
	}
	if f.ClientID != "" {
		c, ok := st.clients[f.ClientID]
		if !ok || !usersessions.Live(c.ExpiresAt, f.LiveAt) {
			return false
		}
	}
	return f.ActiveSince.IsZero() || !st.s.LastRefresh.Before(f.ActiveSince)
}

// inPartition spreads sessions over partitions by a hash of the id, so the online and
// offline sessions sharing an id land in the same partition.
func inPartition(k usersessions.Key, part usersessions.Partition) bool {
	if part.Count <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(k.ID))
	return int(h.Sum32()%uint32(part.Count)) == part.Index
}
