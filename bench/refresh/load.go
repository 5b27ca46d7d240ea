package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/bench/internal/benchproc"
)

// client is the load's HTTP client: one kept-alive connection per caller.
func client(callers int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: callers * 2, MaxIdleConnsPerHost: callers * 2, MaxConnsPerHost: callers * 2,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
}

type tokens struct {
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// open opens n sessions of realm through the front-end API, with `parallel` requests at a
// time, and returns their refresh tokens.
func open(ctx context.Context, hc *http.Client, d *daemon, realm string, n, parallel int) ([]string, error) {
	out := make([]string, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				body := fmt.Sprintf(`{"client_id":"bench","user_id":"user-%d","username":"user-%d","ip_address":"127.0.0.1","auth_method":"pwd"}`, i, i)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/realms/"+realm+"/sessions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+d.frontend)
				req.Header.Set("Content-Type", "application/json")
				t, status, err := call(hc, req)
				if err == nil && (status != http.StatusCreated || t.RefreshToken == "") {
					err = fmt.Errorf("open session: HTTP %d %s %s", status, t.Error, t.Description)
				}
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
				out[i] = t.RefreshToken
			}
		}()
	}
	wg.Wait()
	return out, first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func call(hc *http.Client, req *http.Request) (tokens, int, error) {
	var t tokens
	resp, err := hc.Do(req)
	if err != nil {
		return t, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return t, resp.StatusCode, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, resp.StatusCode, fmt.Errorf("HTTP %d, body %.200q: %w", resp.StatusCode, b, err)
	}
	return t, resp.StatusCode, nil
}

// loadResult is one measured refresh load.
type loadResult struct {
	ok, failed int64
	elapsed    time.Duration
	firstErr   string
	perSecond  []int64 // completions in each second of the measured window
}

func (r loadResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// refresh runs `callers` goroutines, each refreshing its own share of the sessions
// (session i belongs to caller i mod callers) in turn, always with the newest refresh
// token it holds, for warmup+d; it counts refreshes answered 200 in the d after warmup.
// started, when set, is called as the measured window opens; tick, when set, is called
// every second of the measured window with that second's count.
func refresh(ctx context.Context, hc *http.Client, d *daemon, realm string, toks []string, callers int, warmup, dur time.Duration, started func(), tick func(sec int, n int64)) loadResult {
	var (
		ok, failed atomic.Int64
		counting   atomic.Bool
		mu         sync.Mutex
		firstErr   string
		wg         sync.WaitGroup
	)
	endpoint := d.base + "/realms/" + realm + "/protocol/openid-connect/token"
	stop := make(chan struct{})
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int
			for i := w; i < len(toks); i += callers {
				mine = append(mine, i)
			}
			if len(mine) == 0 {
				return
			}
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				i := mine[k%len(mine)]
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {toks[i]}}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
				req.SetBasicAuth("bench", "bench-secret")
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				t, status, err := call(hc, req)
				if err == nil && (status != http.StatusOK || t.RefreshToken == "") {
					err = fmt.Errorf("refresh: HTTP %d %s: %s", status, t.Error, t.Description)
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if counting.Load() {
						failed.Add(1)
					}
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				toks[i] = t.RefreshToken
				if counting.Load() {
					ok.Add(1)
				}
			}
		}()
	}
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
	}
	if started != nil {
		started()
	}
	counting.Store(true)
	t0 := time.Now()
	var per []int64
	var last int64
	for sec := 1; time.Since(t0) < dur && ctx.Err() == nil; sec++ {
		wait := time.Until(t0.Add(time.Duration(sec) * time.Second))
		if rest := dur - time.Since(t0); wait > rest {
			wait = rest
		}
		time.Sleep(wait)
		n := ok.Load()
		per = append(per, n-last)
		if tick != nil {
			tick(sec, n-last)
		}
		last = n
	}
	counting.Store(false)
	elapsed := time.Since(t0)
	n := ok.Load()
	close(stop)
	wg.Wait()
	return loadResult{ok: n, failed: failed.Load(), elapsed: elapsed, firstErr: firstErr, perSecond: per}
}

// cpuSeconds is the user+system CPU time the processes have used, from /proc.
func cpuSeconds(pids []int) float64 { return benchproc.CPUTime(pids...).Seconds() }
