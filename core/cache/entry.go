package cache

import (
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// A cached user session is kept as a record of bytes (table.go keeps the records): a cache
// holding a million offline sessions must stay well under a kibibyte a session resident
// (Keycloak's sizing guide budgets about 5 KB), and a record costs neither an allocation
// nor a pointer of its own, so the collector neither scans the cache nor counts it in its
// heap goal. Against a *usersessions.UserSession a record saves by
//   - times as 8-byte Unix nanoseconds instead of 24-byte time.Time values, at fixed
//     places, so that a touch rewrites them where they are;
//   - strings as a length and their bytes, without a 16-byte header and an allocation
//     each; the values many sessions share (realm, state, auth method, user agent, client
//     id, redirect URI, scope, action, note keys, short note values) as a number in the
//     cache's string table (strtab), their bytes held once;
//   - notes and client sessions as counted lists instead of maps (a Go map costs ~200
//     bytes even with one entry), and the fields a client session repeats from its user
//     session (realm, session id, offline) not stored twice.
//
// A record is read and changed only under Cache.mu and never handed out: a hit builds a
// fresh *usersessions.UserSession (materialize), so callers cannot change the cache.
//
// The layout of a user session's record:
//
//	flags    1 byte: recOffline, recRememberMe, recNotes (its notes map is not nil)
//	started, lastRefresh, expiresAt, version: 8 bytes each, little-endian
//	realm, id, userID, loginUsername, ipAddress, userAgent, authMethod, brokerSessionID,
//	         brokerUserID, state: a string each (below)
//	notes    if recNotes: a uvarint count, then key and value strings
//	clients  a uvarint count, then each client session:
//	  flags  1 byte: recNotes
//	  started, lastRefresh, expiresAt, rotatedAt, version: 8 bytes each
//	  useCount: a varint
//	  clientID, authMethod, redirectURI, action, scope, current, previous: strings
//	  notes  as above
//
// A string is a uvarint t: t odd is the string table's value t>>1; t even is t>>1 bytes
// that follow.
const (
	recOffline    = 1 << 0
	recRememberMe = 1 << 1
	recNotes      = 1 << 2

	recLastRefresh = 1 + 8  // offset of lastRefresh in a session's record, and in a client's
	recExpiresAt   = 1 + 16 // offset of expiresAt, likewise
	recStrings     = 1 + 32 // offset of a session's first string
	clientFixed    = 1 + 40 // bytes of a client session's flags and times
)

// The fields an encoder remembers its last value of.
const (
	fieldRealm = iota
	fieldUserAgent
	fieldAuthMethod
	fieldState
	fieldClientID
	fieldRedirectURI
	fieldAction
	fieldScope
	fieldNoteKey
	fieldNoteValue
	fields
)

// Interned note values are the short ones ("true"): longer values are usually specific to
// one session (token lineages), and interning them would fill the string table.
const maxInternedNoteValue = 16

// strtab is a cache's table of shared string values. It only grows, so it is bounded
// (maxStrs values, maxStrBytes bytes): a value past the bound is stored in the record
// itself, as a rare value is anyway. A user agent is the client's to choose, so the bound
// is what keeps a stream of made-up ones from growing the table without end.
//
// Values are read without its lock: a record naming value r was encoded after r was
// added, and reached the cache under Cache.mu, which its reader holds.
type strtab struct {
	mu    sync.RWMutex
	ids   map[string]uint32
	pages [maxStrs / strPage]*[strPage]string
	n     uint32
	bytes int
}

const (
	strPage     = 1 << 10
	maxStrs     = 1 << 16
	maxStrBytes = 4 << 20
)

func newStrtab() *strtab { return &strtab{ids: map[string]uint32{}} }

// ref returns s's number, adding it if there is room; ok is false when there is none.
func (t *strtab) ref(s string) (r uint32, ok bool) {
	t.mu.RLock()
	r, ok = t.ids[s]
	t.mu.RUnlock()
	if ok {
		return r, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok = t.ids[s]; ok {
		return r, true
	}
	if t.n >= maxStrs || t.bytes+len(s) > maxStrBytes {
		return 0, false
	}
	r = t.n
	p := t.pages[r/strPage]
	if p == nil {
		p = new([strPage]string)
		t.pages[r/strPage] = p
	}
	s = strings.Clone(s) // s may be a page's bytes that its store reuses
	p[r%strPage] = s
	t.ids[s] = r
	t.n++
	t.bytes += len(s)
	return r, true
}

func (t *strtab) str(r uint32) string { return t.pages[r/strPage][r%strPage] }

// encoder writes records, remembering the last value of each shared field: the sessions
// of one batch mostly repeat their neighbours' realm, client, scope and state, and a
// comparison with the last value (immediate when a store hands out one copy of a value,
// as the SQL stores do) is cheaper than the table's lookup. Use one per goroutine; it
// needs no lock of the cache.
type encoder struct {
	tab  *strtab
	last [fields]struct {
		in  string
		tag uint64
	}
	buf []byte
}

// session appends s's record to the encoder's buffer and returns it. The client sessions'
// versions are clientVersion where that is not 0 (Create stores them as version 1).
func (en *encoder) session(s *usersessions.UserSession, clientVersion int64) []byte {
	start := len(en.buf)
	var flags byte
	if s.Offline {
		flags |= recOffline
	}
	if s.RememberMe {
		flags |= recRememberMe
	}
	if s.Notes != nil {
		flags |= recNotes
	}
	en.buf = append(en.buf, flags)
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(s.Started)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(s.LastRefresh)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(s.ExpiresAt)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(s.Version))
	en.shared(fieldRealm, s.RealmID)
	en.inline(s.ID)
	en.inline(s.UserID)
	en.inline(s.LoginUsername)
	en.inline(s.IPAddress)
	en.shared(fieldUserAgent, s.UserAgent)
	en.shared(fieldAuthMethod, s.AuthMethod)
	en.inline(s.BrokerSessionID)
	en.inline(s.BrokerUserID)
	en.shared(fieldState, string(s.State))
	en.notes(s.Notes)
	n := 0
	for _, cs := range s.Clients {
		if cs != nil {
			n++
		}
	}
	en.buf = binary.AppendUvarint(en.buf, uint64(n))
	for id, cs := range s.Clients {
		if cs != nil {
			en.client(id, cs, clientVersion)
		}
	}
	return en.buf[start:]
}

func (en *encoder) client(id string, cs *usersessions.ClientSession, version int64) {
	var flags byte
	if cs.Notes != nil {
		flags |= recNotes
	}
	if version == 0 {
		version = cs.Version
	}
	en.buf = append(en.buf, flags)
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(cs.Started)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(cs.LastRefresh)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(cs.ExpiresAt)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(nanos(cs.RotatedAt)))
	en.buf = binary.LittleEndian.AppendUint64(en.buf, uint64(version))
	en.buf = binary.AppendVarint(en.buf, int64(cs.CurrentRefreshTokenUseCount))
	en.shared(fieldClientID, id)
	en.shared(fieldAuthMethod, cs.AuthMethod)
	en.shared(fieldRedirectURI, cs.RedirectURI)
	en.shared(fieldAction, cs.Action)
	en.shared(fieldScope, cs.Scope)
	en.inline(cs.CurrentRefreshToken)
	en.inline(cs.PreviousRefreshToken)
	en.notes(cs.Notes)
}

