package wire

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

// The pages of UserSessions.Stream (a preload: a million sessions cross the plugin
// boundary at start-up) skip the generated messages on both sides. The plugin encodes
// each page straight from the sessions (encodeSessions) and the host decodes it straight
// into sessions (sessionDecoder): the generated way built every session a second time on
// each side, as protobuf messages with maps, and that was half of the CPU of a preload
// through a plugin. The bytes on the wire are a pb.Sessions message all the same, so
// either side may be the generated code (a third-party plugin's, a test's); the tests
// check both against it, field by field.

// The field numbers of usersessions.proto that the stream codec reads and writes.
const (
	fSessions = 1 // Sessions.sessions

	fID, fRealmID, fUserID, fLoginUsername, fIPAddress, fUserAgent, fAuthMethod = 1, 2, 3, 4, 5, 6, 7
	fBrokerSessionID, fBrokerUserID, fRememberMe, fOffline, fState              = 8, 9, 10, 11, 12
	fStarted, fLastRefresh, fExpiresAt, fNotes, fVersion, fClients              = 13, 14, 15, 16, 17, 18

	fcUserSessionID, fcRealmID, fcClientID, fcOffline, fcStarted, fcLastRefresh, fcExpiresAt = 1, 2, 3, 4, 5, 6, 7
	fcAuthMethod, fcRedirectURI, fcAction, fcScope, fcNotes, fcCurrent, fcUseCount           = 8, 9, 10, 11, 12, 13, 14
	fcPrevious, fcRotatedAt, fcVersion                                                       = 15, 16, 17

	fKey, fValue = 1, 2 // of a map entry
)

// sessionsMessage is page as a pb.Sessions to send: its bytes, encoded here, are the
// message's unknown fields, which protobuf writes out as they are.
func sessionsMessage(page []*us.UserSession) *pb.Sessions {
	m := &pb.Sessions{}
	m.ProtoReflect().SetUnknown(encodeSessions(page))
	return m
}

