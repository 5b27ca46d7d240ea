package host_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// benchmarkRotate is a refresh's work across the boundary: each of 8×GOMAXPROCS callers
// rotates its own client session (one Rotate call, two changes), while two Watches run as
// sessiond runs them: the cache's (other nodes' session changes) and the not-before
// policies' (records). After the calls, a record is put and the clock runs until the
// policies' feed has delivered it, and so everything before it. cpu-µs/op is the CPU time
// of this process and the plugin's; changes/op what the two feeds delivered (sent across).
func benchmarkRotate(b *testing.B, mode string) {
	const node = "bench-node"
	h, _ := newHost(b, host.Options{})
	p, store := startMemory(b, h, mode, map[string]string{"watch-buffer": "1000000", spi.HostNodeID: node})
	pid := pidOf(h, p)
	ctx := b.Context()

	var arrived atomic.Int64 // changes the two feeds delivered, wanted or not
	barrier := make(chan struct{}, 1)
	watch := func(in usersessions.Interest, fn func(usersessions.Change)) {
		subscribed := make(chan struct{})
		watchCtx, stop := context.WithCancel(usersessions.WithInterest(ctx, in))
		watched := make(chan error, 1)
		go func() {
			watched <- store.Watch(watchCtx, func(c usersessions.Change) error {
				switch {
				case c.Kind == usersessions.Subscribed:
					close(subscribed)
				case in.Wants(c):
					fn(c)
					fallthrough
				default:
					arrived.Add(1)
				}
				return nil
			})
		}()
		b.Cleanup(func() {
			stop()
			if err := <-watched; err != nil {
				b.Errorf("Watch: %v", err)
			}
		})
		<-subscribed
	}
	watch(usersessions.Interest{Kinds: []usersessions.ChangeKind{usersessions.Upserted, usersessions.Removed, usersessions.Flushed}, IgnoreOrigin: node},
		func(usersessions.Change) {})
	watch(usersessions.Interest{Kinds: []usersessions.ChangeKind{usersessions.RecordChanged}}, func(c usersessions.Change) {
		if c.Record.Kind == "bench-barrier" {
			barrier <- struct{}{}
		}
	})

	const parallelism = 8
	callers := parallelism * 2 // RunParallel's goroutines: parallelism × GOMAXPROCS (≤ this)
	base := time.Now().UTC().Truncate(time.Microsecond)
	clients := make([]*usersessions.ClientSession, callers*4)
	for i := range clients {
		s := session(fmt.Sprintf("rot-%d", i))
		s.Clients = map[string]*usersessions.ClientSession{"app": {ClientID: "app", Started: base, LastRefresh: base,
			ExpiresAt: base.Add(time.Hour), CurrentRefreshToken: "rt-0"}}
		if errs, err := store.Create(ctx, []*usersessions.UserSession{s}); err != nil || errs[0] != nil {
			b.Fatalf("Create: %v %v", errs, err)
		}
		got, err := store.Get(ctx, []usersessions.Key{s.Key()})
		if err != nil || got[0] == nil {
			b.Fatalf("Get: %v %v", got, err)
		}
		clients[i] = got[0].Clients["app"]
	}
	var next atomic.Int64
	cpu0, arrived0 := cpuTime(b, pid), arrived.Load()
	b.ResetTimer()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		cs := clients[next.Add(1)-1]
		for n := 0; pb.Next(); n++ {
			cs.PreviousRefreshToken, cs.CurrentRefreshToken = cs.CurrentRefreshToken, "rt-"+strconv.Itoa(n+1)
			now := base.Add(time.Duration(n+1) * time.Millisecond)
			errs, err := usersessions.Rotate(ctx, store, []usersessions.Rotation{{Client: cs, LastRefresh: now, ExpiresAt: now.Add(time.Hour)}})
			if err != nil || errs[0] != nil {
				b.Errorf("Rotate: %v %v", errs, err)
				return
			}
			cs.Version++
		}
	})
	if _, err := store.PutRecord(ctx, &usersessions.Record{Kind: "bench-barrier", Key: strconv.Itoa(b.N), Value: []byte("x")}); err != nil {
		b.Fatalf("PutRecord: %v", err)
	}
	<-barrier
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b, pid)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(arrived.Load()-arrived0)/float64(b.N), "changes/op")
}

// cpuTime is the CPU time (user and system) of this process and, when pid is not 0, of
// process pid so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if pid == 0 {
		return t
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	for _, s := range f[11:13] {
		ticks, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		t += time.Duration(ticks) * time.Second / 100 // USER_HZ
	}
	return t
}

func BenchmarkRotatePlugin(b *testing.B)    { benchmarkRotate(b, "serve") }
func BenchmarkRotateInProcess(b *testing.B) { benchmarkRotate(b, "") }
