package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// publish queues the PUBLISH of c in the transaction that makes the change.
func (p *Provider) publish(ctx context.Context, pipe redis.Pipeliner, k keys, c usersessions.Change) {
	p.mu.RLock()
	c.Origin = p.origin
	p.mu.RUnlock()
	pipe.Publish(ctx, k.channel(), encode(toChange(c)))
}

// indexSession queues the index entries of user session s (its client sessions are
// indexed apart, by indexClient).
func indexSession(ctx context.Context, pipe redis.Pipeliner, k keys, s usersessions.Key, userID string, expires int64) {
	pipe.ZAdd(ctx, k.index(s.RealmID, s.Offline), redis.Z{Member: s.ID})
	pipe.ZAdd(ctx, k.userIndex(s.RealmID, s.Offline, userID), redis.Z{Member: s.ID})
	pipe.ZAdd(ctx, k.expiry(), redis.Z{Score: float64(expires), Member: member(s)})
}

func indexClient(ctx context.Context, pipe redis.Pipeliner, k keys, c usersessions.ClientKey, expires int64) {
	s := c.Session
	pipe.ZAdd(ctx, k.clientIndex(s.RealmID, s.Offline, c.ClientID), redis.Z{Member: s.ID})
	pipe.SAdd(ctx, k.clientSet(s.RealmID, s.Offline), c.ClientID)
	pipe.ZAdd(ctx, k.clientExpiry(), redis.Z{Score: float64(expires), Member: clientMember(c)})
}

func unindexClient(ctx context.Context, pipe redis.Pipeliner, k keys, c usersessions.ClientKey) {
	s := c.Session
	pipe.ZRem(ctx, k.clientIndex(s.RealmID, s.Offline, c.ClientID), s.ID)
	pipe.ZRem(ctx, k.clientExpiry(), clientMember(c))
}

// Create implements usersessions.Provider.
func (p *Provider) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	return eachItem(ctx, "create", sessions, func(s *usersessions.UserSession) error {
		if s == nil {
			return fmt.Errorf("create of a nil session: %w", spi.ErrInvalid)
		}
		key := s.Key()
		if err := validKey(key); err != nil {
			return err
		}
		if err := s.CheckText(); err != nil { // the text every provider stores alike
			return err
		}
		sk, ck := k.session(key), k.clients(key)
		return optimistic(ctx, rdb, func(tx *redis.Tx) error {
			n, err := tx.Exists(ctx, sk).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("create of session %s: %w", keyString(key), spi.ErrExists)
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				st := toStored(s, 1)
				pipe.Set(ctx, sk, encode(st), 0)
				pipe.Del(ctx, ck)
				indexSession(ctx, pipe, k, key, s.UserID, st.ExpiresAt)
				for id, c := range s.Clients {
					if c == nil {
						continue
					}
					sc := toStoredClient(c, 1)
					pipe.HSet(ctx, ck, id, encode(sc))
					indexClient(ctx, pipe, k, usersessions.ClientKey{Session: key, ClientID: id}, sc.ExpiresAt)
				}
				p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Upserted, Session: key})
				return nil
			})
			return err
		}, sk, ck)
	})
}

// Get implements usersessions.Provider. All keys are read in one MULTI/EXEC.
func (p *Provider) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	out, err := p.load(ctx, rdb, k, keys)
	return out, fail(ctx, "get", err)
}

// load reads sessions with their client sessions in one transaction; missing ones are nil.
func (p *Provider) load(ctx context.Context, rdb redis.Cmdable, k keys, ks []usersessions.Key) ([]*usersessions.UserSession, error) {
	if len(ks) == 0 {
		return nil, nil
	}
	gets := make([]*redis.StringCmd, len(ks))
	hashes := make([]*redis.MapStringStringCmd, len(ks))
	_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, key := range ks {
			gets[i] = pipe.Get(ctx, k.session(key))
			hashes[i] = pipe.HGetAll(ctx, k.clients(key))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]*usersessions.UserSession, len(ks))
	for i, key := range ks {
		raw, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if out[i], err = assemble(key, raw, hashes[i].Val()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Update implements usersessions.Provider.
func (p *Provider) Update(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	return eachItem(ctx, "update", sessions, func(s *usersessions.UserSession) error {
		if s == nil {
			return fmt.Errorf("update of a nil session: %w", spi.ErrInvalid)
		}
		key := s.Key()
		if err := validKey(key); err != nil {
			return err
		}
		if err := s.CheckText(); err != nil {
			return err
		}
		sk := k.session(key)
		return optimistic(ctx, rdb, func(tx *redis.Tx) error {
			old, err := getSession(ctx, tx, sk, key)
			if err != nil {
				return err
			}
			if old.Version != s.Version {
				return fmt.Errorf("update of session %s at Version %d, stored %d: %w", keyString(key), s.Version, old.Version, spi.ErrConflict)
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				st := toStored(s, old.Version+1)
				pipe.Set(ctx, sk, encode(st), 0)
				if old.UserID != s.UserID {
					pipe.ZRem(ctx, k.userIndex(key.RealmID, key.Offline, old.UserID), key.ID)
				}
				indexSession(ctx, pipe, k, key, s.UserID, st.ExpiresAt)
				p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Upserted, Session: key})
				return nil
			})
			return err
		}, sk)
	})
}

