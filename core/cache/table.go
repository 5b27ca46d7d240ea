package cache

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// table holds a cache's entries with no pointer per entry: the records (entry.go) in
// chunks of memory mapped outside the Go heap, found through an open-addressing index of
// slot numbers, with the LRU ring and the lifespans in a slice of slots. The collector
// sees a few slices whatever the number of sessions: it neither marks the cache nor
// grows its heap goal by it, so a process holding a million sessions stays about the size
// of its records, not twice the size of a heap of small objects.
//
// Records are appended to the current chunk; a record removed or rewritten leaves dead
// bytes behind, and a chunk whose records are all dead is returned to the OS. When more
// than a quarter of the bytes held are dead (and at least minCompact), the chunk with the
// most dead bytes is evacuated: its live records are copied to the current chunk and it
// is returned. Memory mapped outside the heap is not under a memory limit (GOMEMLIMIT);
// the cache's bound (MaxEntries) is what bounds it.
//
// A table is used under Cache.mu only.
type table struct {
	strs *strtab
	seed maphash.Seed

	slots []slot   // slots[0] is the LRU ring's sentinel: slots[0].next is the most recently used
	free  []uint32 // slots not in use
	n     int      // slots in use
	index []uint32 // open addressing, linear probing: slot numbers, 0 for none; a power of two long

	chunks     []chunk
	spare      []int // numbers of released chunks, for reuse
	cur        int   // the chunk records are appended to, -1 for none
	live, dead int64 // bytes of records in use, and dead bytes in chunks still held
}

// A slot is one entry's place: where its record is, when it leaves the cache, its
// neighbours in the LRU ring and its key's hash.
type slot struct {
	loc        uint64 // chunk<<32 | offset of the record's header; noLoc when not in use
	until      int64  // Unix ns after which the entry is forgotten (its cache lifespan)
	prev, next uint32
	hash       uint32
}

const noLoc = ^uint64(0)

type chunk struct {
	mem        []byte // nil once released
	mapped     bool   // mem is mapped outside the Go heap (mapChunk)
	used, dead int
}

const (
	chunkSize = 1 << 20
	// bigRecord is the largest record stored in a shared chunk; a larger one (a session
	// with very long notes) gets a chunk of its own.
	bigRecord = chunkSize / 4
	// A record's header: its length (header included) and its slot, each 4 bytes.
	recHeader  = 8
	minCompact = 4 * chunkSize
	pageSize   = 4096
)

func newTable(strs *strtab) *table {
	t := &table{strs: strs, seed: maphash.MakeSeed(), cur: -1}
	t.slots = []slot{{loc: noLoc}}
	return t
}

// len is the number of entries.
func (t *table) len() int { return t.n }

// bytes is what the records take outside the Go heap.
func (t *table) bytes() int64 {
	var n int64
	for _, c := range t.chunks {
		n += int64(len(c.mem))
	}
	return n
}

// hash is k's hash. It needs no lock: the seed never changes.
func (t *table) hash(k usersessions.Key) uint32 {
	h := maphash.String(t.seed, k.ID) ^ maphash.String(t.seed, k.RealmID)*31
	if k.Offline {
		h = ^h
	}
	return uint32(h ^ h>>32)
}

// body returns the record of slot s, without its header.
func (t *table) body(s uint32) []byte {
	loc := t.slots[s].loc
	mem := t.chunks[loc>>32].mem
	off := uint32(loc)
	n := binary.LittleEndian.Uint32(mem[off:])
	return mem[off+recHeader : off+n]
}

// lookup returns the slot of key k (whose hash is h), or 0.
func (t *table) lookup(k usersessions.Key, h uint32) uint32 {
	if t.n == 0 {
		return 0
	}
	mask := len(t.index) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := t.index[i]
		if s == 0 {
			return 0
		}
		if t.slots[s].hash == h && recordIs(t.body(s), t.strs, k) {
			return s
		}
	}
}

