package host

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// switchConn is the grpc.ClientConnInterface under a Plugin's provider client. The client
// is built once over it; the supervisor points it at each new process, so callers keep one
// spi.Provider across restarts. While no process is live it fails every call at once with
// codes.Unavailable, which the wire client turns into spi.ErrUnavailable: a caller gets a
// retryable error (HTTP 503) instead of hanging until the plugin is back.
type switchConn struct {
	name string // "<spi>/<id>", for the error text

	mu      sync.RWMutex
	cur     *grpc.ClientConn
	served  *atomic.Bool // set by the first call cur answers without error
	attempt int          // restart attempt under way while cur is nil
	stopped bool         // the host stopped; no process will come back
}

func (c *switchConn) conn() (*grpc.ClientConn, *atomic.Bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch {
	case c.cur != nil:
		return c.cur, c.served, nil
	case c.stopped:
		return nil, nil, status.Errorf(codes.Unavailable, "provider %s is stopped", c.name)
	default:
		return nil, nil, status.Errorf(codes.Unavailable, "provider %s is restarting (attempt %d)", c.name, c.attempt)
	}
}

// up points the conn at a live process. The flag it returns turns true once that process
// has answered a call without error: it did useful work, so its death is not part of a
// crash loop.
func (c *switchConn) up(cc *grpc.ClientConn) *atomic.Bool {
	served := new(atomic.Bool)
	c.mu.Lock()
	c.cur, c.attempt, c.served = cc, 0, served
	c.mu.Unlock()
	return served
}

// down makes calls fail fast while restart attempt n is prepared.
func (c *switchConn) down(attempt int) {
	c.mu.Lock()
	c.cur, c.attempt = nil, attempt
	c.mu.Unlock()
}

func (c *switchConn) stop() {
	c.mu.Lock()
	c.cur, c.stopped = nil, true
	c.mu.Unlock()
}

func (c *switchConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, served, err := c.conn()
	if err != nil {
		return err
	}
	err = cc.Invoke(ctx, method, args, reply, opts...)
	if err == nil {
		served.Store(true)
	}
	return err
}

func (c *switchConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, _, err := c.conn()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}
