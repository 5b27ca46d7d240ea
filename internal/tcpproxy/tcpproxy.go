// Package tcpproxy is a TCP proxy that tests put between a client and a server (typically
// sessiond, or a provider, and PostgreSQL) so that they can take the server away and give
// it back: Cut closes every open connection and refuses new ones until Restore.
//
// A refused connection is accepted and closed at once, so the client sees the connection
// end during its handshake (EOF, "connection reset"), as when a server goes away, without
// the proxy ever giving up its port: Restore cannot lose the address to another process.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
)

// Proxy forwards every connection made to Addr to its target.
type Proxy struct {
	listener net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	target string
	down   bool
	conns  map[net.Conn]struct{}

	accepted atomic.Int64 // connections forwarded
	refused  atomic.Int64 // connections closed at once because the proxy was cut
}

// New listens on a free port of 127.0.0.1 and forwards each connection to target
// ("host:port"). Close stops it.
func New(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, listener: l, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr is the address ("127.0.0.1:port") clients connect to.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// Repoint forwards new connections to target and closes the open ones, as an operator's
// proxy does when it is switched to a new primary: no client keeps talking to the old one.
func (p *Proxy) Repoint(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for c := range p.conns {
		c.Close()
	}
}

// URL returns raw (a URL such as postgres://user@host:5432/db?…) with its host:port
// replaced by the proxy's address.
func (p *Proxy) URL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", errors.New("tcpproxy: URL has no host to replace")
	}
	u.Host = p.Addr()
	return u.String(), nil
}

// Cut closes every open connection, both sides, and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// IsCut reports whether the proxy is refusing connections.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// Accepted is how many connections were forwarded so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Refused is how many connections were closed at once because the proxy was cut.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Open is how many connections (client and server sides) are open now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits until all its goroutines have
// ended. It may be called more than once.
func (p *Proxy) Close() error {
	err := p.listener.Close()
	p.Cut()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *Proxy) acceptLoop() {
	for {
		c, err := p.listener.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) serve(client net.Conn) {
	if !p.track(client) {
		p.refused.Add(1)
		client.Close()
		return
	}
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.Target())
	if err != nil {
		return
	}
	if !p.track(server) {
		p.refused.Add(1)
		server.Close()
		return
	}
	defer p.untrack(server)
	p.accepted.Add(1)
	var pipes sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side ending ends the pair, as a vanished server would.
		dst.Close()
		src.Close()
	}
	pipes.Go(func() { pipe(server, client) })
	pipes.Go(func() { pipe(client, server) })
	pipes.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.Close()
	delete(p.conns, c)
}
