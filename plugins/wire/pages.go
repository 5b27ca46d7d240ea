package wire

import (
	"context"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	us "github.com/sessiond/sessiond/spi/usersessions"
)

// PageStreamer is what a user-sessions provider served as a plugin may implement beside
// Stream: it writes the sessions of the same selection straight into their wire form, as
// it reads them, without building a *usersessions.UserSession for each. A preload sends a
// million sessions across the boundary at start-up; built as sessions in the plugin, only
// to be encoded and dropped at once, they took most of the plugin's CPU (and the
// plugin's CPU, more than the host's, set the pace).
//
// The plugin server calls StreamPages in place of Stream. fn sends the page; when it
// returns, the page is the provider's again, to Reset and fill with the next one (a
// preload then reuses a few buffers instead of making and dropping a gigabyte of them).
// A provider that cannot serve a request this way (a database it streams differently,
// say) returns errors.ErrUnsupported before it calls fn, and the server falls back to
// Stream. Ordering, paging and partitioning are Stream's.
type PageStreamer interface {
	StreamPages(ctx context.Context, req us.StreamRequest, fn func(*Page) error) error
}

// Page is one page of a stream in its wire form: a usersessionspb.Sessions message.
type Page struct {
	b []byte
	n int
}

// Len is the number of sessions in the page.
func (p *Page) Len() int { return p.n }

// Reset empties the page, keeping its buffer.
func (p *Page) Reset() { p.b, p.n = p.b[:0], 0 }

// bytes is the page's message.
func (p *Page) bytes() []byte { return p.b }

// RawSession is a user session as a provider reads it: its strings as bytes that stay
// the provider's (Add copies them), so that reading a row costs no allocation. Realm,
// session id and offline of each client session are the user session's.
type RawSession struct {
	ID, RealmID, UserID, LoginUsername, IPAddress, UserAgent, AuthMethod []byte
	BrokerSessionID, BrokerUserID, State                                 []byte
	RememberMe, Offline                                                  bool
	Started, LastRefresh, ExpiresAt                                      time.Time
	Notes                                                                RawNotes
	Version                                                              int64
	Clients                                                              []RawClient
}

// RawClient is one client session of a RawSession.
type RawClient struct {
	ClientID, AuthMethod, RedirectURI, Action, Scope []byte
	CurrentRefreshToken, PreviousRefreshToken        []byte
	Started, LastRefresh, ExpiresAt, RotatedAt       time.Time
	Notes                                            RawNotes
	CurrentRefreshTokenUseCount                      int
	Version                                          int64
}

// RawNotes are notes as key, value, key, value, …; nil and empty both mean none.
type RawNotes [][]byte

// Add appends s, with its client sessions, to the page. It copies what it needs: s
// may be reused as soon as Add returns.
func (p *Page) Add(s *RawSession) {
	b, at := beginMessage(p.b, fSessions)
	b = appendBytes(b, fID, s.ID)
	b = appendBytes(b, fRealmID, s.RealmID)
	b = appendBytes(b, fUserID, s.UserID)
	b = appendBytes(b, fLoginUsername, s.LoginUsername)
	b = appendBytes(b, fIPAddress, s.IPAddress)
	b = appendBytes(b, fUserAgent, s.UserAgent)
	b = appendBytes(b, fAuthMethod, s.AuthMethod)
	b = appendBytes(b, fBrokerSessionID, s.BrokerSessionID)
	b = appendBytes(b, fBrokerUserID, s.BrokerUserID)
	b = appendBool(b, fRememberMe, s.RememberMe)
	b = appendBool(b, fOffline, s.Offline)
	b = appendBytes(b, fState, s.State)
	b = appendInt(b, fStarted, micros(s.Started))
	b = appendInt(b, fLastRefresh, micros(s.LastRefresh))
	b = appendInt(b, fExpiresAt, micros(s.ExpiresAt))
	b = appendRawNotes(b, fNotes, s.Notes)
	b = appendInt(b, fVersion, s.Version)
	for i := range s.Clients {
		c := &s.Clients[i]
		var entry, value int
		b, entry = beginMessage(b, fClients)
		b = appendBytes(b, fKey, c.ClientID)
		b, value = beginMessage(b, fValue)
		b = appendBytes(b, fcUserSessionID, s.ID)
		b = appendBytes(b, fcRealmID, s.RealmID)
		b = appendBytes(b, fcClientID, c.ClientID)
		b = appendBool(b, fcOffline, s.Offline)
		b = appendInt(b, fcStarted, micros(c.Started))
		b = appendInt(b, fcLastRefresh, micros(c.LastRefresh))
		b = appendInt(b, fcExpiresAt, micros(c.ExpiresAt))
		b = appendBytes(b, fcAuthMethod, c.AuthMethod)
		b = appendBytes(b, fcRedirectURI, c.RedirectURI)
		b = appendBytes(b, fcAction, c.Action)
		b = appendBytes(b, fcScope, c.Scope)
		b = appendRawNotes(b, fcNotes, c.Notes)
		b = appendBytes(b, fcCurrent, c.CurrentRefreshToken)
		b = appendInt(b, fcUseCount, int64(c.CurrentRefreshTokenUseCount))
		b = appendBytes(b, fcPrevious, c.PreviousRefreshToken)
		b = appendInt(b, fcRotatedAt, micros(c.RotatedAt))
		b = appendInt(b, fcVersion, c.Version)
		b = endMessage(endMessage(b, value), entry)
	}
	p.b = endMessage(b, at)
	p.n++
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendRawNotes(b []byte, num protowire.Number, notes RawNotes) []byte {
	for i := 0; i+1 < len(notes); i += 2 {
		var at int
		b, at = beginMessage(b, num)
		b = appendBytes(appendBytes(b, fKey, notes[i]), fValue, notes[i+1])
		b = endMessage(b, at)
	}
	return b
}
