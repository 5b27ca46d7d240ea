package redisstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

func validFilter(f usersessions.Filter) error {
	if f.RealmID == "" {
		return fmt.Errorf("filter %+v has no realm: %w", f, spi.ErrInvalid)
	}
	return f.CheckText()
}

// selects is the contract's Filter rule.
func selects(f usersessions.Filter, s *usersessions.UserSession) bool {
	_, hasClient := s.Clients[f.ClientID]
	return s.RealmID == f.RealmID && f.Offline.Matches(s.Offline) &&
		(f.UserID == "" || s.UserID == f.UserID) &&
		(f.ClientID == "" || hasClient && usersessions.Live(s.Clients[f.ClientID].ExpiresAt, f.LiveAt)) &&
		usersessions.Live(s.ExpiresAt, f.LiveAt) &&
		(f.ActiveSince.IsZero() || !s.LastRefresh.Before(f.ActiveSince))
}

// inPartition spreads sessions over partitions by a hash of their id, so that the online
// and offline session of one id land in the same one.
func inPartition(part usersessions.Partition, id string) bool {
	if part.Count <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32()%uint32(part.Count)) == part.Index
}

// source is one sorted set of session ids read in lexical (= id) order, a chunk at a time.
type source struct {
	key     string
	offline bool
	after   string
	buf     []string
	done    bool
}

func (s *source) peek(ctx context.Context, rdb redis.Cmdable, chunk int) (string, bool, error) {
	if len(s.buf) == 0 && !s.done {
		min := "-"
		if s.after != "" {
			min = "(" + s.after
		}
		ids, err := rdb.ZRangeByLex(ctx, s.key, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(chunk)}).Result()
		if err != nil {
			return "", false, err
		}
		s.buf, s.done = ids, len(ids) < chunk
		if len(ids) > 0 {
			s.after = ids[len(ids)-1]
		}
	}
	if len(s.buf) == 0 {
		return "", false, nil
	}
	return s.buf[0], true, nil
}

// scan calls emit with every session f selects whose id is after `after` and that falls
// in part, in id order (online before offline for one id), until emit returns false. It
// reads the narrowest index the filter allows (a user's, a client's, or the realm's) and
// checks the rest of the filter on the sessions themselves.
func (p *Provider) scan(ctx context.Context, rdb redis.Cmdable, k keys, f usersessions.Filter, after string,
	part usersessions.Partition, emit func(*usersessions.UserSession) (bool, error)) error {
	const chunk = 100
	var sources []*source
	for _, offline := range []bool{false, true} {
		if !f.Offline.Matches(offline) {
			continue
		}
		key := k.index(f.RealmID, offline)
		switch {
		case f.UserID != "":
			key = k.userIndex(f.RealmID, offline, f.UserID)
		case f.ClientID != "":
			key = k.clientIndex(f.RealmID, offline, f.ClientID)
		}
		sources = append(sources, &source{key: key, offline: offline, after: after})
	}
	for {
		// Merge the sources into the next chunk of keys, in order.
		var batch []usersessions.Key
		for len(batch) < chunk {
			var next *source
			var nextID string
			for _, s := range sources {
				id, ok, err := s.peek(ctx, rdb, chunk)
				if err != nil {
					return err
				}
				if ok && (next == nil || id < nextID) {
					next, nextID = s, id
				}
			}
			if next == nil {
				break
			}
			next.buf = next.buf[1:]
			if inPartition(part, nextID) {
				batch = append(batch, usersessions.Key{RealmID: f.RealmID, ID: nextID, Offline: next.offline})
			}
		}
		if len(batch) == 0 {
			return nil
		}
		sessions, err := p.load(ctx, rdb, k, batch)
		if err != nil {
			return err
		}
		for _, s := range sessions {
			if s == nil || !selects(f, s) {
				continue // gone since the index was read, or not selected by the rest of f
			}
			more, err := emit(s)
			if err != nil || !more {
				return err
			}
		}
	}
}

