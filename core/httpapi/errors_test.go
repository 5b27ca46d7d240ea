package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/internal/testlog"
)

// cancelledAdmin answers a push with the error its context ends with, as the core does when
// the caller goes away; own says to fail with context.Canceled of its own instead.
type cancelledAdmin struct {
	httpapi.Admin // nil: only the methods below are called
	own           bool
	started       chan struct{}
	mu            sync.Mutex
	events        []admin.AuditEvent
}

func (a *cancelledAdmin) Audit(e admin.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *cancelledAdmin) audited() []admin.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]admin.AuditEvent(nil), a.events...)
}

func (a *cancelledAdmin) PushRevocation(ctx context.Context, realm, _ string) (admin.Report, error) {
	if a.own {
		return admin.Report{}, fmt.Errorf("push the not-before of realm %q: %w", realm, context.Canceled)
	}
	close(a.started)
	<-ctx.Done()
	return admin.Report{}, fmt.Errorf("push the not-before of realm %q: %w", realm, ctx.Err())
}

// A caller that goes away is not a server failure: no error is logged, and the request is
// answered (and audited) as 499, the status proxies use for a client that closed the
// request. A cancellation that is not the caller's stays a 500.
func TestCallerGoneIsNotAServerError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		own       bool
		status    int
		errorLogs bool
	}{
		{"the caller went away", false, 499, false},
		{"a cancellation of the server's own", true, http.StatusInternalServerError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged testlog.Buffer
			log := hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Trace})
			fake := &cancelledAdmin{own: tc.own, started: make(chan struct{})}
			srv := httptest.NewServer(httpapi.New(log, httpapi.Deps{Ready: ready{}, AdminToken: adminToken, Admin: fake}))
			t.Cleanup(srv.Close)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if !tc.own {
				go func() {
					<-fake.started
					cancel()
				}()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/admin/realms/"+realmName+"/push-revocation", nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := srv.Client().Do(req)
			if tc.own {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
			} else if !errors.Is(err, context.Canceled) {
				t.Fatalf("request = %v, want it cancelled", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(fake.audited()) == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			events := fake.audited()
			if len(events) != 1 || events[0].Status != tc.status || events[0].Outcome != admin.OutcomeFailed {
				t.Fatalf("audit events %+v, want one failed with status %d", events, tc.status)
			}
			if got := strings.Contains(logged.String(), "[ERROR]"); got != tc.errorLogs {
				t.Errorf("error logged: %v, want %v:\n%s", got, tc.errorLogs, logged.String())
			}
		})
	}
}