// getSession reads one stored session inside a transaction; spi.ErrNotFound when missing.
func getSession(ctx context.Context, tx *redis.Tx, sk string, key usersessions.Key) (storedSession, error) {
	raw, err := tx.Get(ctx, sk).Result()
	if errors.Is(err, redis.Nil) {
		return storedSession{}, fmt.Errorf("session %s: %w", keyString(key), spi.ErrNotFound)
	}
	if err != nil {
		return storedSession{}, err
	}
	return decodeSession(raw)
}

// getClient reads one stored client session; ok is false when it is missing.
func getClient(ctx context.Context, tx *redis.Tx, ck, clientID string) (storedClient, bool, error) {
	raw, err := tx.HGet(ctx, ck, clientID).Result()
	if errors.Is(err, redis.Nil) {
		return storedClient{}, false, nil
	}
	if err != nil {
		return storedClient{}, false, err
	}
	sc, err := decodeClient(raw)
	return sc, err == nil, err
}

// advance moves an idle clock as Touch does: a later LastRefresh wins with its ExpiresAt;
// the same LastRefresh may only extend ExpiresAt; an earlier one changes nothing. So
// touches commute, whichever node's arrives first.
func advance(last, expires *int64, newLast, newExpires int64) {
	switch {
	case newLast > *last:
		*last, *expires = newLast, newExpires
	case newLast == *last && newExpires > *expires:
		*expires = newExpires
	}
}

// Touch implements usersessions.Provider.
func (p *Provider) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	return eachItem(ctx, "touch", touches, func(t usersessions.Touch) error {
		if err := validKey(t.Session); err != nil {
			return err
		}
		if err := t.CheckText(); err != nil {
			return err
		}
		sk, ck := k.session(t.Session), k.clients(t.Session)
		return optimistic(ctx, rdb, func(tx *redis.Tx) error {
			st, err := getSession(ctx, tx, sk, t.Session)
			if err != nil {
				return err
			}
			var sc storedClient
			if t.ClientID != "" {
				var ok bool
				if sc, ok, err = getClient(ctx, tx, ck, t.ClientID); err != nil {
					return err
				} else if !ok {
					return fmt.Errorf("touch of client session %s/%s: %w", keyString(t.Session), t.ClientID, spi.ErrNotFound)
				}
			}
			advance(&st.LastRefresh, &st.ExpiresAt, micros(t.LastRefresh), micros(t.ExpiresAt))
			if t.ClientID != "" {
				advance(&sc.LastRefresh, &sc.ExpiresAt, micros(t.LastRefresh), micros(t.ClientExpiresAt))
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, sk, encode(st), 0)
				pipe.ZAdd(ctx, k.expiry(), redis.Z{Score: float64(st.ExpiresAt), Member: member(t.Session)})
				if t.ClientID != "" {
					pipe.HSet(ctx, ck, t.ClientID, encode(sc))
					pipe.ZAdd(ctx, k.clientExpiry(), redis.Z{Score: float64(sc.ExpiresAt),
						Member: clientMember(usersessions.ClientKey{Session: t.Session, ClientID: t.ClientID})})
				}
				p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Upserted, Session: t.Session})
				return nil
			})
			return err
		}, sk, ck)
	})
}