// List implements usersessions.Provider. With usersessions.Both, a page that ends on an id
// with both an online and an offline session holds both, so it may hold Limit+1 sessions.
func (p *Provider) List(ctx context.Context, f usersessions.Filter, pg usersessions.Page) ([]*usersessions.UserSession, error) {
	if err := pg.CheckText(); err != nil {
		return nil, err
	}
	if err := validFilter(f); err != nil {
		return nil, err
	}
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	limit := pg.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	var out []*usersessions.UserSession
	err = p.scan(ctx, rdb, k, f, pg.After, usersessions.Partition{}, func(s *usersessions.UserSession) (bool, error) {
		if len(out) >= limit && s.ID != out[len(out)-1].ID {
			return false, nil
		}
		out = append(out, s)
		return true, nil
	})
	return out, fail(ctx, "list", err)
}

// Count implements usersessions.Provider. A filter on the realm, one user or one client
// alone is answered from the size of that index; others are counted by a scan.
func (p *Provider) Count(ctx context.Context, f usersessions.Filter) (int64, error) {
	if err := validFilter(f); err != nil {
		return 0, err
	}
	rdb, k, err := p.state()
	if err != nil {
		return 0, err
	}
	if f.ActiveSince.IsZero() && f.LiveAt.IsZero() && (f.UserID == "" || f.ClientID == "") {
		var n int64
		for _, offline := range []bool{false, true} {
			if !f.Offline.Matches(offline) {
				continue
			}
			key := k.index(f.RealmID, offline)
			switch {
			case f.UserID != "":
				key = k.userIndex(f.RealmID, offline, f.UserID)
			case f.ClientID != "":
				key = k.clientIndex(f.RealmID, offline, f.ClientID)
			}
			c, err := rdb.ZCard(ctx, key).Result()
			if err != nil {
				return 0, fail(ctx, "count", err)
			}
			n += c
		}
		return n, nil
	}
	var n int64
	err = p.scan(ctx, rdb, k, f, "", usersessions.Partition{}, func(*usersessions.UserSession) (bool, error) {
		n++
		return true, nil
	})
	return n, fail(ctx, "count", err)
}

// CountByClient implements usersessions.Provider.
func (p *Provider) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	if !liveAt.IsZero() {
		return p.countLiveByClient(ctx, realmID, offline, liveAt)
	}
	if err := usersessions.CheckText("realm id", realmID); err != nil {
		return nil, err
	}
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	clients, err := rdb.SMembers(ctx, k.clientSet(realmID, offline)).Result()
	if err != nil {
		return nil, fail(ctx, "count by client", err)
	}
	cards := make([]*redis.IntCmd, len(clients))
	_, err = rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range clients {
			cards[i] = pipe.ZCard(ctx, k.clientIndex(realmID, offline, c))
		}
		return nil
	})
	if err != nil {
		return nil, fail(ctx, "count by client", err)
	}
	out := make(map[string]int64, len(clients))
	for i, c := range clients {
		if n := cards[i].Val(); n > 0 {
			out[c] = n
		}
	}
	return out, nil
}

// Stream implements usersessions.Provider.
func (p *Provider) Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	if err := validFilter(req.Filter); err != nil {
		return err
	}
	rdb, k, err := p.state()
	if err != nil {
		return err
	}
	size := req.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	var page []*usersessions.UserSession
	var fnErr error
	deliver := func() bool {
		if err := ctx.Err(); err != nil {
			fnErr = err
			return false
		}
		fnErr = fn(page)
		page = nil
		return fnErr == nil
	}
	err = p.scan(ctx, rdb, k, req.Filter, "", req.Partition, func(s *usersessions.UserSession) (bool, error) {
		page = append(page, s)
		if len(page) < size {
			return true, nil
		}
		return deliver(), nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fail(ctx, "stream", err)
	}
	if len(page) > 0 && !deliver() {
		return fnErr
	}
	return nil
}

// countLiveByClient is CountByClient of the sessions live at liveAt: the client indexes do
// not know expiries, so it scans the realm's sessions of that kind.
func (p *Provider) countLiveByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	sel := usersessions.OnlineOnly
	if offline {
		sel = usersessions.OfflineOnly
	}
	out := map[string]int64{}
	f := usersessions.Filter{RealmID: realmID, Offline: sel, LiveAt: liveAt}
	err = p.scan(ctx, rdb, k, f, "", usersessions.Partition{}, func(s *usersessions.UserSession) (bool, error) {
		for id, c := range s.Clients {
			if usersessions.Live(c.ExpiresAt, liveAt) {
				out[id]++
			}
		}
		return true, nil
	})
	return out, fail(ctx, "count by client", err)
}
