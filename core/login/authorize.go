package login

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sessiond/sessiond/core/realm"
)

// OAuth 2.0 and OpenID Connect error codes of the authorization endpoint (RFC 6749
// §4.1.2.1, OpenID Connect Core 1.0 §3.1.2.6).
const (
	InvalidRequest          = "invalid_request"
	UnauthorizedClient      = "unauthorized_client"
	AccessDenied            = "access_denied"
	UnsupportedResponseType = "unsupported_response_type"
	InvalidScope            = "invalid_scope"
	ServerError             = "server_error"
	TemporarilyUnavailable  = "temporarily_unavailable"
	LoginRequired           = "login_required"
	InteractionRequired     = "interaction_required"
	ConsentRequired         = "consent_required"
	AccountSelectionReq     = "account_selection_required"
	RequestNotSupported     = "request_not_supported"
	RequestURINotSupported  = "request_uri_not_supported"
)

// Prompt values (OpenID Connect Core 1.0 §3.1.2.1).
const (
	PromptNone          = "none"
	PromptLogin         = "login"
	PromptConsent       = "consent"
	PromptSelectAccount = "select_account"
)

// Limits of the request's free-text parameters: generous for any real client, small enough
// that a request cannot make the stored authentication session large.
const (
	maxParam    = 2048 // state, nonce, login_hint, ui_locales, acr_values
	maxScope    = 1024
	maxURI      = 2048
	pkceMinimum = 43 // RFC 7636 §4.1
	pkceMaximum = 128
)

// PageError is a request that cannot be answered by a redirect: the client or its
// redirect URI is unknown, so the browser must not be sent anywhere (RFC 6749 §4.1.2.1).
// The endpoint shows it as an error page.
type PageError struct {
	Description string
}

func (e *PageError) Error() string { return "authorization request refused: " + e.Description }

// RedirectError is a refusal the client is told through its (known good) redirect URI.
type RedirectError struct {
	Code, Description string
}

func (e *RedirectError) Error() string { return e.Code + ": " + e.Description }

// Request is a validated authorization request.
type Request struct {
	ClientID    string   `json:"client_id"`
	RedirectURI string   `json:"redirect_uri"`
	Scope       string   `json:"scope"`
	State       string   `json:"state,omitempty"`
	Nonce       string   `json:"nonce,omitempty"`
	Challenge   string   `json:"code_challenge,omitempty"` // PKCE S256
	Prompt      []string `json:"prompt,omitempty"`
	MaxAge      int64    `json:"max_age"` // -1: not given
	LoginHint   string   `json:"login_hint,omitempty"`
	UILocales   string   `json:"ui_locales,omitempty"`
	ACRValues   string   `json:"acr_values,omitempty"`
	// DPoPJKT binds the code to a DPoP key before the token request (RFC 9449 §10): the
	// code grant's proof must be made with the key of this thumbprint.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
	// ResponseType is the sorted set of code, token and id_token.
	ResponseType []string `json:"response_type"`
	// ResponseMode is query (code alone), fragment, or FormPost.
	ResponseMode string `json:"response_mode,omitempty"`
}

// Response types (OpenID Connect Core §3, OAuth 2.0 Multiple Response Type Encoding).
const (
	RespCode    = "code"
	RespToken   = "token"
	RespIDToken = "id_token"
)

// FormPost is the response mode of OAuth 2.0 Form Post Response Mode: the parameters reach
// the client as a form the browser posts, never in a URL a log or a Referer could keep.
const FormPost = "form_post"

// Wants reports whether the response carries t.
func (q *Request) Wants(t string) bool { return slices.Contains(q.ResponseType, t) }

// OpenID reports whether the request is an OpenID Connect one (an ID token is issued).
func (q *Request) OpenID() bool { return hasScope(q.Scope, "openid") }

// StartsLogin reports whether the request may start a login, which writes a pending login
// to the store: all but prompt=none, which is answered at once.
func (q *Request) StartsLogin() bool { return !q.prompts(PromptNone) }

func (q *Request) prompts(p string) bool { return slices.Contains(q.Prompt, p) }

