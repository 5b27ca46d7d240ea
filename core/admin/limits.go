package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// LimitRep is one session limit as configured: Max 0 is no limit.
type LimitRep struct {
	Max      int    `json:"max"`
	Behavior string `json:"behavior"`
}

// Counts are live sessions, online and offline.
type Counts struct {
	Online  int64 `json:"online"`
	Offline int64 `json:"offline"`
}

// ClientCounts are one client's live sessions.
type ClientCounts struct {
	ClientID string `json:"clientId"`
	Counts
}

// UserCounts are one user's live sessions, in the realm and per client.
type UserCounts struct {
	UserID string `json:"userId"`
	Counts
	Clients []ClientCounts `json:"clients"`
}

// LimitsRep is a realm's session limits with the counts they are held against
// (GET session-limits). Clients lists every client with a live session; User is there
// when one was asked for (?userId=): a realm's users are not enumerated.
type LimitsRep struct {
	Limits       map[string]LimitRep `json:"limits"`
	ErrorMessage string              `json:"errorMessage"`
	CountOffline bool                `json:"countOffline"`
	Realm        Counts              `json:"realm"`
	Clients      []ClientCounts      `json:"clients"`
	User         *UserCounts         `json:"user,omitempty"`
}

// SessionLimits shows a realm's session limits and its live session counts against them:
// the realm's, every client's and, when userID is not "", one user's.
func (s *Service) SessionLimits(ctx context.Context, realmName, userID string) (*LimitsRep, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	l := r.SessionLimits
	out := &LimitsRep{
		Limits: map[string]LimitRep{
			sessionlimit.UserRealm: limitRep(l.UserRealm), sessionlimit.UserClient: limitRep(l.UserClient),
			sessionlimit.Client: limitRep(l.Client), sessionlimit.Realm: limitRep(l.Realm),
		},
		ErrorMessage: l.Message(), CountOffline: l.CountOffline, Clients: []ClientCounts{},
	}
	now := s.now()
	f := usersessions.Filter{RealmID: r.Name, LiveAt: now}
	if out.Realm, err = s.counts(ctx, f); err != nil {
		return nil, err
	}
	if out.Clients, err = s.liveByClient(ctx, r.Name, now); err != nil {
		return nil, err
	}
	if userID == "" {
		return out, nil
	}
	u := &UserCounts{UserID: userID}
	f.UserID = userID
	if u.Counts, err = s.counts(ctx, f); err != nil {
		return nil, err
	}
	perClient := [2]map[string]int64{{}, {}}
	err = s.walk(ctx, usersessions.Filter{RealmID: r.Name, UserID: userID, Offline: usersessions.Both, LiveAt: now}, func(page []*usersessions.UserSession) error {
		for _, us := range page {
			for id, cs := range us.Clients {
				if usersessions.Live(cs.ExpiresAt, now) {
					perClient[boolIndex(us.Offline)][id]++
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the sessions of user %q: %w", userID, err)
	}
	u.Clients = clientCounts(perClient[0], perClient[1])
	out.User = u
	return out, nil
}

func (s *Service) counts(ctx context.Context, f usersessions.Filter) (Counts, error) {
	var c Counts
	var err error
	f.Offline = usersessions.OnlineOnly
	if c.Online, err = s.store.Count(ctx, f); err != nil {
		return c, fmt.Errorf("count online sessions: %w", err)
	}
	f.Offline = usersessions.OfflineOnly
	if c.Offline, err = s.store.Count(ctx, f); err != nil {
		return c, fmt.Errorf("count offline sessions: %w", err)
	}
	return c, nil
}

// liveByClient counts the realm's sessions live at now per client, online and offline;
// clients with none are left out.
func (s *Service) liveByClient(ctx context.Context, realmName string, now time.Time) ([]ClientCounts, error) {
	online, err := s.store.CountByClient(ctx, realmName, false, now)
	if err != nil {
		return nil, fmt.Errorf("count online sessions by client: %w", err)
	}
	offline, err := s.store.CountByClient(ctx, realmName, true, now)
	if err != nil {
		return nil, fmt.Errorf("count offline sessions by client: %w", err)
	}
	return clientCounts(online, offline), nil
}

func limitRep(l realm.Limit) LimitRep {
	b := realm.DenyNewSession
	if l.Terminate {
		b = realm.TerminateOldestSession
	}
	return LimitRep{Max: l.Max, Behavior: b}
}

func clientCounts(online, offline map[string]int64) []ClientCounts {
	ids := map[string]struct{}{}
	for id, n := range online {
		if n > 0 {
			ids[id] = struct{}{}
		}
	}
	for id, n := range offline {
		if n > 0 {
			ids[id] = struct{}{}
		}
	}
	out := make([]ClientCounts, 0, len(ids))
	for id := range ids {
		out = append(out, ClientCounts{ClientID: id, Counts: Counts{Online: online[id], Offline: offline[id]}})
	}
	slices.SortFunc(out, func(a, b ClientCounts) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
