// Command fill is bench/memory's in-process measurement: it fills a core/cache with N
// sessions through the offline preload's window (Preload.Import, as core/preload does)
// and prints, as one JSON line, what the process holds for them. bench/memory builds it
// in each tree it compares (it uses only the cache's public API, so the same source builds
// against the old representation), and runs it once per measurement, so that each figure
// comes from a fresh process.
//
//	go run ./bench/memory/fill -n 100000
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Result is what fill prints.
type Result struct {
	N          int
	Entries    int
	RSSBefore  int64   // VmRSS with the cache made and empty, after a GC
	RSSAfter   int64   // VmRSS with the N sessions cached, after a GC and a second's rest
	HeapBefore int64   // HeapAlloc after a GC, before
	HeapAfter  int64   // HeapAlloc after a GC, after
	OffHeap    int64   // cache.Stats().Bytes where the cache has it (records outside the Go heap)
	FillSec    float64 // the fill's elapsed
	FillGCCPU  float64 // CPU seconds the collector used during the fill (runtime/metrics)
	FillCPU    float64 // CPU seconds the whole process used during the fill
	FullGCSec  float64 // a forced full collection with the N sessions cached
	NumGC      uint32  // collections during the fill
}

func main() {
	n := flag.Int("n", 100000, "sessions to cache")
	flag.Parse()
	ctx := context.Background()
	store := memory.New(hclog.NewNullLogger())
	if err := store.Configure(ctx, spi.Config{spi.HostNodeID: "bench"}); err != nil {
		fatal(err)
	}
	c := cache.New(store, cache.Options{NodeID: "bench", MaxEntries: *n})
	go c.Follow(ctx)
	for !c.Stats().Following {
		time.Sleep(time.Millisecond)
	}
	// The sessions' shared values, each its own allocation as when read from a store.
	var res Result
	res.N = *n
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.RSSBefore, res.HeapBefore = rss(), int64(ms.HeapAlloc)
	gcBefore, cpuBefore := cpuSeconds()
	numGC := ms.NumGC

	start := time.Now()
	p, err := c.BeginPreload()
	if err != nil {
		fatal(err)
	}
	p.Reserve(*n)
	const page = 1000
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := 0; i < *n; i += page {
		sessions := make([]*usersessions.UserSession, min(page, *n-i))
		for j := range sessions {
			sessions[j] = typical(i+j, now)
		}
		if _, _, err := p.Import(ctx, sessions); err != nil {
			fatal(err)
		}
	}
	p.Close()
	res.FillSec = time.Since(start).Seconds()
	gcAfter, cpuAfter := cpuSeconds()
	res.FillGCCPU, res.FillCPU = gcAfter-gcBefore, cpuAfter-cpuBefore
	runtime.ReadMemStats(&ms)
	res.NumGC = ms.NumGC - numGC

	gcStart := time.Now()
	runtime.GC()
	res.FullGCSec = time.Since(gcStart).Seconds()
	time.Sleep(time.Second)
	runtime.ReadMemStats(&ms)
	res.RSSAfter, res.HeapAfter = rss(), int64(ms.HeapAlloc)
	st := c.Stats()
	res.Entries = st.Entries
	// Stats.Bytes is the new representation's; the old one kept everything in the heap.
	if f := reflect.ValueOf(st).FieldByName("Bytes"); f.IsValid() {
		res.OffHeap = f.Int()
	}
	runtime.KeepAlive(c)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fatal(err)
	}
}

var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"okhttp/4.12.0",
}

// The notes core/session writes (core/session lineage.go, device.go, open.go).
const (
	noteOfflineAccess     = "sessiond.offline_access"
	noteGeneration        = "sessiond.refresh-token-generation"
	noteGenerationStart   = "sessiond.refresh-token-generation-start"
	notePrevGeneration    = "sessiond.refresh-token-previous-generation"
	notePrevGenerationSt  = "sessiond.refresh-token-previous-generation-start"
	noteLastIP            = "sessiond.last_ip"
	maxAgeOfflineSessions = 30 * 24 * time.Hour
)