// PutClientSessions implements usersessions.Provider. Replacing a client session that does
// not exist is spi.ErrNotFound.
func (p *Provider) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	rdb, k, err := p.state()
	if err != nil {
		return nil, err
	}
	return eachItem(ctx, "put client sessions", clients, func(c *usersessions.ClientSession) error {
		if c == nil {
			return fmt.Errorf("nil client session: %w", spi.ErrInvalid)
		}
		ckey := c.Key()
		if err := validKey(ckey.Session); err != nil {
			return err
		}
		if err := c.CheckText(); err != nil {
			return err
		}
		if ckey.ClientID == "" {
			return fmt.Errorf("client session of %s without a client id: %w", keyString(ckey.Session), spi.ErrInvalid)
		}
		sk, ck := k.session(ckey.Session), k.clients(ckey.Session)
		return optimistic(ctx, rdb, func(tx *redis.Tx) error {
			if _, err := getSession(ctx, tx, sk, ckey.Session); err != nil {
				return err
			}
			old, exists, err := getClient(ctx, tx, ck, ckey.ClientID)
			if err != nil {
				return err
			}
			var version int64
			switch {
			case c.Version == 0 && exists:
				return fmt.Errorf("create of client session %s/%s: %w", keyString(ckey.Session), ckey.ClientID, spi.ErrExists)
			case c.Version == 0:
				version = 1
			case !exists:
				return fmt.Errorf("replace of client session %s/%s, which does not exist: %w", keyString(ckey.Session), ckey.ClientID, spi.ErrNotFound)
			case old.Version != c.Version:
				return fmt.Errorf("replace of client session %s/%s at Version %d, stored %d: %w",
					keyString(ckey.Session), ckey.ClientID, c.Version, old.Version, spi.ErrConflict)
			default:
				version = old.Version + 1
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				sc := toStoredClient(c, version)
				pipe.HSet(ctx, ck, ckey.ClientID, encode(sc))
				indexClient(ctx, pipe, k, ckey, sc.ExpiresAt)
				p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Upserted, Session: ckey.Session, ClientID: ckey.ClientID})
				return nil
			})
			return err
		}, sk, ck)
	})
}

// DeleteClientSessions implements usersessions.Provider.
func (p *Provider) DeleteClientSessions(ctx context.Context, cks []usersessions.ClientKey) error {
	rdb, k, err := p.state()
	if err != nil {
		return err
	}
	for _, c := range cks {
		if _, err := p.removeClient(ctx, rdb, k, c, nil, true); err != nil {
			return fail(ctx, "delete client sessions", err)
		}
	}
	return nil
}

// removeClient deletes one client session when it exists and, if keep is set, keep says
// it should go; it reports whether it did.
func (p *Provider) removeClient(ctx context.Context, rdb *redis.Client, k keys, c usersessions.ClientKey,
	keep func(storedClient) bool, publish bool) (bool, error) {
	ck := k.clients(c.Session)
	removed := false
	err := optimistic(ctx, rdb, func(tx *redis.Tx) error {
		removed = false
		sc, ok, err := getClient(ctx, tx, ck, c.ClientID)
		if err != nil || !ok || (keep != nil && keep(sc)) {
			if !ok && err == nil {
				// Not there: drop a stale expiry entry, should one be left.
				err = tx.ZRem(ctx, k.clientExpiry(), clientMember(c)).Err()
			}
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HDel(ctx, ck, c.ClientID)
			unindexClient(ctx, pipe, k, c)
			if publish {
				p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Removed, Session: c.Session, ClientID: c.ClientID})
			}
			return nil
		})
		removed = err == nil
		return err
	}, ck)
	return removed, err
}

// Delete implements usersessions.Provider.
func (p *Provider) Delete(ctx context.Context, ks []usersessions.Key) (int, error) {
	rdb, k, err := p.state()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range ks {
		ok, _, err := p.remove(ctx, rdb, k, key, nil, true)
		if err != nil {
			return n, fail(ctx, "delete", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// remove deletes one user session with its client sessions when it exists and, if keep
// is set, keep says it should go. It reports whether it did and how many client sessions
// went with it.
func (p *Provider) remove(ctx context.Context, rdb *redis.Client, k keys, key usersessions.Key,
	keep func(*usersessions.UserSession) bool, publish bool) (bool, int, error) {
	sk, ck := k.session(key), k.clients(key)
	removed, clients := false, 0
	err := optimistic(ctx, rdb, func(tx *redis.Tx) error {
		removed, clients = false, 0
		raw, err := tx.Get(ctx, sk).Result()
		if errors.Is(err, redis.Nil) {
			// Not there: drop a stale expiry entry, should one be left.
			return tx.ZRem(ctx, k.expiry(), member(key)).Err()
		}
		if err != nil {
			return err
		}
		hash, err := tx.HGetAll(ctx, ck).Result()
		if err != nil {
			return err
		}
		s, err := assemble(key, raw, hash)
		if err != nil {
			return err
		}
		if keep != nil && keep(s) {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, sk, ck)
			pipe.ZRem(ctx, k.index(key.RealmID, key.Offline), key.ID)
			pipe.ZRem(ctx, k.userIndex(key.RealmID, key.Offline, s.UserID), key.ID)
			pipe.ZRem(ctx, k.expiry(), member(key))
			for id := range s.Clients {
				unindexClient(ctx, pipe, k, usersessions.ClientKey{Session: key, ClientID: id})
			}
			if publish {
				p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Removed, Session: key})
			}
			return nil
		})
		if err == nil {
			removed, clients = true, len(s.Clients)
		}
		return err
	}, sk, ck)
	return removed, clients, err
}

