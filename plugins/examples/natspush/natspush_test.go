package natspush_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessiond/sessiond/plugins/examples/natspush"
	"github.com/sessiond/sessiond/plugins/sdk/sdktest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// The test binary doubles as the plugin: sdktest.Start runs it again, and this TestMain
// then serves the provider instead of running tests.
func TestMain(m *testing.M) {
	sdktest.Main(m, func(log hclog.Logger) spi.Provider { return natspush.New(log) })
}

// natsURL is the NATS server the tests use: SESSIOND_TEST_NATS_URL, or the local one that
// .ci/services brings up.
func natsURL() string {
	if u := os.Getenv("SESSIOND_TEST_NATS_URL"); u != "" {
		return u
	}
	return nats.DefaultURL
}

// newPrefix is a subject prefix no other test, and no other run, uses.
func newPrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "sessiondtest." + hex.EncodeToString(b)
}

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("NATS at %s does not answer (make test starts it: .ci/services): %v", natsURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func open(t *testing.T, set spi.Config) *natspush.Provider {
	t.Helper()
	p := natspush.New(nil)
	cfg := spi.Config{natspush.OptURL: natsURL()}
	for k, v := range set {
		cfg[k] = v
	}
	if err := p.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// notices are what the core hands the provider: a not-before push, a back-channel logout
// for a client whose id is no subject token as it stands, and one with nowhere to go.
func notices() []revocationpush.Notice {
	nbf := time.Date(2030, 3, 14, 15, 9, 26, 0, time.UTC)
	return []revocationpush.Notice{
		{ID: "d1", Action: revocationpush.PushNotBefore, RealmID: "demo", ClientID: "app", AdminURL: "https://app.example.test/admin",
			NotBefore: nbf, Token: "eyJ.not-before.sig", Expires: nbf.Add(time.Minute)},
		{ID: "d2", Action: revocationpush.BackchannelLogout, RealmID: "my.realm", ClientID: "spa *>", LogoutURL: "https://spa.example.test/bc",
			SessionIDs: []string{"s1"}, Token: "eyJ.logout.sig"},
		{ID: "d3", Action: revocationpush.Logout, RealmID: "demo"},
	}
}

// checkPush pushes notices() through push and checks what a subscriber receives.
func checkPush(t *testing.T, push revocationpush.Provider, prefix string) {
	t.Helper()
	nc := connect(t)
	sub, err := nc.SubscribeSync(prefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is the server's once a flush has come back; only then publish.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ns := notices()
	results, err := push.Push(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	want := []revocationpush.Result{
		{NoticeID: "d1", Target: prefix + ".demo.app", OK: true},
		{NoticeID: "d2", Target: prefix + ".my%2Erealm.spa%20%2A%3E", OK: true},
		{NoticeID: "d3", Error: "notice has no realm or no client: nowhere to publish it"},
	}
	if len(results) != len(want) {
		t.Fatalf("results %+v", results)
	}
	for i := range want {
		if results[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, results[i], want[i])
		}
	}
	for i, n := range ns[:2] {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("subscriber got no message %d: %v", i, err)
		}
		if msg.Subject != want[i].Target || msg.Header.Get(nats.MsgIdHdr) != n.ID || msg.Header.Get(natspush.HeaderAction) != n.Action {
			t.Errorf("message %d on %s with headers %v", i, msg.Subject, msg.Header)
		}
		var m natspush.Message
		if err := json.Unmarshal(msg.Data, &m); err != nil {
			t.Fatal(err)
		}
		wantMsg := natspush.Message{ID: n.ID, Action: n.Action, Realm: n.RealmID, Client: n.ClientID, AdminURL: n.AdminURL,
			LogoutURL: n.LogoutURL, SessionIDs: n.SessionIDs, Token: n.Token}
		if !n.NotBefore.IsZero() {
			wantMsg.NotBefore, wantMsg.Expires = n.NotBefore.Unix(), n.Expires.Unix()
		}
		if got, want := mustJSON(m), mustJSON(wantMsg); got != want {
			t.Errorf("message %d:\n got %s\nwant %s", i, got, want)
		}
	}
	if msg, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("unexpected message on %s: %s", msg.Subject, msg.Data)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPushInProcess(t *testing.T) {
	prefix := newPrefix()
	checkPush(t, open(t, spi.Config{natspush.OptSubjectPrefix: prefix}), prefix)
}

func TestPushThroughAPluginProcess(t *testing.T) {
	connect(t)
	prefix := newPrefix()
	push := sdktest.Provider[revocationpush.Provider](t, sdktest.Plugin{
		Config: spi.Config{natspush.OptURL: natsURL(), natspush.OptSubjectPrefix: prefix}})
	checkPush(t, push, prefix)
}

func TestJetStreamStoresEachNoticeOnce(t *testing.T) {
	js, err := jetstream.New(connect(t))
	if err != nil {
		t.Fatal(err)
	}
	prefix := newPrefix()
	name := "SESSIONDTEST_" + strings.TrimPrefix(prefix, "sessiondtest.")
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"},
		Storage: jetstream.MemoryStorage, Duplicates: time.Minute})
	if err != nil {
		t.Fatalf("create stream (is JetStream on? nats-server -js): %v", err)
	}
	t.Cleanup(func() { js.DeleteStream(context.Background(), name) })

	p := open(t, spi.Config{natspush.OptSubjectPrefix: prefix, natspush.OptJetStream: "true"})
	n := notices()[:1]
	for range 2 { // pushed again, as after a lost acknowledgement
		res, err := p.Push(t.Context(), n)
		if err != nil || !res[0].OK {
			t.Fatalf("push through JetStream: %+v, %v", res, err)
		}
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want the notice once", info.State.Msgs)
	}
}

func TestJetStreamWithoutAStreamIsRetried(t *testing.T) {
	connect(t)
	p := open(t, spi.Config{natspush.OptSubjectPrefix: newPrefix(), natspush.OptJetStream: "true", natspush.OptTimeout: "2s"})
	res, err := p.Push(t.Context(), notices()[:1])
	if err != nil || res[0].OK || !res[0].Retry || !strings.Contains(res[0].Error, "jetstream") {
		t.Errorf("push with no stream capturing the subject: %+v, %v; want not OK, Retry", res, err)
	}
}

func TestNATSDownMeansRetryNotFailure(t *testing.T) {
	// Configure succeeds (sessiond starts while NATS is down); pushes fail and are retried.
	p := open(t, spi.Config{natspush.OptURL: "nats://127.0.0.1:1", natspush.OptTimeout: "1s"})
	res, err := p.Push(t.Context(), notices()[:2])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.OK || !r.Retry || r.Error == "" {
			t.Errorf("result %+v while NATS is down, want not OK, Retry, with the error", r)
		}
	}
}

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"demo": "demo", "my-app_2": "my-app_2", "a.b": "a%2Eb", "*": "%2A", ">": "%3E", "a b": "a%20b",
		"100%": "100%25", "": "%", "ü": "%C3%BC",
	} {
		if got := natspush.Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
	if got := natspush.Subject("p.q", "r.1", "c"); got != "p.q.r%2E1.c" {
		t.Errorf("Subject = %q", got)
	}
}

