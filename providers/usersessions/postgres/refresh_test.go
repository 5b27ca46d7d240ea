package postgres_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// wireCounter is a proxy in front of PostgreSQL that counts the messages clients send, by
// type: 'Q' a simple query (lib/pq's BEGIN and COMMIT), 'P' the Parse of a statement with
// arguments (an unnamed one, or one being prepared), 'S' the Sync that ends one (each 'Q'
// and each 'S' is one round trip).
type wireCounter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	counts map[byte]int
	wg     sync.WaitGroup
}

func newWireCounter(t *testing.T, databaseURL string) (*wireCounter, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &wireCounter{ln: ln, target: u.Host, counts: map[byte]int{}}
	w.wg.Add(1)
	go w.accept()
	t.Cleanup(func() { ln.Close(); w.wg.Wait() })
	u.Host = ln.Addr().String()
	return w, u.String()
}

func (w *wireCounter) accept() {
	defer w.wg.Done()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		client, err := w.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", w.target)
		if err != nil {
			client.Close()
			continue
		}
		conns = append(conns, client, server)
		w.wg.Add(2)
		go func() { defer w.wg.Done(); io.Copy(client, server); client.Close() }() //nolint:errcheck // ends with the connection
		go func() { defer w.wg.Done(); w.relay(server, client); server.Close() }()
	}
}

// relay copies the client's messages to the server, counting them.
func (w *wireCounter) relay(server io.Writer, client io.Reader) {
	r := io.TeeReader(client, server)
	var head [5]byte
	// Untyped messages first: an SSL or GSS encryption request (answered 'N' here), then
	// the startup message.
	for {
		if _, err := io.ReadFull(r, head[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[:4])) - 4
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if n != 4 || (binary.BigEndian.Uint32(body) != 80877103 && binary.BigEndian.Uint32(body) != 80877104) {
			break
		}
	}
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		w.mu.Lock()
		w.counts[head[0]]++
		w.mu.Unlock()
		if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(head[1:]))-4); err != nil {
			return
		}
	}
}

// take returns the counts since the last take and starts again.
func (w *wireCounter) take() (queries, parses, syncs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	queries, parses, syncs = w.counts['Q'], w.counts['P'], w.counts['S']
	clear(w.counts)
	return queries, parses, syncs
}