// add stores record b of a session whose key hashes to h, as the most recently used
// entry, and returns its slot. The key must not be in the table.
func (t *table) add(h uint32, b []byte, until int64) uint32 {
	if (t.n+1)*4 > len(t.index)*3 {
		t.resize(max(64, 2*len(t.index)))
	}
	var s uint32
	if n := len(t.free); n > 0 {
		s = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.slots = append(t.slots, slot{})
		s = uint32(len(t.slots) - 1)
	}
	t.slots[s] = slot{until: until, hash: h}
	t.slots[s].loc = t.store(b, s)
	t.link(s)
	mask := len(t.index) - 1
	i := int(h) & mask
	for t.index[i] != 0 {
		i = (i + 1) & mask
	}
	t.index[i] = s
	t.n++
	return s
}

// remove forgets slot s.
func (t *table) remove(s uint32) {
	t.unlink(s)
	t.unindex(s)
	loc := t.slots[s].loc
	t.slots[s] = slot{loc: noLoc}
	t.free = append(t.free, s)
	t.n--
	t.release(loc)
}

// replace makes b the record of slot s.
func (t *table) replace(s uint32, b []byte) {
	old := t.slots[s].loc
	t.slots[s].loc = t.store(b, s)
	t.release(old)
}

// oldest is the least recently used entry's slot, 0 when there is none.
func (t *table) oldest() uint32 { return t.slots[0].prev }

// newest is the most recently used entry's slot, 0 when there is none.
func (t *table) newest() uint32 { return t.slots[0].next }

func (t *table) link(s uint32) {
	first := t.slots[0].next
	t.slots[s].prev, t.slots[s].next = 0, first
	t.slots[first].prev = s
	t.slots[0].next = s
}

func (t *table) unlink(s uint32) {
	p, n := t.slots[s].prev, t.slots[s].next
	t.slots[p].next, t.slots[n].prev = n, p
}

func (t *table) toFront(s uint32) {
	if t.slots[0].next != s {
		t.unlink(s)
		t.link(s)
	}
}

// unindex takes s out of the index, shifting back the entries after it that probed past
// it (linear probing needs no tombstones then).
func (t *table) unindex(s uint32) {
	mask := len(t.index) - 1
	i := int(t.slots[s].hash) & mask
	for t.index[i] != s {
		i = (i + 1) & mask
	}
	for j := i; ; {
		j = (j + 1) & mask
		o := t.index[j]
		if o == 0 {
			break
		}
		home := int(t.slots[o].hash) & mask
		// o may fill the hole at i unless its home lies cyclically in (i, j].
		if i <= j && (home <= i || home > j) || i > j && home <= i && home > j {
			t.index[i] = o
			i = j
		}
	}
	t.index[i] = 0
}

// resize rebuilds the index with n places (a power of two).
func (t *table) resize(n int) {
	t.index = make([]uint32, n)
	mask := n - 1
	for s := t.slots[0].next; s != 0; s = t.slots[s].next {
		i := int(t.slots[s].hash) & mask
		for t.index[i] != 0 {
			i = (i + 1) & mask
		}
		t.index[i] = s
	}
}

// reserve makes room for n entries in all: the index at its final size, and the slots.
func (t *table) reserve(n int) {
	size := 64
	for n*4 > size*3 {
		size *= 2
	}
	if size > len(t.index) {
		t.resize(size)
	}
	if n+1 > cap(t.slots) {
		slots := make([]slot, len(t.slots), n+1)
		copy(slots, t.slots)
		t.slots = slots
	}
}

// clear forgets every entry and returns the chunks.
func (t *table) clear() {
	for i := range t.chunks {
		t.unmap(i)
	}
	// Field by field: seed is read without the lock (hash), and never changes.
	t.slots, t.free, t.n, t.index = []slot{{loc: noLoc}}, nil, 0, nil
	t.chunks, t.spare, t.cur, t.live, t.dead = nil, nil, -1, 0, 0
}

