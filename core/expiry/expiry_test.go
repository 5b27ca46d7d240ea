package expiry

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
)

func TestUserSession(t *testing.T) {
	online := Session{Started: t0, LastRefresh: at(hour)}
	rememberMe := Session{Started: t0, LastRefresh: at(hour), RememberMe: true}
	offline := Session{Started: t0, LastRefresh: at(hour), Offline: true}
	tests := []struct {
		name string
		t    realm.Timeouts
		s    Session
		want want
	}{
		{"seed002 defaults: SSO Session Idle 30 min, SSO Session Max 10 h", realm.Timeouts{}, online, want{
			idleSecs: 1800, idleSrc: "realm ssoSessionIdleTimeout (default)",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
			expires: at(hour + 30*minute), endsBy: EndsByIdle}},
		{"REFERENCE a realm value <= 0 falls back to its default", realm.Timeouts{SSOSessionIdle: -1, SSOSessionMax: -1}, online, want{
			idleSecs: 1800, idleSrc: "realm ssoSessionIdleTimeout (default)",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
			expires: at(hour + 30*minute), endsBy: EndsByIdle}},
		{"seed000 SSO Session Idle: inactive longer than it ends the session", realm.Timeouts{SSOSessionIdle: 2 * hour}, online, want{
			idleSecs: 7200, idleSrc: "realm ssoSessionIdleTimeout",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
			expires: at(3 * hour), endsBy: EndsByIdle}},
		{"seed000 SSO Session Max: the maximum time before a user session expires", realm.Timeouts{SSOSessionMax: 90 * minute}, online, want{
			idleSecs: 1800, idleSrc: "realm ssoSessionIdleTimeout (default)",
			maxSecs: 5400, maxSrc: "realm ssoSessionMaxLifespan",
			expires: at(90 * minute), endsBy: EndsByMax}},
		{"seed000 SSO Session Idle Remember Me: longer idle for remember-me logins", realm.Timeouts{SSOSessionIdle: hour, SSOSessionIdleRememberMe: 7 * day, SSOSessionMaxRememberMe: 30 * day}, rememberMe, want{
			idleSecs: 7 * 86400, idleSrc: "realm ssoSessionIdleTimeoutRememberMe",
			maxSecs: 30 * 86400, maxSrc: "realm ssoSessionMaxLifespanRememberMe",
			expires: at(hour + 7*day), endsBy: EndsByIdle}},
		{"seed000 SSO Session Max Remember Me: longer max for remember-me logins", realm.Timeouts{SSOSessionIdleRememberMe: 60 * day, SSOSessionMaxRememberMe: 30 * day}, rememberMe, want{
			idleSecs: 60 * 86400, idleSrc: "realm ssoSessionIdleTimeoutRememberMe",
			maxSecs: 30 * 86400, maxSrc: "realm ssoSessionMaxLifespanRememberMe",
			expires: at(30 * day), endsBy: EndsByMax}},
		{"seed000 remember-me value not greater than zero uses the SSO value", realm.Timeouts{SSOSessionIdle: hour, SSOSessionIdleRememberMe: -1}, rememberMe, want{
			idleSecs: 3600, idleSrc: "realm ssoSessionIdleTimeout",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
			expires: at(2 * hour), endsBy: EndsByIdle}},
		{"REFERENCE remember-me effective = max(normal, remember-me): a shorter one does not apply", realm.Timeouts{SSOSessionIdle: 2 * hour, SSOSessionIdleRememberMe: hour, SSOSessionMax: 5 * hour, SSOSessionMaxRememberMe: 4 * hour}, rememberMe, want{
			idleSecs: 7200, idleSrc: "realm ssoSessionIdleTimeout",
			maxSecs: 18000, maxSrc: "realm ssoSessionMaxLifespan",
			expires: at(3 * hour), endsBy: EndsByIdle}},
		{"seed000 remember-me values apply only to remember-me logins", realm.Timeouts{SSOSessionIdle: hour, SSOSessionIdleRememberMe: 7 * day, SSOSessionMaxRememberMe: 30 * day}, online, want{
			idleSecs: 3600, idleSrc: "realm ssoSessionIdleTimeout",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
			expires: at(2 * hour), endsBy: EndsByIdle}},
		{"seed001 Offline Session Idle: refresh at least once per 30 days (default)", realm.Timeouts{}, offline, want{
			idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)", maxSecs: -1,
			expires: at(hour + 30*day), endsBy: EndsByIdle}},
		{"seed000 offline is not subject to SSO Session Idle, Max or remember-me", realm.Timeouts{SSOSessionIdle: minute, SSOSessionMax: hour, SSOSessionIdleRememberMe: day, OfflineSessionIdle: 2 * day},
			Session{Started: t0, LastRefresh: at(hour), Offline: true, RememberMe: true}, want{
				idleSecs: 2 * 86400, idleSrc: "realm offlineSessionIdleTimeout", maxSecs: -1,
				expires: at(hour + 2*day), endsBy: EndsByIdle}},
		{"seed000 Offline Session Max Limited off: offline sessions never expire by lifespan, only by idle", realm.Timeouts{OfflineSessionMax: day}, Session{Started: t0, LastRefresh: at(10 * day), Offline: true}, want{
			idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)", maxSecs: -1,
			expires: at(40 * day), endsBy: EndsByIdle, ignored: "realm offlineSessionMaxLifespan"}},
		{"seed000 Offline Session Max Limited on: offline tokens expire after 60 days (default)", realm.Timeouts{OfflineSessionMaxLimited: true}, Session{Started: t0, LastRefresh: at(50 * day), Offline: true}, want{
			idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)",
			maxSecs: 60 * 86400, maxSrc: "realm offlineSessionMaxLifespan (limited, default)",
			expires: at(60 * day), endsBy: EndsByMax}},
		{"seed000 Offline Session Max limited and set", realm.Timeouts{OfflineSessionMaxLimited: true, OfflineSessionMax: 10 * day}, offline, want{
			idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)",
			maxSecs: 10 * 86400, maxSrc: "realm offlineSessionMaxLifespan (limited)",
			expires: at(10 * day), endsBy: EndsByMax}},
		{"a session never refreshed idles from its start", realm.Timeouts{}, Session{Started: t0}, want{
			idleSecs: 1800, idleSrc: "realm ssoSessionIdleTimeout (default)",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
			expires: at(30 * minute), endsBy: EndsByIdle}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rules(tc.t)
			got := r.UserSession(tc.s)
			check(t, got, tc.want)
			sameTimes(t, r.userSession(tc.s, false).expiry(), got)
		})
	}
}

