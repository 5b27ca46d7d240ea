package cache

import (
	"context"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// Reload forgets the cached copies of keys and reads them from the store again. A caller
// about to refuse a request because of what a cached copy says uses it first: another
// node's change may not have reached this node's cache yet, and a refusal must not rest
// on that.
func (c *Cache) Reload(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	c.mu.Lock()
	for _, k := range keys {
		c.dropLocked(k)
	}
	c.mu.Unlock()
	return c.Get(ctx, keys)
}
