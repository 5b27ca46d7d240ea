package ssf

import (
	"net/url"
	"strings"
)

// Metadata is the transmitter configuration metadata (SSF 1.0 §7.1), served at the issuer's
// /.well-known/ssf-configuration.
type Metadata struct {
	SpecVersion              string       `json:"spec_version"`
	Issuer                   string       `json:"issuer"`
	JWKSURI                  string       `json:"jwks_uri"`
	DeliveryMethodsSupported []string     `json:"delivery_methods_supported"`
	ConfigurationEndpoint    string       `json:"configuration_endpoint"`
	StatusEndpoint           string       `json:"status_endpoint"`
	VerificationEndpoint     string       `json:"verification_endpoint"`
	AuthorizationSchemes     []authScheme `json:"authorization_schemes"`
	DefaultSubjects          string       `json:"default_subjects"`
}

type authScheme struct {
	SpecURN string `json:"spec_urn"`
}

// StreamsPath, StatusPath and VerifyPath are the stream management endpoints under a
// realm's admin API (/admin/realms/{realm}): they take the admin credential.
const (
	StreamsPath = "/ssf/streams"
	StatusPath  = "/ssf/status"
	VerifyPath  = "/ssf/verify"
)

// Metadata returns the transmitter metadata of a realm; an unknown realm wraps
// spi.ErrNotFound. Every stream gets every session of its realm (default_subjects ALL:
// sessiond has no subject management), and stream management takes a bearer token
// (RFC 6750): the admin credential.
func (t *Transmitter) Metadata(realmName string) (Metadata, error) {
	r, err := t.realm(realmName)
	if err != nil {
		return Metadata{}, err
	}
	iss := t.issuer(r.Name)
	admin := strings.TrimSuffix(iss, "/realms/"+url.PathEscape(r.Name)) + "/admin/realms/" + url.PathEscape(r.Name)
	return Metadata{
		SpecVersion: SpecVersion, Issuer: iss, JWKSURI: t.jwks(r.Name),
		DeliveryMethodsSupported: []string{DeliveryPush},
		ConfigurationEndpoint:    admin + StreamsPath,
		StatusEndpoint:           admin + StatusPath,
		VerificationEndpoint:     admin + VerifyPath,
		AuthorizationSchemes:     []authScheme{{SpecURN: "urn:ietf:rfc:6750"}},
		DefaultSubjects:          "ALL",
	}, nil
}

// WellKnownPath is where an issuer's metadata is, as SSF 1.0 §7.2 forms it: the well-known
// suffix between the host and the issuer's path (RFC 8615), so for an issuer
// https://host/realms/demo it is https://host/.well-known/ssf-configuration/realms/demo.
func WellKnownPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return "/.well-known/ssf-configuration" + strings.TrimSuffix(u.EscapedPath(), "/")
}

// RealmOf returns the realm whose issuer's metadata lives at path (WellKnownPath), "" when
// none does.
func (t *Transmitter) RealmOf(path string) string {
	for _, r := range t.realms.List() {
		if WellKnownPath(t.issuer(r.Name)) == path {
			return r.Name
		}
	}
	return ""
}