// ParseRequest validates an authorization request's parameters for realm r, in the order
// RFC 6749 §4.1.2.1 sets: first the client and the redirect URI (a *PageError when either
// is wrong), then everything else (a *RedirectError, with the request's state kept in
// the returned Request so the error redirect can carry it).
func ParseRequest(r *realm.Realm, params url.Values) (*Request, error) {
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(params[name]) > 1 {
			return nil, &PageError{Description: fmt.Sprintf("parameter %s is given more than once", name)}
		}
	}
	clientID, redirectURI := params.Get("client_id"), params.Get("redirect_uri")
	if clientID == "" {
		return nil, &PageError{Description: "client_id is missing"}
	}
	c, ok := r.Client(clientID)
	if !ok {
		return nil, &PageError{Description: "the client is not known to this realm"}
	}
	if !c.Enabled {
		return nil, &PageError{Description: "the client is disabled"}
	}
	if redirectURI == "" {
		return nil, &PageError{Description: "redirect_uri is missing"}
	}
	if len(redirectURI) > maxURI || strings.Contains(redirectURI, "#") || !c.RedirectAllowed(redirectURI) {
		return nil, &PageError{Description: "redirect_uri is not one of the client's registered redirect URIs"}
	}
	q := &Request{ClientID: clientID, RedirectURI: redirectURI, MaxAge: -1}
	if len(params["state"]) == 1 && len(params.Get("state")) <= maxParam {
		q.State = params.Get("state")
	}
	return q, q.parse(c, params)
}

func (q *Request) parse(c *realm.Client, params url.Values) error {
	bad := func(format string, args ...any) error {
		return &RedirectError{Code: InvalidRequest, Description: fmt.Sprintf(format, args...)}
	}
	for name, v := range params {
		if len(v) > 1 {
			return bad("parameter %s is given more than once", name)
		}
	}
	if params.Has("request") {
		return &RedirectError{Code: RequestNotSupported, Description: "request objects are not supported"}
	}
	if params.Has("request_uri") {
		return &RedirectError{Code: RequestURINotSupported, Description: "request_uri is not supported"}
	}
	if len(params.Get("state")) > maxParam {
		return bad("state is longer than %d bytes", maxParam)
	}
	rt := strings.Fields(params.Get("response_type"))
	if len(rt) == 0 {
		return bad("response_type is missing")
	}
	for i, v := range rt {
		if !slices.Contains([]string{RespCode, RespToken, RespIDToken}, v) || slices.Contains(rt[i+1:], v) {
			return &RedirectError{Code: UnsupportedResponseType, Description: fmt.Sprintf("response_type %q is not supported; sessiond serves code, token, id_token and their combinations", short(params.Get("response_type")))}
		}
	}
	slices.Sort(rt)
	q.ResponseType = rt
	implicit := !slices.Equal(rt, []string{RespCode})
	q.ResponseMode = "query"
	if implicit {
		// OAuth 2.0 Multiple Response Type Encoding Practices §5: tokens never in the query.
		q.ResponseMode = "fragment"
	}
	switch m := params.Get("response_mode"); {
	case m == "" || m == q.ResponseMode:
	case m == "fragment" || m == FormPost:
		q.ResponseMode = m
	case m == "query":
		return bad("response_mode query cannot carry tokens; use fragment or form_post")
	default:
		return bad("response_mode %q is not supported; sessiond answers in the query, the fragment or a form post", short(m))
	}
	if implicit && !c.ImplicitFlowEnabled {
		return &RedirectError{Code: UnauthorizedClient, Description: "the client does not enable the implicit flow (implicitFlowEnabled), which response_type " + strings.Join(rt, " ") + " needs"}
	}
	scope := params.Get("scope")
	if len(scope) > maxScope {
		return &RedirectError{Code: InvalidScope, Description: fmt.Sprintf("scope is longer than %d bytes", maxScope)}
	}
	for _, v := range strings.Fields(scope) {
		if !scopeToken(v) {
			return &RedirectError{Code: InvalidScope, Description: fmt.Sprintf("scope value %q has characters RFC 6749 §3.3 does not allow", short(v))}
		}
	}
	q.Scope = strings.Join(strings.Fields(scope), " ")
	for name, dst := range map[string]*string{"nonce": &q.Nonce, "login_hint": &q.LoginHint, "ui_locales": &q.UILocales, "acr_values": &q.ACRValues} {
		if v := params.Get(name); len(v) > maxParam {
			return bad("%s is longer than %d bytes", name, maxParam)
		} else {
			*dst = v
		}
	}
	if err := q.pkce(c, params.Get("code_challenge"), params.Get("code_challenge_method")); err != nil {
		return err
	}
	if v := params.Get("dpop_jkt"); v != "" {
		if !q.Wants(RespCode) {
			return bad("dpop_jkt binds an authorization code, and response_type %s issues none", strings.Join(rt, " "))
		}
		if sum, err := base64.RawURLEncoding.DecodeString(v); err != nil || len(sum) != sha256.Size {
			return bad("dpop_jkt must be the base64url SHA-256 JWK thumbprint of a key (RFC 7638), not %q", short(v))
		}
		q.DPoPJKT = v
	}
	if q.Wants(RespIDToken) {
		switch {
		case !q.OpenID():
			return bad("response_type id_token needs the openid scope")
		case q.Nonce == "":
			// OpenID Connect Core §3.2.2.1: an ID token from the authorization endpoint
			// must be bound to the request by a nonce.
			return bad("nonce is required when the authorization endpoint returns an ID token")
		}
	}
	if p := params.Get("prompt"); p != "" {
		for _, v := range strings.Fields(p) {
			if !slices.Contains([]string{PromptNone, PromptLogin, PromptConsent, PromptSelectAccount}, v) {
				return bad("prompt %q is not one of none, login, consent, select_account", short(v))
			}
			if !slices.Contains(q.Prompt, v) {
				q.Prompt = append(q.Prompt, v)
			}
		}
		if q.prompts(PromptNone) && len(q.Prompt) > 1 {
			return bad("prompt none cannot be combined with other values")
		}
	}
	if v := params.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return bad("max_age must be a whole number of seconds, not %q", short(v))
		}
		q.MaxAge = n
	}
	return nil
}

