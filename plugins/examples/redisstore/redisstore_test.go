package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/plugins/examples/redisstore"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/sdk/sdktest"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

// redisURL is the Redis the tests use: SESSIOND_TEST_REDIS_URL, or the local one that
// .ci/services brings up.
func redisURL() string {
	if u := os.Getenv("SESSIOND_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func admin(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer (make test starts it: .ci/services): %v", redisURL(), err)
	}
	return rdb
}

// newPrefix is a key prefix no other test, and no other run, uses.
func newPrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "sessiond-test:" + hex.EncodeToString(b) + ":"
}

// dropPrefix deletes every key under prefix when t ends.
func dropPrefix(t testing.TB, prefix string) {
	rdb := admin(t)
	t.Cleanup(func() {
		ctx := context.Background()
		var ks []string
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			ks = append(ks, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scanning keys under %s: %v", prefix, err)
		}
		if len(ks) > 0 {
			if err := rdb.Del(ctx, ks...).Err(); err != nil {
				t.Errorf("deleting keys under %s: %v", prefix, err)
			}
		}
	})
}

// open returns a configured in-process provider on a fresh prefix.
func open(t testing.TB, prefix string, set spi.Config) *redisstore.Provider {
	t.Helper()
	p := redisstore.New(nil)
	cfg := spi.Config{redisstore.OptURL: redisURL(), redisstore.OptKeyPrefix: prefix}
	for k, v := range set {
		cfg[k] = v
	}
	if err := p.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func TestConformanceInProcess(t *testing.T) {
	admin(t)
	usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
		prefix := newPrefix()
		dropPrefix(t, prefix)
		return open(t, prefix, nil)
	})
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// pluginBinary builds ./cmd/sessiond-redis, the very binary an operator registers, once
// per test run.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sessiond-redis")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "sessiond-redis")
		out, err := exec.Command("go", "build", "-o", binary, "../cmd/sessiond-redis").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build ../cmd/sessiond-redis: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := func() int {
		defer func() {
			if binary != "" {
				os.RemoveAll(filepath.Dir(binary))
			}
		}()
		return m.Run()
	}()
	os.Exit(code)
}

// TestConformanceThroughThePluginBinary runs the suite against the built plugin binary,
// started, checked and supervised by sessiond's own plugin host.
func TestConformanceThroughThePluginBinary(t *testing.T) {
	admin(t)
	bin := pluginBinary(t)
	next := sdktest.Prestart(t, 2, func() sdktest.Plugin {
		return sdktest.Plugin{Command: bin, SPI: spi.UserSessions, ID: redisstore.ID,
			Config: spi.Config{redisstore.OptURL: redisURL(), redisstore.OptKeyPrefix: newPrefix()}}
	})
	usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
		p := next(t)
		dropPrefix(t, p.Config()[redisstore.OptKeyPrefix])
		return p.Provider().(usersessions.Provider)
	})
}