func TestClientSession(t *testing.T) {
	s := Session{Started: t0, LastRefresh: at(hour)}
	rm := Session{Started: t0, LastRefresh: at(hour), RememberMe: true}
	off := Session{Started: t0, LastRefresh: at(hour), Offline: true}
	cs := ClientSession{Started: at(minute), LastRefresh: at(hour)}
	tests := []struct {
		name   string
		t      realm.Timeouts
		client *realm.Client
		s      Session
		cs     ClientSession
		want   want
	}{
		{"seed000 Client Session Idle/Max 0 use SSO Session Idle/Max", realm.Timeouts{}, &realm.Client{ClientID: "c"}, s, cs, want{
			idleSecs: 1800, idleSrc: "realm ssoSessionIdleTimeout (default)",
			maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)", maxEnds: at(10 * hour),
			expires: at(hour + 30*minute), endsBy: EndsByIdle}},
		{"seed000 Client Session Idle 0 uses the remember-me aware SSO value", realm.Timeouts{SSOSessionIdleRememberMe: day, SSOSessionMaxRememberMe: 2 * day}, nil, rm, cs, want{
			idleSecs: 86400, idleSrc: "realm ssoSessionIdleTimeoutRememberMe",
			maxSecs: 2 * 86400, maxSrc: "realm ssoSessionMaxLifespanRememberMe", maxEnds: at(2 * day),
			expires: at(25 * hour), endsBy: EndsByIdle}},
		{"seed000 realm Client Session Idle and Max", realm.Timeouts{ClientSessionIdle: 10 * minute, ClientSessionMax: 5 * hour}, nil, s, cs, want{
			idleSecs: 600, idleSrc: "realm clientSessionIdleTimeout",
			maxSecs: 18000, maxSrc: "realm clientSessionMaxLifespan", maxEnds: at(5*hour + minute),
			expires: at(hour + 10*minute), endsBy: EndsByIdle}},
		{"seed000 client attributes override realm Client Session Idle and Max", realm.Timeouts{ClientSessionIdle: 10 * minute, ClientSessionMax: 5 * hour},
			&realm.Client{ClientID: "c", SessionIdle: 5 * minute, SessionMax: 30 * minute}, s, ClientSession{Started: at(50 * minute), LastRefresh: at(hour)}, want{
				idleSecs: 300, idleSrc: "client attribute client.session.idle.timeout",
				maxSecs: 1800, maxSrc: "client attribute client.session.max.lifespan", maxEnds: at(80 * minute),
				expires: at(hour + 5*minute), endsBy: EndsByIdle}},
		{"REFERENCE client session max is capped at the user session's max", realm.Timeouts{SSOSessionIdle: 10 * hour},
			&realm.Client{ClientID: "c", SessionMax: 20 * hour}, s, ClientSession{Started: at(2 * hour), LastRefresh: at(9 * hour)}, want{
				idleSecs: 36000, idleSrc: "realm ssoSessionIdleTimeout",
				maxSecs: 72000, maxSrc: "client attribute client.session.max.lifespan", maxEnds: at(10 * hour),
				expires: at(10 * hour), endsBy: EndsByMax}},
		{"DESIGN/seed000 a client session never outlives its user session", realm.Timeouts{},
			&realm.Client{ClientID: "c", SessionIdle: hour}, s, cs, want{
				idleSecs: 3600, idleSrc: "client attribute client.session.idle.timeout",
				maxSecs: 36000, maxSrc: "realm ssoSessionMaxLifespan (default)",
				expires: at(hour + 30*minute), stored: at(2 * hour), endsBy: EndsByUserSession}},
		{"seed000 Offline Session Idle applies to offline client sessions by default", realm.Timeouts{}, &realm.Client{ClientID: "c", SessionIdle: minute}, off, cs, want{
			idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)", maxSecs: -1,
			expires: at(hour + 30*day), endsBy: EndsByIdle}},
		{"seed000 realm Client Offline Session Idle", realm.Timeouts{ClientOfflineSessionIdle: day}, nil, off, cs, want{
			idleSecs: 86400, idleSrc: "realm clientOfflineSessionIdleTimeout", maxSecs: -1,
			expires: at(25 * hour), endsBy: EndsByIdle}},
		{"seed000 Client Offline Session Idle attribute overrides the realm (Advanced Settings)", realm.Timeouts{ClientOfflineSessionIdle: day},
			&realm.Client{ClientID: "c", OfflineSessionIdle: 2 * hour}, off, cs, want{
				idleSecs: 7200, idleSrc: "client attribute client.offline.session.idle.timeout", maxSecs: -1,
				expires: at(3 * hour), endsBy: EndsByIdle}},
		{"seed000 Client Offline Session Max is only evaluated if Offline Session Max Limited is Enabled", realm.Timeouts{ClientOfflineSessionMax: hour},
			&realm.Client{ClientID: "c", OfflineSessionMax: 2 * hour}, off, cs, want{
				idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)", maxSecs: -1,
				expires: at(hour + 30*day), endsBy: EndsByIdle, ignored: "client attribute client.offline.session.max.lifespan"}},
		{"seed000 Client Offline Session Max attribute applies when limited", realm.Timeouts{OfflineSessionMaxLimited: true, ClientOfflineSessionMax: 5 * day},
			&realm.Client{ClientID: "c", OfflineSessionMax: 2 * hour}, off, cs, want{
				idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)",
				maxSecs: 7200, maxSrc: "client attribute client.offline.session.max.lifespan", maxEnds: at(2*hour + minute),
				expires: at(2*hour + minute), endsBy: EndsByMax}},
		{"REFERENCE realm Client Offline Session Max applies when limited", realm.Timeouts{OfflineSessionMaxLimited: true, ClientOfflineSessionMax: 5 * day}, nil, off, cs, want{
			idleSecs: 30 * 86400, idleSrc: "realm offlineSessionIdleTimeout (default)",
			maxSecs: 5 * 86400, maxSrc: "realm clientOfflineSessionMaxLifespan", maxEnds: at(5*day + minute),
			expires: at(5*day + minute), endsBy: EndsByMax}},
		{"REFERENCE offline client max falls back to Offline Session Max and is capped at the offline session's max", realm.Timeouts{OfflineSessionMaxLimited: true, OfflineSessionMax: 3 * day, OfflineSessionIdle: 10 * day},
			nil, off, ClientSession{Started: at(day), LastRefresh: at(2 * day)}, want{
				idleSecs: 10 * 86400, idleSrc: "realm offlineSessionIdleTimeout",
				maxSecs: 3 * 86400, maxSrc: "realm offlineSessionMaxLifespan (limited)", maxEnds: at(3 * day),
				expires: at(3 * day), endsBy: EndsByMax}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rules(tc.t)
			got := r.ClientSession(tc.client, tc.s, tc.cs)
			check(t, got, tc.want)
			sameTimes(t, r.clientSession(tc.client, tc.s, tc.cs, false).expiry(), got)
		})
	}
}