// encodeSessions is the wire form of pb.Sessions{Sessions: each(page, sessionToPB)}.
func encodeSessions(page []*us.UserSession) []byte {
	b := make([]byte, 0, 512*len(page))
	var body []byte
	for _, s := range page {
		body = appendSession(body[:0], s)
		b = protowire.AppendTag(b, fSessions, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

// beginMessage starts field num holding a message, whose fields the caller appends; at
// is for endMessage.
func beginMessage(b []byte, num protowire.Number) (_ []byte, at int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0), len(b) // room for a one-byte length, moved right when it needs more
}

// endMessage writes the length of the message begun at at.
func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	if size := protowire.SizeVarint(uint64(n)); size > 1 {
		b = append(b, make([]byte, size-1)...)
		copy(b[at+size:], b[at+1:at+1+n])
	}
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

func appendNotes(b []byte, num protowire.Number, notes map[string]string) []byte {
	for k, v := range notes {
		var at int
		b, at = beginMessage(b, num)
		b = appendString(appendString(b, fKey, k), fValue, v)
		b = endMessage(b, at)
	}
	return b
}

func appendSession(b []byte, s *us.UserSession) []byte {
	if s == nil {
		return b
	}
	b = appendString(b, fID, s.ID)
	b = appendString(b, fRealmID, s.RealmID)
	b = appendString(b, fUserID, s.UserID)
	b = appendString(b, fLoginUsername, s.LoginUsername)
	b = appendString(b, fIPAddress, s.IPAddress)
	b = appendString(b, fUserAgent, s.UserAgent)
	b = appendString(b, fAuthMethod, s.AuthMethod)
	b = appendString(b, fBrokerSessionID, s.BrokerSessionID)
	b = appendString(b, fBrokerUserID, s.BrokerUserID)
	b = appendBool(b, fRememberMe, s.RememberMe)
	b = appendBool(b, fOffline, s.Offline)
	b = appendString(b, fState, string(s.State))
	b = appendInt(b, fStarted, micros(s.Started))
	b = appendInt(b, fLastRefresh, micros(s.LastRefresh))
	b = appendInt(b, fExpiresAt, micros(s.ExpiresAt))
	b = appendNotes(b, fNotes, s.Notes)
	b = appendInt(b, fVersion, s.Version)
	for id, c := range s.Clients {
		var entry, value int
		b, entry = beginMessage(b, fClients)
		b = appendString(b, fKey, id)
		b, value = beginMessage(b, fValue)
		b = appendClient(b, c)
		b = endMessage(endMessage(b, value), entry)
	}
	return b
}

func appendClient(b []byte, c *us.ClientSession) []byte {
	if c == nil {
		return b
	}
	b = appendString(b, fcUserSessionID, c.UserSessionID)
	b = appendString(b, fcRealmID, c.RealmID)
	b = appendString(b, fcClientID, c.ClientID)
	b = appendBool(b, fcOffline, c.Offline)
	b = appendInt(b, fcStarted, micros(c.Started))
	b = appendInt(b, fcLastRefresh, micros(c.LastRefresh))
	b = appendInt(b, fcExpiresAt, micros(c.ExpiresAt))
	b = appendString(b, fcAuthMethod, c.AuthMethod)
	b = appendString(b, fcRedirectURI, c.RedirectURI)
	b = appendString(b, fcAction, c.Action)
	b = appendString(b, fcScope, c.Scope)
	b = appendNotes(b, fcNotes, c.Notes)
	b = appendString(b, fcCurrent, c.CurrentRefreshToken)
	b = appendInt(b, fcUseCount, int64(c.CurrentRefreshTokenUseCount))
	b = appendString(b, fcPrevious, c.PreviousRefreshToken)
	b = appendInt(b, fcRotatedAt, micros(c.RotatedAt))
	return appendInt(b, fcVersion, c.Version)
}

// streamPage is what the host receives of one message of the stream.
type streamPage struct {
	d        *sessionDecoder
	sessions []*us.UserSession
}

// rawPage is one message of the stream as it came, for a worker to decode; whoever
// holds it frees buf.
type rawPage struct{ buf mem.Buffer }

// pageCodec is the codec of the host's side of the stream: the request goes as protobuf
// does, the pages come in through a sessionDecoder. Its name is protobuf's, as the bytes
// are.
type pageCodec struct{}

func (pageCodec) Name() string { return "proto" }

func (pageCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (pageCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if raw, ok := v.(*rawPage); ok {
		raw.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	page, ok := v.(*streamPage)
	if !ok {
		return encoding.GetCodecV2("proto").Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	var err error
	page.sessions, err = page.d.sessions(buf.ReadOnlyData())
	return err
}

// sessionDecoder reads pb.Sessions into sessions as sessionFromPB makes them from the
// generated messages. It hands out one copy of the values sessions share (realm, client,
// user agent, scope, note keys), as a store does.
type sessionDecoder struct {
	shared map[string]string
	last   [2][32]string // of sessions and of client sessions, by field number: the last shared value
	// With lend set (StreamLent), each page reuses the sessions, client sessions and maps
	// of the page before.
	lend bool
	lent us.Lender
}

// newSession returns an empty session: new, or when lending, one of the page before.
func (d *sessionDecoder) newSession() *us.UserSession {
	if !d.lend {
		return &us.UserSession{}
	}
	return d.lent.Session()
}

// sessionNotes returns an empty map for the notes of the session newSession returned last.
func (d *sessionDecoder) sessionNotes() map[string]string {
	if !d.lend {
		return make(map[string]string, 1)
	}
	return d.lent.SessionNotes()
}

// sessionClients returns an empty map for the client sessions of the session newSession
// returned last.
func (d *sessionDecoder) sessionClients() map[string]*us.ClientSession {
	if !d.lend {
		return make(map[string]*us.ClientSession, 1)
	}
	return d.lent.SessionClients()
}

// newClient is newSession for a client session.
func (d *sessionDecoder) newClient() *us.ClientSession {
	if !d.lend {
		return &us.ClientSession{}
	}
	return d.lent.Client()
}

// clientNotes returns an empty map for the notes of the client session newClient
// returned last.
func (d *sessionDecoder) clientNotes() map[string]string {
	if !d.lend {
		return make(map[string]string, 1)
	}
	return d.lent.ClientNotes()
}

// maxShared bounds the values a sessionDecoder shares, maxSharedLen their length.
const (
	maxShared    = 4096
	maxSharedLen = 512
)

var errMalformed = errors.New("malformed Sessions message")

func newSessionDecoder() *sessionDecoder {
	return &sessionDecoder{shared: map[string]string{}}
}

// field reads one field of b: its number, wire type, value (for varints, v; otherwise the
// bytes) and the rest of b.
func field(b []byte) (num protowire.Number, typ protowire.Type, v uint64, val, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, nil, nil, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
	}
	b = b[n:]
	switch typ {
	case protowire.VarintType:
		v, n = protowire.ConsumeVarint(b)
	case protowire.BytesType:
		val, n = protowire.ConsumeBytes(b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return 0, 0, 0, nil, nil, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
	}
	return num, typ, v, val, b[n:], nil
}

func (d *sessionDecoder) sessions(b []byte) ([]*us.UserSession, error) {
	var out []*us.UserSession
	if d.lend {
		out = d.lent.Page()
		defer func() { d.lent.Keep(out) }()
	}
	for len(b) > 0 {
		num, typ, _, val, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if num == fSessions && typ == protowire.BytesType {
			s, err := d.session(val)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, nil // as without lending
	}
	return out, nil
}

// shared returns val as a string, the one copy of it the decoder has when it has one;
// kind and num say which field it is, for the memo of the last value there.
func (d *sessionDecoder) share(kind int, num protowire.Number, val []byte) string {
	last := &d.last[kind][int(num)%len(d.last[kind])]
	if *last == string(val) {
		return *last
	}
	s, ok := d.shared[string(val)]
	if !ok {
		s = string(val)
		if len(d.shared) < maxShared && len(s) <= maxSharedLen {
			d.shared[s] = s
		}
	}
	*last = s
	return s
}

func (d *sessionDecoder) session(b []byte) (*us.UserSession, error) {
	s := d.newSession()
	for len(b) > 0 {
		num, typ, v, val, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if typ == protowire.BytesType {
			switch num {
			case fID:
				s.ID = string(val)
			case fRealmID:
				s.RealmID = d.share(0, num, val)
			case fUserID:
				s.UserID = string(val)
			case fLoginUsername:
				s.LoginUsername = string(val)
			case fIPAddress:
				s.IPAddress = string(val)
			case fUserAgent:
				s.UserAgent = d.share(0, num, val)
			case fAuthMethod:
				s.AuthMethod = d.share(0, num, val)
			case fBrokerSessionID:
				s.BrokerSessionID = string(val)
			case fBrokerUserID:
				s.BrokerUserID = string(val)
			case fState:
				s.State = us.State(d.share(0, num, val))
			case fNotes:
				if s.Notes == nil {
					s.Notes = d.sessionNotes()
				}
				if err = d.note(s.Notes, val); err != nil {
					return nil, err
				}
			case fClients:
				if s.Clients == nil {
					s.Clients = d.sessionClients()
				}
				if err = d.client(s, val); err != nil {
					return nil, err
				}
			}
			continue
		}
		if typ != protowire.VarintType {
			continue
		}
		switch num {
		case fRememberMe:
			s.RememberMe = v != 0
		case fOffline:
			s.Offline = v != 0
		case fStarted:
			s.Started = fromMicros(int64(v))
		case fLastRefresh:
			s.LastRefresh = fromMicros(int64(v))
		case fExpiresAt:
			s.ExpiresAt = fromMicros(int64(v))
		case fVersion:
			s.Version = int64(v)
		}
	}
	return s, nil
}

// note adds the map entry in b to notes.
func (d *sessionDecoder) note(notes map[string]string, b []byte) error {
	var k, v string
	for len(b) > 0 {
		num, typ, _, val, rest, err := field(b)
		if err != nil {
			return err
		}
		b = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case fKey:
			k = d.share(1, 30, val)
		case fValue:
			v = d.share(1, 31, val)
		}
	}
	notes[k] = v
	return nil
}

// client adds the map entry in b to s.Clients.
func (d *sessionDecoder) client(s *us.UserSession, b []byte) error {
	var id string
	var c *us.ClientSession
	for len(b) > 0 {
		num, typ, _, val, rest, err := field(b)
		if err != nil {
			return err
		}
		b = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case fKey:
			id = d.share(1, fcClientID, val)
		case fValue:
			if c, err = d.clientSession(s, val); err != nil {
				return err
			}
		}
	}
	if c == nil {
		c = d.newClient()
	}
	s.Clients[id] = c
	return nil
}

// clientSession reads a client session of s.
func (d *sessionDecoder) clientSession(s *us.UserSession, b []byte) (*us.ClientSession, error) {
	c := d.newClient()
	for len(b) > 0 {
		num, typ, v, val, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if typ == protowire.BytesType {
			switch num {
			case fcUserSessionID:
				if c.UserSessionID = s.ID; s.ID != string(val) { // the same, as a rule: no copy
					c.UserSessionID = string(val)
				}
			case fcRealmID:
				c.RealmID = d.share(1, num, val)
			case fcClientID:
				c.ClientID = d.share(1, num, val)
			case fcAuthMethod:
				c.AuthMethod = d.share(1, num, val)
			case fcRedirectURI:
				c.RedirectURI = d.share(1, num, val)
			case fcAction:
				c.Action = d.share(1, num, val)
			case fcScope:
				c.Scope = d.share(1, num, val)
			case fcNotes:
				if c.Notes == nil {
					c.Notes = d.clientNotes()
				}
				if err = d.note(c.Notes, val); err != nil {
					return nil, err
				}
			case fcCurrent:
				c.CurrentRefreshToken = string(val)
			case fcPrevious:
				c.PreviousRefreshToken = string(val)
			}
			continue
		}
		if typ != protowire.VarintType {
			continue
		}
		switch num {
		case fcOffline:
			c.Offline = v != 0
		case fcStarted:
			c.Started = fromMicros(int64(v))
		case fcLastRefresh:
			c.LastRefresh = fromMicros(int64(v))
		case fcExpiresAt:
			c.ExpiresAt = fromMicros(int64(v))
		case fcUseCount:
			c.CurrentRefreshTokenUseCount = int(int64(v))
		case fcRotatedAt:
			c.RotatedAt = fromMicros(int64(v))
		case fcVersion:
			c.Version = int64(v)
		}
	}
	return c, nil
}