func TestPluginBinaryDescribesItsOptionsAndLogsToTheHost(t *testing.T) {
	admin(t)
	prefix := newPrefix()
	dropPrefix(t, prefix)
	p := sdktest.Start(t, sdktest.Plugin{Command: pluginBinary(t), SPI: spi.UserSessions, ID: redisstore.ID,
		Config: spi.Config{redisstore.OptURL: redisURL(), redisstore.OptKeyPrefix: prefix}})
	st := p.Status()
	if st.State != host.StateRunning || st.Version != redisstore.Version || st.Protocol != 1 || st.PID <= 0 {
		t.Errorf("status %+v", st)
	}
	d := p.Descriptor()
	for name, typ := range map[string]spi.OptionType{
		redisstore.OptURL: spi.String, redisstore.OptPassword: spi.String, redisstore.OptKeyPrefix: spi.String,
		redisstore.OptPoolSize: spi.Int, redisstore.OptDialTimeout: spi.Duration, redisstore.OptPingInterval: spi.Duration,
	} {
		if o, ok := d.Option(name); !ok || o.Type != typ {
			t.Errorf("option %s: %+v, want type %s", name, o, typ)
		}
	}
	if o, _ := d.Option(redisstore.OptPassword); !o.Secret {
		t.Error("the password option is not secret")
	}
	re := regexp.MustCompile(`\[INFO\] +sessiond\.user-sessions\.redis\.sessiond-redis: redis session store: .*key_prefix=` + regexp.QuoteMeta(prefix))
	deadline := time.Now().Add(5 * time.Second)
	for !re.MatchString(p.Log()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !re.MatchString(p.Log()) {
		t.Errorf("the plugin's start-up line is not in the host's log:\n%s", p.Log())
	}
}

func TestNodesSharingRedisSeeEachOthersSessionsAndChanges(t *testing.T) {
	prefix := newPrefix()
	dropPrefix(t, prefix)
	a := open(t, prefix, spi.Config{spi.HostNodeID: "node-a"})
	b := open(t, prefix, spi.Config{spi.HostNodeID: "node-b"})

	changes := make(chan usersessions.Change, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.Watch(ctx, func(c usersessions.Change) error { changes <- c; return nil })
	}()
	defer func() { cancel(); <-done }()
	if c := <-changes; c.Kind != usersessions.Subscribed || c.Origin != "node-b" {
		t.Fatalf("first change %+v, want Subscribed from node-b", c)
	}

	s := &usersessions.UserSession{ID: "s1", RealmID: "r1", UserID: "u1", State: usersessions.LoggedIn,
		Started: time.Now(), LastRefresh: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	errs, err := a.Create(t.Context(), []*usersessions.UserSession{s})
	if err != nil || errs[0] != nil {
		t.Fatalf("create on node a: %v %v", err, errs)
	}
	select {
	case c := <-changes:
		if c.Kind != usersessions.Upserted || c.Session != s.Key() || c.Origin != "node-a" {
			t.Errorf("node b saw %+v, want Upserted of %v from node-a", c, s.Key())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node b saw no change for node a's create")
	}
	got, err := b.Get(t.Context(), []usersessions.Key{s.Key()})
	if err != nil || got[0] == nil || got[0].UserID != "u1" {
		t.Fatalf("node b reads %v, %v", got, err)
	}
}

func TestWatchReportsABrokenSubscription(t *testing.T) {
	rdb := admin(t)
	prefix := newPrefix()
	dropPrefix(t, prefix)
	node := "watch-" + strings.TrimSuffix(strings.TrimPrefix(prefix, "sessiond-test:"), ":")
	p := open(t, prefix, spi.Config{spi.HostNodeID: node})
	subscribed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Watch(t.Context(), func(c usersessions.Change) error {
			if c.Kind == usersessions.Subscribed {
				close(subscribed)
			}
			return nil
		})
	}()
	<-subscribed
	// Kill this provider's subscription connection, found by its client name.
	list, err := rdb.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name=sessiond-redis/"+node+" ") && strings.Contains(line, " sub=1 ") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := rdb.Do(t.Context(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("found %d subscription connections of node %s in:\n%s", killed, node, list)
	}
	select {
	case err := <-done:
		if !errors.Is(err, spi.ErrUnavailable) {
			t.Errorf("Watch returned %v, want an error wrapping spi.ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not notice its connection was killed")
	}
}

func TestUnreachableRedisIsUnavailable(t *testing.T) {
	p := redisstore.New(nil)
	err := p.Configure(t.Context(), spi.Config{redisstore.OptURL: "redis://127.0.0.1:1/0", redisstore.OptDialTimeout: "1s"})
	if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Configure against a closed port: %v, want ErrUnavailable naming the address", err)
	}
	if _, err := p.Get(t.Context(), []usersessions.Key{{RealmID: "r", ID: "s"}}); !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("Get on an unconfigured provider: %v, want ErrUnavailable", err)
	}
	err = p.Configure(t.Context(), spi.Config{redisstore.OptURL: "http://nope"})
	if !errors.Is(err, spi.ErrInvalid) || !strings.Contains(err.Error(), "spi-user-sessions-redis-url") {
		t.Errorf("Configure with a bad URL: %v, want ErrInvalid naming the key", err)
	}
}

func TestWatchStaysUpWhileQuiet(t *testing.T) {
	prefix := newPrefix()
	dropPrefix(t, prefix)
	// Pinged every 50 ms of silence: a healthy, quiet subscription must not break.
	p := open(t, prefix, spi.Config{redisstore.OptPingInterval: "50ms"})
	changes := make(chan usersessions.Change, 16)
	done := make(chan error, 1)
	go func() {
		done <- p.Watch(t.Context(), func(c usersessions.Change) error { changes <- c; return nil })
	}()
	if c := <-changes; c.Kind != usersessions.Subscribed {
		t.Fatalf("first change %+v", c)
	}
	select {
	case err := <-done:
		t.Fatalf("a quiet Watch ended: %v", err)
	case <-time.After(time.Second):
	}
	s := &usersessions.UserSession{ID: "s1", RealmID: "r1", UserID: "u1", State: usersessions.LoggedIn, ExpiresAt: time.Now().Add(time.Hour)}
	if errs, err := p.Create(t.Context(), []*usersessions.UserSession{s}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	select {
	case c := <-changes:
		if c.Kind != usersessions.Upserted {
			t.Errorf("change %+v after the quiet second", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change after a quiet second")
	}
}
