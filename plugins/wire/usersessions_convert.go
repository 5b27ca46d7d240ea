package wire

import (
	us "github.com/sessiond/sessiond/spi/usersessions"
	pb "github.com/sessiond/sessiond/spi/usersessions/usersessionspb"
)

// Conversions between package usersessions and its wire form. A nil pointer in a batch
// travels as an empty message (protobuf cannot carry nil list elements).

func each[T, U any](in []T, f func(T) U) []U {
	if len(in) == 0 {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func notes(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func sessionToPB(s *us.UserSession) *pb.UserSession {
	if s == nil {
		return &pb.UserSession{}
	}
	p := &pb.UserSession{
		Id:              s.ID,
		RealmId:         s.RealmID,
		UserId:          s.UserID,
		LoginUsername:   s.LoginUsername,
		IpAddress:       s.IPAddress,
		UserAgent:       s.UserAgent,
		AuthMethod:      s.AuthMethod,
		BrokerSessionId: s.BrokerSessionID,
		BrokerUserId:    s.BrokerUserID,
		RememberMe:      s.RememberMe,
		Offline:         s.Offline,
		State:           string(s.State),
		Started:         micros(s.Started),
		LastRefresh:     micros(s.LastRefresh),
		ExpiresAt:       micros(s.ExpiresAt),
		Notes:           notes(s.Notes),
		Version:         s.Version,
	}
	if len(s.Clients) > 0 {
		p.Clients = make(map[string]*pb.ClientSession, len(s.Clients))
		for id, c := range s.Clients {
			p.Clients[id] = clientToPB(c)
		}
	}
	return p
}

func sessionFromPB(p *pb.UserSession) *us.UserSession {
	if p == nil {
		return nil
	}
	s := &us.UserSession{
		ID:              p.GetId(),
		RealmID:         p.GetRealmId(),
		UserID:          p.GetUserId(),
		LoginUsername:   p.GetLoginUsername(),
		IPAddress:       p.GetIpAddress(),
		UserAgent:       p.GetUserAgent(),
		AuthMethod:      p.GetAuthMethod(),
		BrokerSessionID: p.GetBrokerSessionId(),
		BrokerUserID:    p.GetBrokerUserId(),
		RememberMe:      p.GetRememberMe(),
		Offline:         p.GetOffline(),
		State:           us.State(p.GetState()),
		Started:         fromMicros(p.GetStarted()),
		LastRefresh:     fromMicros(p.GetLastRefresh()),
		ExpiresAt:       fromMicros(p.GetExpiresAt()),
		Notes:           notes(p.GetNotes()),
		Version:         p.GetVersion(),
	}
	if len(p.GetClients()) > 0 {
		s.Clients = make(map[string]*us.ClientSession, len(p.GetClients()))
		for id, c := range p.GetClients() {
			s.Clients[id] = clientFromPB(c)
		}
	}
	return s
}

func clientToPB(c *us.ClientSession) *pb.ClientSession {
	if c == nil {
		return &pb.ClientSession{}
	}
	return &pb.ClientSession{
		UserSessionId:               c.UserSessionID,
		RealmId:                     c.RealmID,
		ClientId:                    c.ClientID,
		Offline:                     c.Offline,
		Started:                     micros(c.Started),
		LastRefresh:                 micros(c.LastRefresh),
		ExpiresAt:                   micros(c.ExpiresAt),
		AuthMethod:                  c.AuthMethod,
		RedirectUri:                 c.RedirectURI,
		Action:                      c.Action,
		Scope:                       c.Scope,
		Notes:                       notes(c.Notes),
		CurrentRefreshToken:         c.CurrentRefreshToken,
		CurrentRefreshTokenUseCount: int64(c.CurrentRefreshTokenUseCount),
		PreviousRefreshToken:        c.PreviousRefreshToken,
		RotatedAt:                   micros(c.RotatedAt),
		Version:                     c.Version,
	}
}

func clientFromPB(p *pb.ClientSession) *us.ClientSession {
	return &us.ClientSession{
		UserSessionID:               p.GetUserSessionId(),
		RealmID:                     p.GetRealmId(),
		ClientID:                    p.GetClientId(),
		Offline:                     p.GetOffline(),
		Started:                     fromMicros(p.GetStarted()),
		LastRefresh:                 fromMicros(p.GetLastRefresh()),
		ExpiresAt:                   fromMicros(p.GetExpiresAt()),
		AuthMethod:                  p.GetAuthMethod(),
		RedirectURI:                 p.GetRedirectUri(),
		Action:                      p.GetAction(),
		Scope:                       p.GetScope(),
		Notes:                       notes(p.GetNotes()),
		CurrentRefreshToken:         p.GetCurrentRefreshToken(),
		CurrentRefreshTokenUseCount: int(p.GetCurrentRefreshTokenUseCount()),
		PreviousRefreshToken:        p.GetPreviousRefreshToken(),
		RotatedAt:                   fromMicros(p.GetRotatedAt()),
		Version:                     p.GetVersion(),
	}
}

func keyToPB(k us.Key) *pb.Key { return &pb.Key{RealmId: k.RealmID, Id: k.ID, Offline: k.Offline} }

func keyFromPB(p *pb.Key) us.Key {
	return us.Key{RealmID: p.GetRealmId(), ID: p.GetId(), Offline: p.GetOffline()}
}

func clientKeyToPB(k us.ClientKey) *pb.ClientKey {
	return &pb.ClientKey{Session: keyToPB(k.Session), ClientId: k.ClientID}
}

func clientKeyFromPB(p *pb.ClientKey) us.ClientKey {
	return us.ClientKey{Session: keyFromPB(p.GetSession()), ClientID: p.GetClientId()}
}

func touchToPB(t us.Touch) *pb.Touch {
	return &pb.Touch{
		Session:         keyToPB(t.Session),
		LastRefresh:     micros(t.LastRefresh),
		ExpiresAt:       micros(t.ExpiresAt),
		ClientId:        t.ClientID,
		ClientExpiresAt: micros(t.ClientExpiresAt),
	}
}

func touchFromPB(p *pb.Touch) us.Touch {
	return us.Touch{
		Session:         keyFromPB(p.GetSession()),
		LastRefresh:     fromMicros(p.GetLastRefresh()),
		ExpiresAt:       fromMicros(p.GetExpiresAt()),
		ClientID:        p.GetClientId(),
		ClientExpiresAt: fromMicros(p.GetClientExpiresAt()),
	}
}

func filterToPB(f us.Filter) *pb.Filter {
	return &pb.Filter{
		RealmId:     f.RealmID,
		UserId:      f.UserID,
		ClientId:    f.ClientID,
		Offline:     pb.OfflineSelector(f.Offline),
		ActiveSince: micros(f.ActiveSince),
		LiveAt:      micros(f.LiveAt),
	}
}

func filterFromPB(p *pb.Filter) us.Filter {
	return us.Filter{
		RealmID:     p.GetRealmId(),
		UserID:      p.GetUserId(),
		ClientID:    p.GetClientId(),
		Offline:     us.OfflineSelector(p.GetOffline()),
		ActiveSince: fromMicros(p.GetActiveSince()),
		LiveAt:      fromMicros(p.GetLiveAt()),
	}
}

func pageToPB(p us.Page) *pb.Page { return &pb.Page{After: p.After, Limit: int64(p.Limit)} }

func pageFromPB(p *pb.Page) us.Page { return us.Page{After: p.GetAfter(), Limit: int(p.GetLimit())} }

func streamRequestToPB(r us.StreamRequest) *pb.StreamRequest {
	return &pb.StreamRequest{
		Filter:    filterToPB(r.Filter),
		PageSize:  int64(r.PageSize),
		Partition: &pb.Partition{Index: int64(r.Partition.Index), Count: int64(r.Partition.Count)},
	}
}

func streamRequestFromPB(p *pb.StreamRequest) us.StreamRequest {
	return us.StreamRequest{
		Filter:    filterFromPB(p.GetFilter()),
		PageSize:  int(p.GetPageSize()),
		Partition: us.Partition{Index: int(p.GetPartition().GetIndex()), Count: int(p.GetPartition().GetCount())},
	}
}

func changeToPB(c us.Change) *pb.Change {
	return &pb.Change{
		Kind:     pb.ChangeKind(c.Kind),
		Session:  keyToPB(c.Session),
		ClientId: c.ClientID,
		Filter:   filterToPB(c.Filter),
		Origin:   c.Origin,
		Record:   recordKeyToPB(c.Record),
	}
}

// recordKeyToPB is nil for the zero key, which every change but RecordChanged has.
func recordKeyToPB(k us.RecordKey) *pb.RecordKey {
	if k == (us.RecordKey{}) {
		return nil
	}
	return &pb.RecordKey{Kind: k.Kind, Key: k.Key}
}

func interestToPB(in us.Interest) *pb.WatchRequest {
	return &pb.WatchRequest{Kinds: each(in.Kinds, func(k us.ChangeKind) pb.ChangeKind { return pb.ChangeKind(k) }), IgnoreOrigin: in.IgnoreOrigin}
}

func interestFromPB(p *pb.WatchRequest) us.Interest {
	return us.Interest{Kinds: each(p.GetKinds(), func(k pb.ChangeKind) us.ChangeKind { return us.ChangeKind(k) }), IgnoreOrigin: p.GetIgnoreOrigin()}
}

func changeFromPB(p *pb.Change) us.Change {
	return us.Change{
		Kind:     us.ChangeKind(p.GetKind()),
		Session:  keyFromPB(p.GetSession()),
		ClientID: p.GetClientId(),
		Filter:   filterFromPB(p.GetFilter()),
		Origin:   p.GetOrigin(),
		Record:   us.RecordKey{Kind: p.GetRecord().GetKind(), Key: p.GetRecord().GetKey()},
	}
}

func recordToPB(r *us.Record) *pb.Record {
	if r == nil {
		return &pb.Record{}
	}
	return &pb.Record{Kind: r.Kind, Key: r.Key, Value: r.Value, Version: r.Version, Updated: micros(r.Updated)}
}

func recordFromPB(p *pb.Record) *us.Record {
	if p == nil {
		return nil
	}
	return &us.Record{
		Kind:    p.GetKind(),
		Key:     p.GetKey(),
		Value:   p.GetValue(),
		Version: p.GetVersion(),
		Updated: fromMicros(p.GetUpdated()),
	}
}

func deliveryToPB(d *us.Delivery) *pb.Delivery {
	if d == nil {
		return &pb.Delivery{}
	}
	return &pb.Delivery{
		Id:          d.ID,
		RealmId:     d.RealmID,
		ClientId:    d.ClientID,
		Kind:        d.Kind,
		Target:      d.Target,
		Payload:     d.Payload,
		State:       string(d.State),
		Attempts:    int64(d.Attempts),
		NextAttempt: micros(d.NextAttempt),
		LastError:   d.LastError,
		Created:     micros(d.Created),
		Updated:     micros(d.Updated),
	}
}

func deliveryFromPB(p *pb.Delivery) *us.Delivery {
	return &us.Delivery{
		ID:          p.GetId(),
		RealmID:     p.GetRealmId(),
		ClientID:    p.GetClientId(),
		Kind:        p.GetKind(),
		Target:      p.GetTarget(),
		Payload:     p.GetPayload(),
		State:       us.DeliveryState(p.GetState()),
		Attempts:    int(p.GetAttempts()),
		NextAttempt: fromMicros(p.GetNextAttempt()),
		LastError:   p.GetLastError(),
		Created:     fromMicros(p.GetCreated()),
		Updated:     fromMicros(p.GetUpdated()),
	}
}

func outcomeToPB(o us.DeliveryOutcome) *pb.DeliveryOutcome {
	return &pb.DeliveryOutcome{Id: o.ID, State: string(o.State), NextAttempt: micros(o.NextAttempt), Error: o.Error, Target: o.Target}
}

func outcomeFromPB(p *pb.DeliveryOutcome) us.DeliveryOutcome {
	return us.DeliveryOutcome{
		ID:          p.GetId(),
		State:       us.DeliveryState(p.GetState()),
		NextAttempt: fromMicros(p.GetNextAttempt()),
		Error:       p.GetError(),
		Target:      p.GetTarget(),
	}
}

func deliveryFilterToPB(f us.DeliveryFilter) *pb.DeliveryFilter {
	return &pb.DeliveryFilter{RealmId: f.RealmID, State: string(f.State), Page: pageToPB(f.Page)}
}

func deliveryFilterFromPB(p *pb.DeliveryFilter) us.DeliveryFilter {
	return us.DeliveryFilter{
		RealmID: p.GetRealmId(),
		State:   us.DeliveryState(p.GetState()),
		Page:    pageFromPB(p.GetPage()),
	}
}
