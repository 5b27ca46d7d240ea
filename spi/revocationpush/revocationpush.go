// Package revocationpush is the contract that carries revocation to registered clients: a
// not-before policy, a logout, an OpenID Connect back-channel logout token, or a Security
// Event Token of the OpenID Shared Signals Framework.
//
// The core signs what needs the realm key (adapter actions, logout tokens, SETs) and hands
// the provider ready notices, so realm keys never leave the sessiond process.
package revocationpush

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Action names, as in Keycloak's adapter protocol.
const (
	PushNotBefore     = "PUSH_NOT_BEFORE"
	Logout            = "LOGOUT"
	BackchannelLogout = "BACKCHANNEL_LOGOUT"
	// SecurityEvent is a Security Event Token (RFC 8417) of an SSF stream, to be pushed
	// to the stream's PushURL as RFC 8935 has it. A provider that does not deliver SETs
	// answers it as an unknown action (not retried).
	SecurityEvent = "SECURITY_EVENT"
)

// Notice is one message for one client.
type Notice struct {
	ID         string // delivery id, stable across retries
	Action     string
	RealmID    string
	ClientID   string // the client's clientId
	AdminURL   string // the client's management URL ("" when it registered none)
	LogoutURL  string // the client's back-channel logout URL, for BackchannelLogout
	NotBefore  time.Time
	SessionIDs []string // adapter session ids, for Logout
	// Token is the realm-signed JWS the adapter protocol POSTs (for PushNotBefore and
	// Logout) or the logout_token (for BackchannelLogout).
	Token   string
	Expires time.Time // the token's own expiry; zero for a SET, which has none
	// PushURL is where a SecurityEvent is POSTed: the stream's endpoint_url.
	PushURL string
	// Authorization is the stream's authorization_header for a SecurityEvent: the
	// Authorization header value the receiver asked to be sent, "" for none. A secret:
	// never logged.
	Authorization string
}

// Result is the outcome of delivering one notice.
type Result struct {
	NoticeID string
	// Target names where the notice went, as the push-revocation answer and the logs show
	// it: the URL or topic posted to (for Keycloak's adapter actions, the client's admin
	// URL the protocol's path is joined to), without user information; "" when no endpoint
	// was chosen.
	Target string
	OK     bool
	Status int    // HTTP status when there was one
	Error  string // why it failed
	// Retry says whether trying again later may succeed (a down client, a 5xx) rather
	// than never (the client said 4xx, or has no target).
	Retry bool
}

// Provider delivers notices. It returns one Result per notice in order; an error return
// means the whole batch could not be attempted. A malformed notice fails in its own Result,
// not the batch. Once ctx has ended no notice is reported delivered: Push returns ctx's
// error, or Results that are not OK. revocationpushtest is the conformance suite.
type Provider interface {
	spi.Provider
	Push(ctx context.Context, notices []Notice) ([]Result, error)
}