// store copies b, with its header naming slot s, into a chunk and returns where.
func (t *table) store(b []byte, s uint32) uint64 {
	n := recHeader + len(b)
	var ci int
	if n > bigRecord {
		ci = t.newChunk((n + pageSize - 1) / pageSize * pageSize)
	} else {
		if t.cur >= 0 && t.chunks[t.cur].used+n > len(t.chunks[t.cur].mem) {
			// The rest of the current chunk is dead; the chunk goes once its records do.
			c := &t.chunks[t.cur]
			tail := len(c.mem) - c.used
			c.used, c.dead = len(c.mem), c.dead+tail
			t.dead += int64(tail)
			full := t.cur
			t.cur = -1
			if c.dead == c.used {
				t.unmap(full)
			}
		}
		if t.cur < 0 {
			t.cur = t.newChunk(chunkSize)
		}
		ci = t.cur
	}
	c := &t.chunks[ci]
	off := c.used
	binary.LittleEndian.PutUint32(c.mem[off:], uint32(n))
	binary.LittleEndian.PutUint32(c.mem[off+4:], s)
	copy(c.mem[off+recHeader:], b)
	c.used += n
	t.live += int64(n)
	return uint64(ci)<<32 | uint64(off)
}

func (t *table) newChunk(size int) int {
	mem, mapped := mapChunk(size)
	c := chunk{mem: mem, mapped: mapped}
	if n := len(t.spare); n > 0 {
		i := t.spare[n-1]
		t.spare = t.spare[:n-1]
		t.chunks[i] = c
		return i
	}
	t.chunks = append(t.chunks, c)
	return len(t.chunks) - 1
}

// release marks the record at loc dead, returns its chunk if nothing in it lives any more,
// and compacts when too much is dead.
func (t *table) release(loc uint64) {
	ci := int(loc >> 32)
	c := &t.chunks[ci]
	n := int(binary.LittleEndian.Uint32(c.mem[uint32(loc):]))
	c.dead += n
	t.live -= int64(n)
	t.dead += int64(n)
	if ci != t.cur && c.dead == c.used {
		t.unmap(ci)
	}
	for t.dead >= minCompact && t.dead*4 > t.live+t.dead {
		if !t.evacuateWorst() {
			return
		}
	}
}

// unmap returns chunk ci, all of whose records are dead.
func (t *table) unmap(ci int) {
	c := &t.chunks[ci]
	t.dead -= int64(c.dead)
	if c.mapped {
		if err := unmapChunk(c.mem); err != nil {
			panic("session cache: returning a chunk of memory: " + err.Error())
		}
	}
	*c = chunk{}
	t.spare = append(t.spare, ci)
	if ci == t.cur {
		t.cur = -1
	}
}

// evacuateWorst moves the live records of the chunk with the most dead bytes (not the
// current one) to the current chunk and returns the chunk; false when there is none.
func (t *table) evacuateWorst() bool {
	worst := -1
	for i := range t.chunks {
		if i != t.cur && t.chunks[i].mem != nil && t.chunks[i].dead > 0 && (worst < 0 || t.chunks[i].dead > t.chunks[worst].dead) {
			worst = i
		}
	}
	if worst < 0 {
		return false
	}
	mem, used := t.chunks[worst].mem, t.chunks[worst].used
	for off := 0; off+recHeader <= used; {
		n := int(binary.LittleEndian.Uint32(mem[off:]))
		if n == 0 {
			break // the dead tail of a full chunk
		}
		s := binary.LittleEndian.Uint32(mem[off+4:])
		if loc := uint64(worst)<<32 | uint64(off); int(s) < len(t.slots) && t.slots[s].loc == loc {
			t.slots[s].loc = t.store(mem[off+recHeader:off+n], s)
			t.live -= int64(n) // the old copy
			t.chunks[worst].dead += n
			t.dead += int64(n)
		}
		off += n
	}
	t.unmap(worst)
	return true
}