func (en *encoder) notes(m map[string]string) {
	if m == nil {
		return
	}
	en.buf = binary.AppendUvarint(en.buf, uint64(len(m)))
	for k, v := range m {
		en.shared(fieldNoteKey, k)
		if len(v) <= maxInternedNoteValue {
			en.shared(fieldNoteValue, v)
		} else {
			en.inline(v)
		}
	}
}

// shared writes s as the string table's value where it can.
func (en *encoder) shared(field int, s string) {
	if s == "" {
		en.buf = append(en.buf, 0)
		return
	}
	l := &en.last[field]
	if l.tag != 0 && s == l.in {
		en.buf = binary.AppendUvarint(en.buf, l.tag)
		return
	}
	r, ok := en.tab.ref(s)
	if !ok {
		en.inline(s)
		return
	}
	l.in, l.tag = s, uint64(r)<<1|1
	en.buf = binary.AppendUvarint(en.buf, l.tag)
}

func (en *encoder) inline(s string) {
	en.buf = binary.AppendUvarint(en.buf, uint64(len(s))<<1)
	en.buf = append(en.buf, s...)
}

// decoder reads a record from its start.
type decoder struct {
	b   []byte
	p   int
	tab *strtab
	// own, when set, is a copy of b: the strings stored in the record are cut from it, so
	// that a materialized session costs one allocation for all of them.
	own string
}