// TestRefreshIsOneStatement: a Touch and a Rotate of a batch whose client sessions are
// all found at their versions are one statement each, sent without BEGIN and COMMIT and,
// once prepared on the connection, without being parsed again: one round trip. Each item's result is what it was in the transaction (a missing client or
// user session fails its item alone), and another node's feed hears every session the
// batch wrote and none it did not. A rotation whose version has moved on takes the slow
// path, a transaction that reads what is stored, and fails as a conflict.
func TestRefreshIsOneStatement(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t, admin(t))
	counter, through := newWireCounter(t, u)
	// One connection, so that the statements prepared on it by the warm-up are those the
	// counted calls use.
	a := open(t, spi.Config{postgres.OptURL: through, spi.HostNodeID: "node-a", postgres.OptMaxOpenConns: "1"})
	b := open(t, spi.Config{postgres.OptURL: u, spi.HostNodeID: "node-b"})
	feed := startWatch(t, b)
	feed.subscribed(t, a, usersessions.Key{RealmID: "probe", ID: "probe"})

	s1, s2, s3 := testSession("one-1"), testSession("one-2"), testSession("one-3")
	mustCreate(t, a, s1, s2, s3)
	missing := usersessions.Key{RealmID: "r1", ID: "one-missing"}
	// A first Rotate prepares its statement on the connection (the probe's Touch did
	// Touch's): one round trip more, once per connection.
	warm, err := a.Get(t.Context(), []usersessions.Key{s3.Key()})
	if err != nil {
		t.Fatal(err)
	}
	wc := *warm[0].Clients["app"]
	wc.RealmID, wc.UserSessionID = s3.RealmID, s3.ID
	if errs, err := a.Rotate(t.Context(), []usersessions.Rotation{{Client: &wc, LastRefresh: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}}); err != nil || errs[0] != nil {
		t.Fatalf("warm-up Rotate = %v, %v", errs, err)
	}
	if _, ok := feed.wait(5*time.Second, func(c usersessions.Change) bool { return c.Session == s3.Key() && c.ClientID == "app" }); !ok {
		t.Fatal("the warm-up rotation was not heard within 5 s")
	}
	counter.take()

	now := time.Now().UTC().Truncate(time.Microsecond).Add(time.Minute)
	touch := func(k usersessions.Key, client string) usersessions.Touch {
		return usersessions.Touch{Session: k, LastRefresh: now, ExpiresAt: now.Add(2 * time.Hour), ClientID: client, ClientExpiresAt: now.Add(time.Hour)}
	}
	errs, err := a.Touch(t.Context(), []usersessions.Touch{
		touch(s1.Key(), "app"),
		touch(s1.Key(), "app"), // the same key twice: folded
		touch(s2.Key(), "other"),
		touch(s3.Key(), ""),
		touch(missing, ""),
	})
	if err != nil {
		t.Fatalf("Touch: %v", err)
	}
	for i, want := range []error{nil, nil, spi.ErrNotFound, nil, spi.ErrNotFound} {
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("Touch item %d: %v, want %v", i, errs[i], want)
		}
	}
	if q, p, s := counter.take(); q != 0 || p != 0 || s != 1 {
		t.Errorf("Touch sent %d simple queries and parsed %d statements in %d round trips; want one prepared statement executed, no BEGIN or COMMIT", q, p, s)
	}
	got, err := a.Get(t.Context(), []usersessions.Key{s1.Key(), s2.Key(), s3.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].LastRefresh.Equal(now) || !got[0].Clients["app"].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("s1 after the touch: last refresh %v, client expiry %v; want %v, %v", got[0].LastRefresh, got[0].Clients["app"].ExpiresAt, now, now.Add(time.Hour))
	}
	if got[1].LastRefresh.Equal(now) {
		t.Error("s2's user session moved though the touch's client session was not found")
	}
	if !got[2].LastRefresh.Equal(now) {
		t.Errorf("s3 after a touch of its user session alone: last refresh %v, want %v", got[2].LastRefresh, now)
	}
	counter.take()

	rotation := func(us *usersessions.UserSession, version int64) usersessions.Rotation {
		c := *us.Clients["app"]
		c.RealmID, c.UserSessionID, c.Offline = us.RealmID, us.ID, us.Offline
		c.Version, c.CurrentRefreshToken, c.LastRefresh = version, "rt-"+us.ID, now
		return usersessions.Rotation{Client: &c, LastRefresh: now.Add(time.Second), ExpiresAt: now.Add(3 * time.Hour)}
	}
	errs, err = a.Rotate(t.Context(), []usersessions.Rotation{rotation(got[0], got[0].Clients["app"].Version), rotation(got[2], got[2].Clients["app"].Version)})
	if err != nil || errors.Join(errs...) != nil {
		t.Fatalf("Rotate = %v, %v", errs, err)
	}
	if q, p, s := counter.take(); q != 0 || p != 0 || s != 1 {
		t.Errorf("Rotate sent %d simple queries and parsed %d statements in %d round trips; want one prepared statement executed, no BEGIN or COMMIT", q, p, s)
	}
	// s1's version has moved on: its rotation takes the slow path, s3's does not.
	stale := rotation(got[0], got[0].Clients["app"].Version)
	got3, err := a.Get(t.Context(), []usersessions.Key{s3.Key()})
	if err != nil {
		t.Fatal(err)
	}
	counter.take()
	errs, err = a.Rotate(t.Context(), []usersessions.Rotation{stale, rotation(got3[0], got3[0].Clients["app"].Version)})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], spi.ErrConflict) || errs[1] != nil {
		t.Errorf("Rotate of a stale and a current version = %v, want a conflict and success", errs)
	}
	if q, p, _ := counter.take(); q != 2 || p < 2 {
		t.Errorf("Rotate with a conflict sent %d simple queries and %d statements; want the statement, then a transaction (BEGIN, COMMIT) that reads what is stored", q, p)
	}
	after, err := a.Get(t.Context(), []usersessions.Key{s1.Key(), s3.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if v := after[0].Clients["app"].Version; v != got[0].Clients["app"].Version+1 {
		t.Errorf("s1's client session at version %d after one rotation and a conflict, want %d", v, got[0].Clients["app"].Version+1)
	}
	if v := after[1].Clients["app"].Version; v != got[2].Clients["app"].Version+2 || !after[1].LastRefresh.Equal(now.Add(time.Second)) {
		t.Errorf("s3 after two rotations: client version %d, last refresh %v; want %d, %v", v, after[1].LastRefresh, got[2].Clients["app"].Version+2, now.Add(time.Second))
	}

	// The feed: node b heard every write, from node a, and nothing of what was not
	// written, before a marker written last.
	marker := testSession("one-marker")
	mustCreate(t, a, marker)
	heard := map[string]int{}
	if _, ok := feed.wait(5*time.Second, func(c usersessions.Change) bool {
		if c.Origin == "node-a" && c.Kind == usersessions.Upserted {
			heard[c.Session.ID+"/"+c.ClientID]++
		}
		return c.Session == marker.Key()
	}); !ok {
		t.Fatal("the marker was not heard within 5 s")
	}
	for _, k := range []string{"one-1/", "one-3/", "one-1/app", "one-3/app"} {
		if heard[k] == 0 {
			t.Errorf("node b did not hear %s (heard %v)", k, heard)
		}
	}
	for _, k := range []string{"one-2/", "one-missing/", "one-2/other"} {
		if heard[k] != 0 {
			t.Errorf("node b heard %s, which was not written (heard %v)", k, heard)
		}
	}
	if heard["one-3/app"] != 2 || heard["one-1/app"] != 1 {
		t.Errorf("rotations heard: one-1/app %d, one-3/app %d; want 1 and 2", heard["one-1/app"], heard["one-3/app"])
	}
}

// TestRefreshNotificationsAreStagesPayloads: the notifications of a Touch whose every
// session is found are, byte for byte, the payloads a transaction's Stage sends, split
// over several notifications when the batch is large; when some are not found, each
// notification still fits, and together they name exactly the sessions written.
func TestRefreshNotificationsAreStagesPayloads(t *testing.T) {
	t.Parallel()
	schema, u := freshSchema(t, admin(t))
	p := open(t, spi.Config{postgres.OptURL: u, spi.HostNodeID: "node-a"})
	l := pq.NewListener(u, 100*time.Millisecond, time.Second, nil)
	t.Cleanup(func() { l.Close() })
	if err := l.Listen("sessiond:" + schema); err != nil {
		t.Fatal(err)
	}

	long := strings.Repeat("x", 80) // about 110 bytes a change: 200 take three payloads
	var sessions []*usersessions.UserSession
	for i := range 200 {
		sessions = append(sessions, testSession(fmt.Sprintf("%s-%03d", long, i)))
	}
	mustCreate(t, p, sessions...)
	drain(l)

	now := time.Now().UTC().Truncate(time.Microsecond).Add(time.Minute)
	var touches []usersessions.Touch
	var changes []usersessions.Change
	for _, s := range sessions {
		touches = append(touches, usersessions.Touch{Session: s.Key(), LastRefresh: now, ExpiresAt: now.Add(time.Hour)})
		changes = append(changes, usersessions.Change{Kind: usersessions.Upserted, Session: s.Key(), Origin: "node-a"})
	}
	if errs, err := p.Touch(t.Context(), touches); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("Touch = %v, %v", errs, err)
	}
	want, err := postgres.Encode(changes)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 3 {
		t.Fatalf("the batch encodes as %d payloads; the test wants several", len(want))
	}
	got := receive(t, l, len(want))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the statement notified\n%q\nwant Stage's payloads\n%q", got, want)
	}

	// Every third session missing: each payload loses those parts.
	var some []usersessions.Touch
	written := map[string]bool{}
	for i, tc := range touches {
		tc.LastRefresh = tc.LastRefresh.Add(time.Second)
		if i%3 == 0 {
			tc.Session.ID += "-missing"
		} else {
			written[tc.Session.ID] = true
		}
		some = append(some, tc)
	}
	if _, err := p.Touch(t.Context(), some); err != nil {
		t.Fatal(err)
	}
	heard := map[string]bool{}
	for _, pl := range receive(t, l, len(want)) {
		if len(pl) >= 8000 {
			t.Errorf("a payload of %d bytes", len(pl))
		}
		var v struct {
			N string `json:"n"`
			C []struct {
				I string `json:"i"`
			} `json:"c"`
		}
		if err := json.Unmarshal([]byte(pl), &v); err != nil || v.N != "node-a" {
			t.Fatalf("payload %q: %v, origin %q", pl, err, v.N)
		}
		for _, c := range v.C {
			heard[c.I] = true
		}
	}
	if len(heard) != len(written) {
		t.Errorf("the notifications named %d sessions, want the %d written", len(heard), len(written))
	}
	for id := range heard {
		if !written[id] {
			t.Errorf("the notifications named %s, which was not written", id)
		}
	}
}