// pkce checks the PKCE parameters (RFC 7636): S256 only; required for public clients and
// for confidential ones whose pkce.code.challenge.method says S256.
func (q *Request) pkce(c *realm.Client, challenge, method string) error {
	bad := func(format string, args ...any) error {
		return &RedirectError{Code: InvalidRequest, Description: fmt.Sprintf(format, args...)}
	}
	if challenge == "" {
		switch {
		case !q.Wants(RespCode):
			return nil // no code, nothing for PKCE to bind
		case method != "":
			return bad("code_challenge_method without code_challenge")
		case c.PublicClient:
			return bad("a public client must send a PKCE code_challenge (S256)")
		case c.PKCEMethod == realm.PKCES256:
			return bad("this client must send a PKCE code_challenge (S256)")
		}
		return nil
	}
	if method != realm.PKCES256 {
		// An absent method means plain (RFC 7636 §4.3), which sessiond does not accept.
		return bad("code_challenge_method must be S256")
	}
	if len(challenge) < pkceMinimum || len(challenge) > pkceMaximum || strings.IndexFunc(challenge, notUnreserved) >= 0 {
		return bad("code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	q.Challenge = challenge
	return nil
}

// notUnreserved reports a rune outside RFC 3986's unreserved set (RFC 7636 §4.1).
func notUnreserved(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_' || r == '~')
}

// scopeToken reports whether v is a scope-token: %x21 / %x23-5B / %x5D-7E (RFC 6749 §3.3).
func scopeToken(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b < 0x21 || b == 0x22 || b == 0x5c || b > 0x7e {
			return false
		}
	}
	return v != ""
}

// short cuts a value taken from a request for an error description.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func hasScope(scope, value string) bool { return slices.Contains(strings.Fields(scope), value) }

// RedirectTo returns the client's redirect URI with params, iss (RFC 9207) and the request's
// state added to its query, or, when fragment, in its fragment.
func RedirectTo(redirectURI, iss, state string, params url.Values, fragment bool) string {
	u, err := url.Parse(redirectURI)
	if err != nil { // checked against the registered URIs, so it parsed before
		return redirectURI
	}
	q := url.Values{}
	if !fragment {
		q = u.Query()
	}
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", iss)
	if fragment {
		// Form encoding, as in a query (OAuth 2.0 Multiple Response Type Encoding §4).
		u.Fragment, u.RawFragment = "", ""
		return u.String() + "#" + q.Encode()
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Reply is how the browser takes params back to the client of q, in its response mode:
// a redirect with them in the query or the fragment, or (form_post) a page that posts them
// to the redirect URI.
func Reply(q *Request, iss string, params url.Values) *Outcome {
	if q.ResponseMode != FormPost {
		return &Outcome{Redirect: RedirectTo(q.RedirectURI, iss, q.State, params, q.ResponseMode == "fragment")}
	}
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	if q.State != "" {
		form.Set("state", q.State)
	}
	form.Set("iss", iss)
	return &Outcome{Redirect: q.RedirectURI, Form: form}
}

// ErrorReply is the reply that tells the client of a refusal.
func ErrorReply(q *Request, iss string, e *RedirectError) *Outcome {
	return Reply(q, iss, url.Values{"error": {e.Code}, "error_description": {e.Description}})
}