func TestRefreshToken(t *testing.T) {
	s := Session{Started: t0, LastRefresh: at(hour)}
	tests := []struct {
		name   string
		t      realm.Timeouts
		client *realm.Client
		s      Session
		cs     ClientSession
		want   time.Time
	}{
		{"seed002 refresh token aligns with SSO Session Idle", realm.Timeouts{}, nil, s, ClientSession{LastRefresh: at(hour)}, at(hour + 30*minute)},
		{"seed000 Client Session Max: before a refresh token expires", realm.Timeouts{ClientSessionMax: 2 * hour}, nil, Session{Started: t0, LastRefresh: at(2*hour + 30*minute)}, ClientSession{Started: at(50 * minute), LastRefresh: at(2*hour + 30*minute)}, at(2*hour + 50*minute)},
		{"seed002 refresh token never outlives its client session (client idle)", realm.Timeouts{}, &realm.Client{SessionIdle: 5 * minute}, s, ClientSession{LastRefresh: at(hour)}, at(hour + 5*minute)},
		{"seed002 refresh token never outlives the user session (client idle longer than SSO idle)", realm.Timeouts{}, &realm.Client{SessionIdle: 2 * hour}, s, ClientSession{LastRefresh: at(hour)}, at(hour + 30*minute)},
		{"seed002 refresh token never outlives the user session's max", realm.Timeouts{SSOSessionIdle: 5 * hour}, nil, Session{Started: t0, LastRefresh: at(9 * hour)}, ClientSession{LastRefresh: at(9 * hour)}, at(10 * hour)},
		{"seed000 offline token: idle only when max not limited", realm.Timeouts{}, nil, Session{Started: t0, LastRefresh: at(100 * day), Offline: true}, ClientSession{LastRefresh: at(100 * day)}, at(130 * day)},
		{"seed004 the idle window is not part of a token's exp", realm.Timeouts{}, nil, s, ClientSession{LastRefresh: at(hour)}, at(hour + 30*minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rules(tc.t)
			r.PersistentSessions = false // the window must not leak into tokens either way
			if got := r.RefreshToken(tc.client, tc.s, tc.cs); !got.Equal(tc.want) {
				t.Errorf("exp %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAccessToken(t *testing.T) {
	s := Session{Started: t0, LastRefresh: at(hour)}
	cs := ClientSession{LastRefresh: at(hour)}
	issued := at(hour)
	tests := []struct {
		name     string
		t        realm.Timeouts
		client   *realm.Client
		s        Session
		cs       ClientSession
		implicit bool
		secs     int64
		source   string
		ends     time.Time
	}{
		{"seed002 Access Token Lifespan default 5 min", realm.Timeouts{}, nil, s, cs, false, 300, "realm accessTokenLifespan (default)", issued.Add(5 * minute)},
		{"seed000 Access Token Lifespan from the realm", realm.Timeouts{AccessTokenLifespan: 15 * minute}, &realm.Client{}, s, cs, false, 900, "realm accessTokenLifespan", issued.Add(15 * minute)},
		{"seed002 per-client access token lifespan (Advanced Settings)", realm.Timeouts{AccessTokenLifespan: 15 * minute}, &realm.Client{AccessTokenLifespan: 2 * minute}, s, cs, false, 120, "client attribute access.token.lifespan", issued.Add(2 * minute)},
		{"seed000 Access Token Lifespan For Implicit Flow (default 15 min)", realm.Timeouts{}, &realm.Client{AccessTokenLifespan: 2 * minute}, s, cs, true, 900, "realm accessTokenLifespanForImplicitFlow (default)", issued.Add(15 * minute)},
		{"seed002 access token bounded by the refresh token: never past the session's max", realm.Timeouts{AccessTokenLifespan: hour}, nil,
			Session{Started: t0, LastRefresh: at(9*hour + 50*minute)}, ClientSession{LastRefresh: at(9*hour + 50*minute)}, false, 3600, "realm accessTokenLifespan", at(10 * hour)},
		{"seed002 access token bounded by the refresh token: never past the client session's idle", realm.Timeouts{AccessTokenLifespan: 20 * minute}, &realm.Client{SessionIdle: 10 * minute}, s, cs, false, 1200, "realm accessTokenLifespan", issued.Add(10 * minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Tokens are issued at the refresh that set the client session's LastRefresh.
			got := rules(tc.t).AccessToken(tc.client, tc.s, tc.cs, tc.cs.LastRefresh, tc.implicit)
			if got.Seconds != tc.secs || got.Source != tc.source || !got.Ends.Equal(tc.ends) {
				t.Errorf("got %ds from %q ending %s, want %ds from %q ending %s", got.Seconds, got.Source, got.Ends, tc.secs, tc.source, tc.ends)
			}
			if ends := rules(tc.t).AccessTokenEnds(tc.client, tc.s, tc.cs, tc.cs.LastRefresh, tc.implicit); !ends.Equal(tc.ends) {
				t.Errorf("AccessTokenEnds %s, want %s", ends, tc.ends)
			}
		})
	}
}
