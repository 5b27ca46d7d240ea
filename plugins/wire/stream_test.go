package wire

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

// streamPages are pages as a store may stream them: a full session, an empty one, times
// before 1970 and at the ends of the range, empty and non-ASCII strings, empty notes, a
// nil client session, and a long session (lengths of more than one varint byte).
func streamPages() [][]*us.UserSession {
	full := sampleSession("s-1", true)
	odd := sampleSession("s-2 ü ✓", false)
	odd.Started = time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)
	odd.ExpiresAt = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	odd.Notes = map[string]string{"": "", "k": ""}
	odd.Clients["nil"] = nil
	odd.Clients["app"].Notes = map[string]string{}
	odd.Clients["app"].CurrentRefreshTokenUseCount = 1 << 40
	odd.Version = -1
	long := sampleSession("s-3", true)
	long.UserAgent = strings.Repeat("Mozilla/5.0 ", 2000)
	long.Clients["app"].Scope = strings.Repeat("scope ", 30)
	bare := &us.UserSession{ID: "s-4", RealmID: "realm-1"}
	return [][]*us.UserSession{{full}, {odd, bare, long}, {full, full}, {}}
}

// TestStreamEncodingIsTheGeneratedOnes checks that what the plugin sends of a page reads,
// with the generated code, as the message the generated conversion makes.
func TestStreamEncodingIsTheGeneratedOnes(t *testing.T) {
	for _, page := range streamPages() {
		got := &pb.Sessions{}
		if err := proto.Unmarshal(encodeSessions(page), got); err != nil {
			t.Fatal(err)
		}
		if want := (&pb.Sessions{Sessions: each(page, sessionToPB)}); !proto.Equal(got, want) {
			t.Errorf("encoded\n%v\nwant\n%v", got, want)
		}
		// And as it goes out: the bytes are the message's.
		b, err := proto.Marshal(sessionsMessage(page))
		if err != nil {
			t.Fatal(err)
		}
		again := &pb.Sessions{}
		if err := proto.Unmarshal(b, again); err != nil || !proto.Equal(again, got) {
			t.Errorf("sent %v (%v), want %v", again, err, got)
		}
	}
}

// everyField sets each field of m, and of the messages it holds, to a value that is not
// its default, so that a field the decoder does not know is seen.
func everyField(m protoreflect.Message, seed int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		n := seed*100 + i + 1
		value := func(k protoreflect.Kind) protoreflect.Value {
			switch k {
			case protoreflect.StringKind:
				return protoreflect.ValueOfString(string(f.Name()) + "-" + strings.Repeat("x", n%7))
			case protoreflect.BoolKind:
				return protoreflect.ValueOfBool(true)
			case protoreflect.Int64Kind:
				return protoreflect.ValueOfInt64(int64(n) * 1_000_003)
			}
			return protoreflect.Value{}
		}
		switch {
		case f.IsMap():
			mv := m.Mutable(f).Map()
			key := protoreflect.ValueOfString("key-" + string(f.Name())).MapKey()
			if f.MapValue().Kind() == protoreflect.MessageKind {
				v := mv.NewValue()
				everyField(v.Message(), seed+1)
				mv.Set(key, v)
			} else {
				mv.Set(key, value(f.MapValue().Kind()))
			}
		case f.Kind() == protoreflect.MessageKind:
			everyField(m.Mutable(f).Message(), seed+1)
		default:
			v := value(f.Kind())
			if !v.IsValid() {
				panic("everyField: no value for " + f.Kind().String())
			}
			m.Set(f, v)
		}
	}
}

