// Package revocationpushtest is the conformance suite every revocation-push provider must
// pass, in-process or through a plugin boundary. It uses only the revocationpush.Provider
// interface, and an HTTP server of its own playing the registered clients.
//
// A provider's own test calls Run with a function that opens a fresh provider, not yet
// configured, and the options it works with. Sub-test names cite the rule of the contract
// they check. A provider that delivers elsewhere than the clients' URLs (a message broker)
// passes too: the rules about answers from a client apply to the notices that reached it.
package revocationpushtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/spitest"
)

// Opener returns a fresh provider that has not been configured, and the options it works
// with (each check configures it with them, or with one of them made malformed). It
// registers its own cleanup.
type Opener = func(t *testing.T) (revocationpush.Provider, spi.Config)

type check struct {
	name string
	run  func(t *testing.T, p revocationpush.Provider, c *clients)
}

// Run runs the suite: one sub-test per rule, each against its own provider from open.
func Run(t *testing.T, open Opener) {
	t.Helper()
	t.Run("Provider", func(t *testing.T) {
		generic := func(t *testing.T) (spi.Provider, spi.Config) { return open(t) }
		for _, c := range spitest.Checks(spi.RevocationPush) {
			t.Run(c.Name, func(t *testing.T) { c.Run(t, generic) })
		}
	})
	t.Run("Push", func(t *testing.T) {
		for _, c := range pushChecks() {
			t.Run(c.name, func(t *testing.T) {
				p, cfg := open(t)
				if err := p.Configure(t.Context(), cfg); err != nil {
					t.Fatalf("Configure: %v", err)
				}
				c.run(t, p, newClients(t))
			})
		}
	})
}

// The statuses the clients answer, by the first segment of the path of their URLs.
const (
	accepting = "ok"      // 200
	down      = "down"    // 503: worth retrying
	refusing  = "refuses" // 400: not worth retrying
)

// clients is an HTTP server that plays every registered client: the URLs of a notice are
// /<behaviour>/<notice id>/…, and it records which notices reached it.
type clients struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]string // notice id -> behaviour
}