// DeleteMatching implements usersessions.Provider. It deletes the selected sessions one
// transaction each, checking the filter again inside it, then publishes one Flushed change.
func (p *Provider) DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error) {
	if err := validFilter(f); err != nil {
		return 0, err
	}
	rdb, k, err := p.state()
	if err != nil {
		return 0, err
	}
	var selected []usersessions.Key
	err = p.scan(ctx, rdb, k, f, "", usersessions.Partition{}, func(s *usersessions.UserSession) (bool, error) {
		selected = append(selected, s.Key())
		return true, nil
	})
	if err != nil {
		return 0, fail(ctx, "delete matching", err)
	}
	n := 0
	for _, key := range selected {
		var ok bool
		if f.ClientID != "" {
			ok, err = p.removeClient(ctx, rdb, k, usersessions.ClientKey{Session: key, ClientID: f.ClientID}, nil, false)
		} else {
			ok, _, err = p.remove(ctx, rdb, k, key, func(s *usersessions.UserSession) bool { return !selects(f, s) }, false)
		}
		if err != nil {
			return n, fail(ctx, "delete matching", err)
		}
		if ok {
			n++
		}
	}
	_, err = rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		p.publish(ctx, pipe, k, usersessions.Change{Kind: usersessions.Flushed, Filter: f})
		return nil
	})
	return n, fail(ctx, "delete matching", err)
}

// DeleteExpired implements usersessions.Provider: the oldest-expired user sessions first,
// read off the expiry index, then client sessions that expired on their own, up to what
// is left of limit.
func (p *Provider) DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error) {
	if limit <= 0 {
		return 0, 0, fmt.Errorf("delete expired: limit %d must be positive: %w", limit, spi.ErrInvalid)
	}
	rdb, k, err := p.state()
	if err != nil {
		return 0, 0, err
	}
	cutoff := micros(before)
	below := "(" + strconv.FormatInt(cutoff, 10)
	members, err := rdb.ZRangeByScore(ctx, k.expiry(), &redis.ZRangeBy{Min: "-inf", Max: below, Count: int64(limit)}).Result()
	if err != nil {
		return 0, 0, fail(ctx, "delete expired", err)
	}
	for _, m := range members {
		key, ok := parseMember(m)
		if !ok {
			rdb.ZRem(ctx, k.expiry(), m)
			continue
		}
		removed, n, err := p.remove(ctx, rdb, k, key, func(s *usersessions.UserSession) bool { return micros(s.ExpiresAt) >= cutoff }, true)
		if err != nil {
			return users, clients, fail(ctx, "delete expired", err)
		}
		if removed {
			users++
			clients += n
		}
	}
	if left := limit - clients; left > 0 {
		members, err = rdb.ZRangeByScore(ctx, k.clientExpiry(), &redis.ZRangeBy{Min: "-inf", Max: below, Count: int64(left)}).Result()
		if err != nil {
			return users, clients, fail(ctx, "delete expired", err)
		}
		for _, m := range members {
			c, ok := parseClientMember(m)
			if !ok {
				rdb.ZRem(ctx, k.clientExpiry(), m)
				continue
			}
			removed, err := p.removeClient(ctx, rdb, k, c, func(sc storedClient) bool { return sc.ExpiresAt >= cutoff }, true)
			if err != nil {
				return users, clients, fail(ctx, "delete expired", err)
			}
			if removed {
				clients++
			}
		}
	}
	return users, clients, nil
}