// TestStreamDecodingIsTheGeneratedOnes checks that the host reads a page as the
// generated code and conversion do: every field of both messages set, messages the
// generated encoder wrote, unknown fields, and fields of an unexpected wire type.
func TestStreamDecodingIsTheGeneratedOnes(t *testing.T) {
	all := &pb.UserSession{}
	everyField(all.ProtoReflect(), 1)
	var pages [][]byte
	for _, page := range streamPages() {
		b, err := proto.Marshal(&pb.Sessions{Sessions: each(page, sessionToPB)})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, b)
	}
	b, err := proto.Marshal(&pb.Sessions{Sessions: []*pb.UserSession{all, all}})
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, b)
	// A field number no version knows, and a known one with another wire type: both
	// are skipped.
	odd := proto.Clone(all).(*pb.UserSession)
	unknown := protowire.AppendTag(nil, 99, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "later")
	unknown = protowire.AppendTag(unknown, fUserAgent, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	odd.ProtoReflect().SetUnknown(unknown)
	if b, err = proto.Marshal(&pb.Sessions{Sessions: []*pb.UserSession{odd}}); err != nil {
		t.Fatal(err)
	}
	pages = append(pages, b)

	// A lending decoder (StreamLent) must give the same, whatever the page before held:
	// the pages go through it forwards and backwards.
	backwards := slices.Clone(pages)
	slices.Reverse(backwards)
	for _, c := range []struct {
		name  string
		lend  bool
		pages [][]byte
	}{{"new sessions", false, pages}, {"lent sessions", true, pages}, {"lent sessions, pages backwards", true, backwards}} {
		d := newSessionDecoder()
		d.lend = c.lend
		for i, b := range c.pages {
			m := &pb.Sessions{}
			if err := proto.Unmarshal(b, m); err != nil {
				t.Fatal(err)
			}
			want := each(m.GetSessions(), sessionFromPB)
			for range 2 { // the second time through the decoder's memo of shared values
				got, err := d.sessions(b)
				if err != nil {
					t.Fatalf("%s: page %d: %v", c.name, i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: page %d decoded as\n%+v\nwant\n%+v", c.name, i, got, want)
				}
			}
		}
	}
	var someClient bool
	for _, c := range sessionFromPB(all).Clients {
		someClient = someClient || c.CurrentRefreshToken != ""
	}
	if !someClient {
		t.Fatal("everyField set no client session field")
	}
}

func TestStreamDecodingRefusesMalformedPages(t *testing.T) {
	good, err := proto.Marshal(&pb.Sessions{Sessions: []*pb.UserSession{sessionToPB(sampleSession("s-1", true))}})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"cut short":             good[:len(good)-3],
		"a length past the end": append(protowire.AppendTag(nil, fSessions, protowire.BytesType), 0x7f, 1, 2),
		"a bad tag":             {0x80},
	} {
		if _, err := newSessionDecoder().sessions(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: decoded with error %v, want errMalformed", name, err)
		}
	}
}

// raw is s as a provider that implements PageStreamer reads it.
func raw(s *us.UserSession) *RawSession {
	notes := func(m map[string]string) RawNotes {
		var n RawNotes
		for k, v := range m {
			n = append(n, []byte(k), []byte(v))
		}
		return n
	}
	r := &RawSession{ID: []byte(s.ID), RealmID: []byte(s.RealmID), UserID: []byte(s.UserID),
		LoginUsername: []byte(s.LoginUsername), IPAddress: []byte(s.IPAddress), UserAgent: []byte(s.UserAgent),
		AuthMethod: []byte(s.AuthMethod), BrokerSessionID: []byte(s.BrokerSessionID), BrokerUserID: []byte(s.BrokerUserID),
		State: []byte(s.State), RememberMe: s.RememberMe, Offline: s.Offline, Started: s.Started,
		LastRefresh: s.LastRefresh, ExpiresAt: s.ExpiresAt, Notes: notes(s.Notes), Version: s.Version}
	for id, c := range s.Clients {
		r.Clients = append(r.Clients, RawClient{ClientID: []byte(id), AuthMethod: []byte(c.AuthMethod),
			RedirectURI: []byte(c.RedirectURI), Action: []byte(c.Action), Scope: []byte(c.Scope),
			CurrentRefreshToken: []byte(c.CurrentRefreshToken), PreviousRefreshToken: []byte(c.PreviousRefreshToken),
			Started: c.Started, LastRefresh: c.LastRefresh, ExpiresAt: c.ExpiresAt, RotatedAt: c.RotatedAt,
			Notes: notes(c.Notes), CurrentRefreshTokenUseCount: c.CurrentRefreshTokenUseCount, Version: c.Version})
	}
	return r
}

// TestPageIsTheGeneratedEncoding checks that a page a provider writes with Page.Add reads,
// with the generated code, as the message the generated conversion makes of the same
// sessions, and that Add copies what it is given.
func TestPageIsTheGeneratedEncoding(t *testing.T) {
	for _, sessions := range streamPages() {
		var p Page
		for _, s := range sessions {
			for id, c := range s.Clients {
				if c == nil { // a provider reads no nil client sessions
					delete(s.Clients, id)
					continue
				}
				c.UserSessionID, c.RealmID, c.ClientID, c.Offline = s.ID, s.RealmID, id, s.Offline
			}
			r := raw(s)
			p.Add(r)
			clear(r.ID) // the page must not share the provider's bytes
		}
		if p.Len() != len(sessions) {
			t.Errorf("Len() = %d after %d sessions", p.Len(), len(sessions))
		}
		got := &pb.Sessions{}
		if err := proto.Unmarshal(p.bytes(), got); err != nil {
			t.Fatal(err)
		}
		if want := (&pb.Sessions{Sessions: each(sessions, sessionToPB)}); !proto.Equal(got, want) {
			t.Errorf("written\n%v\nwant\n%v", got, want)
		}
		p.Reset()
		if p.Len() != 0 || len(p.bytes()) != 0 {
			t.Errorf("the page holds %d sessions (%d bytes) after Reset", p.Len(), len(p.bytes()))
		}
	}
}