func newClients(t *testing.T) *clients {
	c := &clients{seen: map[string]string{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
		if len(parts) < 2 {
			http.NotFound(w, r)
			return
		}
		c.mu.Lock()
		c.seen[parts[1]] = parts[0]
		c.mu.Unlock()
		switch parts[0] {
		case accepting:
			w.WriteHeader(http.StatusOK)
		case down:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// reached says whether a notice reached the clients' server, and how it answered.
func (c *clients) reached(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.seen[id]
	return b, ok
}

// url is the URL of a client that behaves as b, for notice id.
func (c *clients) url(b, id, rest string) string {
	return c.srv.URL + "/" + b + "/" + id + "/" + rest
}

// tokenMark is in every notice's token: a result never repeats it.
const tokenMark = "conformance-token-must-not-leak"

// notice returns a notice of action for a client behaving as b, with every field set.
func (c *clients) notice(id, action, b string) revocationpush.Notice {
	n := revocationpush.Notice{
		ID: id, Action: action, RealmID: "conformance", ClientID: "client-" + id,
		AdminURL: c.url(b, id, "admin"), NotBefore: time.Unix(1900000000, 0),
		Token:   "eyJhbGciOiJSUzI1NiJ9." + tokenMark + "." + id,
		Expires: time.Now().Add(time.Minute).Truncate(time.Second),
	}
	switch action {
	case revocationpush.Logout:
		n.SessionIDs = []string{"adapter-session-1", "adapter-session-2"}
	case revocationpush.BackchannelLogout:
		n.LogoutURL = c.url(b, id, "backchannel-logout")
		n.SessionIDs = []string{"sid-1"}
	}
	return n
}

// mixed is a batch of every action for clients of every behaviour.
func (c *clients) mixed(prefix string) []revocationpush.Notice {
	var out []revocationpush.Notice
	for _, action := range []string{revocationpush.PushNotBefore, revocationpush.Logout, revocationpush.BackchannelLogout} {
		for _, b := range []string{accepting, down, refusing} {
			out = append(out, c.notice(fmt.Sprintf("%s-%s-%s", prefix, strings.ToLower(action), b), action, b))
		}
	}
	return out
}

// push calls Push and checks what every answer must be: one consistent result per notice,
// in order, naming its notice.
func push(t *testing.T, ctx context.Context, p revocationpush.Provider, notices []revocationpush.Notice) []revocationpush.Result {
	t.Helper()
	results, err := p.Push(ctx, notices)
	if err != nil {
		t.Fatalf("Push of %d notices: %v", len(notices), err)
	}
	checkResults(t, notices, results)
	if len(results) != len(notices) {
		t.FailNow()
	}
	return results
}

func checkResults(t *testing.T, notices []revocationpush.Notice, results []revocationpush.Result) {
	t.Helper()
	if len(results) != len(notices) {
		t.Errorf("Push answered %d results for %d notices; want one per notice, in order", len(results), len(notices))
		return
	}
	for i, r := range results {
		n := notices[i]
		if r.NoticeID != n.ID {
			t.Errorf("result %d names notice %q, want %q: one result per notice, in order", i, r.NoticeID, n.ID)
		}
		switch {
		case r.OK && r.Error != "":
			t.Errorf("notice %s: OK with Error %q", n.ID, r.Error)
		case r.OK && r.Retry:
			t.Errorf("notice %s: OK and Retry: a delivered notice is not tried again", n.ID)
		case r.OK && r.Target == "":
			t.Errorf("notice %s: OK with no Target: a delivered notice went somewhere", n.ID)
		case !r.OK && r.Error == "":
			t.Errorf("notice %s: not OK and no Error saying why", n.ID)
		case r.Target == "" && r.Retry:
			t.Errorf("notice %s: no Target chosen, yet Retry: without a target trying again cannot help", n.ID)
		}
		if strings.Contains(r.Target, tokenMark) || strings.Contains(r.Error, tokenMark) {
			t.Errorf("notice %s: the result repeats the notice's token: Target %q, Error %q", n.ID, r.Target, r.Error)
		}
		if u, err := url.Parse(r.Target); err == nil && u.User != nil {
			t.Errorf("notice %s: Target %q carries user information", n.ID, r.Target)
		}
		if r.Status < 0 || r.Status > 599 {
			t.Errorf("notice %s: Status %d is no HTTP status", n.ID, r.Status)
		}
	}
}

func pushChecks() []check {
	return []check{
		{"an empty batch has no results and no error", func(t *testing.T, p revocationpush.Provider, c *clients) {
			for _, notices := range [][]revocationpush.Notice{nil, {}} {
				results, err := p.Push(t.Context(), notices)
				if err != nil || len(results) != 0 {
					t.Errorf("Push(%#v) = %v, %v; want no results and no error", notices, results, err)
				}
			}
		}},
		{"one consistent result per notice, in order, naming its notice", func(t *testing.T, p revocationpush.Provider, c *clients) {
			push(t, t.Context(), p, c.mixed("order"))
		}},
		{"a client that answered 200 counts as delivered, 5xx is retried, 4xx is not", func(t *testing.T, p revocationpush.Provider, c *clients) {
			notices := c.mixed("answer")
			results := push(t, t.Context(), p, notices)
			reached := 0
			for i, n := range notices {
				b, ok := c.reached(n.ID)
				if !ok {
					continue // delivered elsewhere, or not at all
				}
				reached++
				r := results[i]
				switch b {
				case accepting:
					if !r.OK {
						t.Errorf("notice %s reached a client that answered 200, yet the result is %+v", n.ID, r)
					}
				case down:
					if r.OK || !r.Retry {
						t.Errorf("notice %s reached a client that answered 503, yet the result is %+v; want not OK and Retry", n.ID, r)
					}
				case refusing:
					if r.OK || r.Retry {
						t.Errorf("notice %s reached a client that answered 400, yet the result is %+v; want not OK and no Retry", n.ID, r)
					}
				}
			}
			t.Logf("%d of %d notices reached the clients' URLs", reached, len(notices))
		}},
		{"a result names no user information and no token", func(t *testing.T, p revocationpush.Provider, c *clients) {
			var notices []revocationpush.Notice
			for i, n := range c.mixed("userinfo") {
				for _, u := range []*string{&n.AdminURL, &n.LogoutURL} {
					if *u != "" {
						*u = strings.Replace(*u, "http://", "http://conformance-user:conformance-password@", 1)
					}
				}
				n.ID = fmt.Sprintf("%s-%d", n.ID, i)
				notices = append(notices, n)
			}
			for i, r := range push(t, t.Context(), p, notices) {
				if strings.Contains(r.Target, "conformance-password") || strings.Contains(r.Error, "conformance-password") {
					t.Errorf("notice %s: the result names the password of its URL: Target %q, Error %q", notices[i].ID, r.Target, r.Error)
				}
			}
		}},
		{"a client with no URL at all gets a result like every other", func(t *testing.T, p revocationpush.Provider, c *clients) {
			n := c.notice("no-url", revocationpush.PushNotBefore, accepting)
			n.AdminURL, n.LogoutURL = "", ""
			bc := c.notice("no-url-bc", revocationpush.BackchannelLogout, accepting)
			bc.AdminURL, bc.LogoutURL = "", ""
			push(t, t.Context(), p, []revocationpush.Notice{n, bc, c.notice("beside-no-url", revocationpush.PushNotBefore, accepting)})
		}},
		{"a malformed notice fails alone, not the batch", func(t *testing.T, p revocationpush.Provider, c *clients) {
			bad := []revocationpush.Notice{
				{ID: "unknown-action", Action: "NO_SUCH_ACTION", RealmID: "conformance", ClientID: "c"},
				{ID: "no-token", Action: revocationpush.PushNotBefore, RealmID: "conformance", ClientID: "c", AdminURL: c.url(refusing, "no-token", "admin")},
				{ID: "not-a-url", Action: revocationpush.PushNotBefore, RealmID: "conformance", ClientID: "c", AdminURL: "::not a url::", Token: "x"},
				{ID: "", Action: revocationpush.PushNotBefore},
			}
			good := c.notice("beside-malformed", revocationpush.PushNotBefore, accepting)
			results := push(t, t.Context(), p, append(bad, good))
			if _, ok := c.reached(good.ID); ok && !results[len(bad)].OK {
				t.Errorf("the well-formed notice beside malformed ones reached its client and was not delivered: %+v", results[len(bad)])
			}
		}},
		{"a large batch keeps its order", func(t *testing.T, p revocationpush.Provider, c *clients) {
			var notices []revocationpush.Notice
			for i := range 300 {
				notices = append(notices, c.notice(fmt.Sprintf("large-%03d", i), revocationpush.PushNotBefore, accepting))
			}
			push(t, t.Context(), p, notices)
		}},
		{"concurrent pushes each get their own results", func(t *testing.T, p revocationpush.Provider, c *clients) {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					notices := c.mixed(fmt.Sprintf("concurrent%d", g))
					results, err := p.Push(t.Context(), notices)
					if err != nil {
						t.Errorf("Push: %v", err)
						return
					}
					checkResults(t, notices, results)
				})
			}
			wg.Wait()
		}},
		{"after the context ended nothing is reported delivered", func(t *testing.T, p revocationpush.Provider, c *clients) {
			for _, e := range spitest.Ended(t) {
				t.Run(e.Name, func(t *testing.T) {
					notices := c.mixed("ended-" + strings.ReplaceAll(e.Name, " ", "-"))
					results, err := p.Push(e.Ctx, notices)
					if err != nil {
						if !errors.Is(err, e.Err) {
							t.Errorf("Push with a context %s: %v; want results, or an error wrapping %v", e.Name, err, e.Err)
						}
						return
					}
					checkResults(t, notices, results)
					for i, r := range results {
						if r.OK {
							t.Errorf("notice %s: reported delivered by a Push whose context had ended: %+v", notices[i].ID, r)
						}
					}
				})
			}
		}},
	}
}
