package host

import (
	"context"
	"sync"

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
	attempt int  // restart attempt under way while cur is nil
	stopped bool // the host stopped; no process will come back
}

func (c *switchConn) conn() (*grpc.ClientConn, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch {
	case c.cur != nil:
		return c.cur, nil
	case c.stopped:
		return nil, status.Errorf(codes.Unavailable, "provider %s is stopped", c.name)
	default:
		return nil, status.Errorf(codes.Unavailable, "provider %s is restarting (attempt %d)", c.name, c.attempt)
	}
}

// up points the conn at a live process.
func (c *switchConn) up(cc *grpc.ClientConn) {
	c.mu.Lock()
	c.cur, c.attempt = cc, 0
	c.mu.Unlock()
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
	cc, err := c.conn()
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

func (c *switchConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := c.conn()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}