// typical is session i as sessiond's flows leave one (core/session Open and Refresh), in
// four shapes taking turns:
//
//	0 an online login, one client session, rotation off (no token ids, no notes);
//	1 an online login to two clients with Revoke Refresh Token on (each client session
//	  with its refresh-token id and its generation's notes);
//	2 an offline login: the offline-access note, one client session with its lineage;
//	3 an online session refreshed once with rotation on from another address: current
//	  and previous token ids, both generations' notes, the rotation time, the last address.
//
// Every string is its own allocation, as when a store has read it.
func typical(i int, now time.Time) *usersessions.UserSession {
	str := func(s string) string { return strings.Clone(s) }
	id := strings.ToLower(rand.Text())
	started := now.Add(-time.Duration(i%(8*60)) * time.Minute) // logged in within the past 8 hours
	s := &usersessions.UserSession{ID: id, RealmID: str("bench"),
		UserID:        fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i&0xffff, i&0xfff, (i>>12)&0xfff, i*7919),
		LoginUsername: fmt.Sprintf("user%d", i), IPAddress: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		UserAgent: str(userAgents[i%len(userAgents)]), AuthMethod: str("openid-connect"), State: usersessions.State(str("LOGGED_IN")),
		Started: started, LastRefresh: started, ExpiresAt: now.Add(time.Duration(30+i%60) * time.Minute), Version: 1,
		Clients: map[string]*usersessions.ClientSession{}}
	client := func(clientID, scope string, rotation bool) *usersessions.ClientSession {
		cs := &usersessions.ClientSession{UserSessionID: id, RealmID: s.RealmID, ClientID: str(clientID), Offline: s.Offline,
			Started: started, LastRefresh: started, ExpiresAt: s.ExpiresAt, AuthMethod: str("openid-connect"),
			Action: str("AUTHENTICATE"), Scope: str(scope), Version: 1}
		if rotation {
			cs.CurrentRefreshToken = strings.ToLower(rand.Text())
			cs.Notes = map[string]string{str(noteGeneration): str(cs.CurrentRefreshToken),
				str(noteGenerationStart): strconv.FormatInt(started.Unix(), 10)}
		}
		s.Clients[cs.ClientID] = cs
		return cs
	}
	switch i % 4 {
	case 0:
		client("app", "openid profile email", false)
	case 1:
		client("app", "openid profile email", true)
		client("account-console", "openid", true)
	case 2:
		s.Offline = true
		s.ExpiresAt = now.Add(maxAgeOfflineSessions)
		s.Notes = map[string]string{str(noteOfflineAccess): str("true")}
		client("app", "openid offline_access", true).ExpiresAt = s.ExpiresAt
	case 3:
		cs := client("app", "openid profile email", true)
		refreshed := started.Add(5 * time.Minute)
		s.LastRefresh, cs.LastRefresh, cs.RotatedAt = refreshed, refreshed, refreshed
		cs.PreviousRefreshToken = cs.CurrentRefreshToken
		cs.CurrentRefreshToken = strings.ToLower(rand.Text())
		cs.Notes[str(notePrevGeneration)] = cs.Notes[noteGeneration]
		cs.Notes[str(notePrevGenerationSt)] = cs.Notes[noteGenerationStart]
		cs.Notes[noteGeneration] = str(cs.CurrentRefreshToken)
		cs.Notes[noteGenerationStart] = strconv.FormatInt(refreshed.Unix(), 10)
		cs.Notes[str(noteLastIP)] = fmt.Sprintf("192.168.%d.%d", i>>8&255, i&255)
	}
	return s
}

// rss is this process's resident memory (VmRSS) in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fatal(fmt.Errorf("resident memory needs Linux's /proc: %w", err))
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				fatal(err)
			}
			return kb << 10
		}
	}
	fatal(fmt.Errorf("no VmRSS in /proc/self/status"))
	return 0
}

// cpuSeconds is the CPU the collector and the whole process have used so far.
func cpuSeconds() (gc, total float64) {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64(), s[1].Value.Float64()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fill:", err)
	os.Exit(1)
}
