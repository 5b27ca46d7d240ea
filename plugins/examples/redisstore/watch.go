package redisstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Watch implements usersessions.Provider with Redis pub/sub. Every write publishes its
// change in the transaction that makes it, so once SUBSCRIBE is confirmed every later
// write reaches this subscriber: only then is Subscribed reported. The subscription has a
// connection of its own; go-redis would quietly reconnect it and lose what was published
// meanwhile, so any error on it ends Watch with spi.ErrUnavailable instead, and the caller,
// told its cache may be stale, subscribes again.
func (p *Provider) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	rdb, k, err := p.state()
	if err != nil {
		return err
	}
	p.mu.RLock()
	interval, origin := p.pingInterval, p.origin
	p.mu.RUnlock()

	ps := rdb.Subscribe(ctx, k.channel())
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription ends a Receive in progress.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	broken := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("redis change feed on %s broke: %w: %w", k.channel(), spi.ErrUnavailable, err)
	}

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, interval)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && isTimeout(err) && !pinged:
			// Quiet for a while: make sure the connection still carries something.
			if err := ps.Ping(ctx); err != nil {
				return broken(err)
			}
			pinged = true
			continue
		case err != nil && isTimeout(err):
			return broken(fmt.Errorf("no answer to a ping within %v", interval))
		case err != nil:
			return broken(err)
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == k.channel() {
				if err := fn(usersessions.Change{Kind: usersessions.Subscribed, Origin: origin}); err != nil {
					return err
				}
			}
		case *redis.Message:
			var c change
			if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
				p.log.Warn("ignoring a message on the change channel that is not a change", "channel", m.Channel, "error", err)
				continue
			}
			if err := fn(c.change()); err != nil {
				return err
			}
		case *redis.Pong:
		}
	}
}