func TestConfigureRefusesABadPrefix(t *testing.T) {
	for _, prefix := range []string{"", "a.>", "a b", ".a", "a."} {
		err := natspush.New(nil).Configure(t.Context(), spi.Config{natspush.OptSubjectPrefix: prefix, natspush.OptURL: natsURL()})
		if err == nil {
			t.Errorf("subject prefix %q accepted", prefix)
		}
	}
}

// TestURLPasswordIsNeitherLoggedNorShown: a url option with a user and password (NATS's
// own way of authenticating) is a secret option, and neither the log nor a configuration
// error shows the password.
func TestURLPasswordIsNeitherLoggedNorShown(t *testing.T) {
	const password = "nats-password-5e1f"
	for _, o := range natspush.New(nil).Describe().Options {
		if o.Name == natspush.OptURL && !o.Secret {
			t.Error("the url option is not marked secret: show-config would print its password")
		}
	}
	var logged bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Trace})
	p := natspush.New(log)
	// Nothing listens there: Configure succeeds and keeps trying, as with NATS down.
	err := p.Configure(t.Context(), spi.Config{natspush.OptURL: "nats://alice:" + password + "@127.0.0.1:1, nats://bob:" + password + "@127.0.0.1:2", natspush.OptTimeout: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
	if strings.Contains(logged.String(), password) || strings.Contains(logged.String(), "alice") {
		t.Errorf("the log shows the URL's user information:\n%s", logged.String())
	}
	if !strings.Contains(logged.String(), "nats://127.0.0.1:1,nats://127.0.0.1:2") {
		t.Errorf("the log does not show the servers:\n%s", logged.String())
	}
	// A URL nats refuses: the error names the option and the server, not the password.
	err = natspush.New(nil).Configure(t.Context(), spi.Config{natspush.OptURL: "nats://alice:" + password + "@127.0.0.1:bad"})
	if err == nil {
		t.Fatal("a URL with a bad port was accepted")
	}
	if strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), "spi-revocation-push-nats-url") {
		t.Errorf("configuration error %q: want the option named, without the password", err)
	}
}