// receive reads n notifications' payloads from l.
func receive(t *testing.T, l *pq.Listener, n int) []string {
	t.Helper()
	var out []string
	timeout := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case m := <-l.Notify:
			if m != nil {
				out = append(out, m.Extra)
			}
		case <-timeout:
			t.Fatalf("%d notifications within 5 s, want %d", len(out), n)
		}
	}
	select {
	case m := <-l.Notify:
		t.Errorf("a notification more than the %d expected: %v", n, m)
	case <-time.After(200 * time.Millisecond):
	}
	return out
}

// drain reads what l has been sent until it stays quiet.
func drain(l *pq.Listener) {
	for {
		select {
		case <-l.Notify:
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// TestRefreshAfterTheBackendsWereTerminated: a Touch and a Rotate on pooled connections
// whose backends are gone (a server restart) succeed, as a transaction's did: the
// statement that finds its connection dead is made again in a transaction on a new one.
func TestRefreshAfterTheBackendsWereTerminated(t *testing.T) {
	t.Parallel()
	db := admin(t)
	_, u := freshSchema(t, db)
	app := randomName("sessiond_test_")
	p := open(t, spi.Config{postgres.OptURL: withParams(t, u, "application_name", app), postgres.OptMaxIdleConns: "4"})
	s := testSession("terminated")
	mustCreate(t, p, s)
	got, err := p.Get(t.Context(), []usersessions.Key{s.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backends to end", func() bool {
		var n int
		return db.Get(&n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app) == nil && n == 0
	})
	now := time.Now().UTC().Truncate(time.Microsecond).Add(time.Minute)
	errs, err := p.Touch(t.Context(), []usersessions.Touch{{Session: s.Key(), LastRefresh: now, ExpiresAt: now.Add(time.Hour), ClientID: "app", ClientExpiresAt: now.Add(time.Hour)}})
	if err != nil || errs[0] != nil {
		t.Fatalf("Touch on a dead pooled connection = %v, %v; want success", errs, err)
	}
	if _, err := db.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backends to end", func() bool {
		var n int
		return db.Get(&n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app) == nil && n == 0
	})
	c := *got[0].Clients["app"]
	c.RealmID, c.UserSessionID = s.RealmID, s.ID
	c.CurrentRefreshToken = "rotated"
	errs, err = p.Rotate(t.Context(), []usersessions.Rotation{{Client: &c, LastRefresh: now, ExpiresAt: now.Add(time.Hour)}})
	if err != nil || errs[0] != nil {
		t.Fatalf("Rotate on a dead pooled connection = %v, %v; want success", errs, err)
	}
	after, err := p.Get(t.Context(), []usersessions.Key{s.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if cs := after[0].Clients["app"]; cs.Version != c.Version+1 || cs.CurrentRefreshToken != "rotated" {
		t.Errorf("after the rotation: version %d, token %q; want %d, rotated", cs.Version, cs.CurrentRefreshToken, c.Version+1)
	}
}