func (d *decoder) byte() byte {
	v := d.b[d.p]
	d.p++
	return v
}

func (d *decoder) i64() int64 {
	v := int64(binary.LittleEndian.Uint64(d.b[d.p:]))
	d.p += 8
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[d.p:])
	d.p += n
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b[d.p:])
	d.p += n
	return v
}

func (d *decoder) str() string {
	t := d.uvarint()
	if t&1 == 1 {
		return d.tab.str(uint32(t >> 1))
	}
	n := int(t >> 1)
	var s string
	if d.own != "" {
		s = d.own[d.p : d.p+n]
	} else {
		s = string(d.b[d.p : d.p+n])
	}
	d.p += n
	return s
}

// is reports whether the next string is s, and moves past it.
func (d *decoder) is(s string) bool {
	t := d.uvarint()
	if t&1 == 1 {
		return d.tab.str(uint32(t>>1)) == s
	}
	n := int(t >> 1)
	eq := string(d.b[d.p:d.p+n]) == s // compiled without a copy
	d.p += n
	return eq
}

func (d *decoder) skipStr() {
	if t := d.uvarint(); t&1 == 0 {
		d.p += int(t >> 1)
	}
}

func (d *decoder) skipStrs(n int) {
	for range n {
		d.skipStr()
	}
}

func (d *decoder) skipNotes(flags byte) {
	if flags&recNotes != 0 {
		d.skipStrs(2 * int(d.uvarint()))
	}
}

func (d *decoder) notes(flags byte) map[string]string {
	if flags&recNotes == 0 {
		return nil
	}
	n := int(d.uvarint())
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

// The number of strings of a session before its notes, and of a client session.
const (
	sessionStrings = 10
	clientStrings  = 7
)

// toClients moves d, at the start of a session's record, to its count of client sessions.
func (d *decoder) toClients() {
	flags := d.byte()
	d.p = recStrings
	d.skipStrs(sessionStrings)
	d.skipNotes(flags)
}

// skipClient moves d, at the start of a client session, past it.
func (d *decoder) skipClient() {
	flags := d.byte()
	d.p += clientFixed - 1
	d.varint()
	d.skipStrs(clientStrings)
	d.skipNotes(flags)
}

// clientAt returns the offset of the client session of that client in record b, or -1.
func clientAt(b []byte, tab *strtab, id string) int {
	d := decoder{b: b, tab: tab}
	d.toClients()
	for range d.uvarint() {
		at := d.p
		d.p += clientFixed
		d.varint()
		if d.is(id) {
			return at
		}
		d.p = at
		d.skipClient()
	}
	return -1
}

// withClient appends to into record b with the client session of client id replaced by
// cs, added if b has none, or removed if cs is nil; the rest of b is copied as it is.
func withClient(into, b []byte, en *encoder, id string, cs *usersessions.ClientSession) []byte {
	d := decoder{b: b, tab: en.tab}
	d.toClients()
	countAt := d.p
	n := d.uvarint()
	first := d.p
	at, end := -1, -1
	for range n {
		start := d.p
		d.skipClient()
		c := decoder{b: b, p: start + clientFixed, tab: en.tab}
		c.varint()
		if c.is(id) {
			at, end = start, d.p
			break
		}
	}
	switch {
	case at < 0 && cs != nil:
		n++
	case at >= 0 && cs == nil:
		n--
	}
	into = append(into, b[:countAt]...)
	into = binary.AppendUvarint(into, n)
	if at < 0 {
		at, end = len(b), len(b)
	}
	into = append(into, b[first:at]...)
	if cs != nil {
		en.buf = into
		en.client(id, cs, 0)
		into = en.buf
	}
	return append(into, b[end:]...)
}

// recordIs reports whether record b is the session with key k.
func recordIs(b []byte, tab *strtab, k usersessions.Key) bool {
	if (b[0]&recOffline != 0) != k.Offline {
		return false
	}
	d := decoder{b: b, p: recStrings, tab: tab}
	return d.is(k.RealmID) && d.is(k.ID)
}

// materialize returns record b as a session the caller owns.
func materialize(b []byte, tab *strtab) *usersessions.UserSession {
	d := decoder{b: b, tab: tab, own: string(b)}
	flags := d.byte()
	s := &usersessions.UserSession{
		Offline:    flags&recOffline != 0,
		RememberMe: flags&recRememberMe != 0,
	}
	s.Started = fromNanos(d.i64())
	s.LastRefresh = fromNanos(d.i64())
	s.ExpiresAt = fromNanos(d.i64())
	s.Version = d.i64()
	s.RealmID = d.str()
	s.ID = d.str()
	s.UserID = d.str()
	s.LoginUsername = d.str()
	s.IPAddress = d.str()
	s.UserAgent = d.str()
	s.AuthMethod = d.str()
	s.BrokerSessionID = d.str()
	s.BrokerUserID = d.str()
	s.State = usersessions.State(d.str())
	s.Notes = d.notes(flags)
	n := int(d.uvarint())
	s.Clients = make(map[string]*usersessions.ClientSession, n)
	for range n {
		cflags := d.byte()
		cs := &usersessions.ClientSession{UserSessionID: s.ID, RealmID: s.RealmID, Offline: s.Offline}
		cs.Started = fromNanos(d.i64())
		cs.LastRefresh = fromNanos(d.i64())
		cs.ExpiresAt = fromNanos(d.i64())
		cs.RotatedAt = fromNanos(d.i64())
		cs.Version = d.i64()
		cs.CurrentRefreshTokenUseCount = int(d.varint())
		cs.ClientID = d.str()
		cs.AuthMethod = d.str()
		cs.RedirectURI = d.str()
		cs.Action = d.str()
		cs.Scope = d.str()
		cs.CurrentRefreshToken = d.str()
		cs.PreviousRefreshToken = d.str()
		cs.Notes = d.notes(cflags)
		s.Clients[cs.ClientID] = cs
	}
	return s
}

// matches reports whether f selects record b's session, as DeleteMatching does (a ClientID
// selects the sessions that have that client).
func matches(f usersessions.Filter, b []byte, tab *strtab) bool {
	if !f.Offline.Matches(b[0]&recOffline != 0) {
		return false
	}
	d := decoder{b: b, p: recStrings, tab: tab}
	if f.RealmID != "" && !d.is(f.RealmID) {
		return false
	}
	if f.UserID != "" {
		d.p = recStrings
		d.skipStrs(2)
		if !d.is(f.UserID) {
			return false
		}
	}
	return f.ClientID == "" || clientAt(b, tab, f.ClientID) >= 0
}

// Times are kept as Unix nanoseconds, exact from 1678 to 2262; the zero time has its own
// value, and times outside that range are clamped to it (a session ending after 2262 ends
// "never" either way). They come back in UTC.
const zeroTime = math.MinInt64

var (
	minNanos = time.Unix(0, math.MinInt64+1)
	maxNanos = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroTime
	case t.Before(minNanos):
		return math.MinInt64 + 1
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func getNanos(b []byte) int64    { return int64(binary.LittleEndian.Uint64(b)) }
func putNanos(b []byte, n int64) { binary.LittleEndian.PutUint64(b, uint64(n)) }
