package expiry

import (
	"fmt"
	"time"

	"github.com/sessiond/sessiond/core/realm"
)

// pick is a timeout chosen from the settings, with where it came from.
type pick struct {
	d      time.Duration
	source string
	note   string
}

func (p pick) limit(from time.Time) Limit {
	return Limit{Seconds: int64(p.d / time.Second), Source: p.source, From: from, Ends: from.Add(p.d), Note: p.note}
}

// setting picks a realm setting by its realm-file name; configured ≤ 0 means its default.
//
// explain (here and in the functions below): the pick says where it came from. Without it,
// for the checks and stamps of every token request, which read only when a session ends,
// it has no source or note: building those strings was most of what such a check
// allocated.
func setting(explain bool, name string, configured, effective time.Duration, qualifiers ...string) pick {
	if !explain {
		return pick{d: effective}
	}
	if configured <= 0 {
		qualifiers = append(qualifiers, "default")
	}
	src := "realm " + name
	for i, q := range qualifiers {
		if i == 0 {
			src += " (" + q
		} else {
			src += ", " + q
		}
		if i == len(qualifiers)-1 {
			src += ")"
		}
	}
	return pick{d: effective, source: src}
}

func attribute(explain bool, name string, d time.Duration) pick {
	if !explain {
		return pick{d: d}
	}
	return pick{d: d, source: "client attribute " + name}
}

// rememberMe applies a remember-me value: only when > 0, and then the longer of the two
// (seed 000: "if its value is not greater than zero, it uses the same ... as the SSO
// Session"; REFERENCE.md: effective = max(normal, remember-me)).
func rememberMe(explain bool, normal pick, name string, rm time.Duration) pick {
	switch {
	case rm <= 0:
		return normal
	case rm > normal.d && !explain:
		return pick{d: rm}
	case rm > normal.d:
		return pick{d: rm, source: "realm " + name}
	case !explain:
		return normal
	default:
		normal.note = fmt.Sprintf("%s (%s) is not longer, so it does not apply", name, rm)
		return normal
	}
}

func (r Rules) userIdle(s Session, explain bool) pick {
	conf, t := r.Realm.Timeouts, r.Realm.Timeouts.Effective()
	if s.Offline {
		return setting(explain, "offlineSessionIdleTimeout", conf.OfflineSessionIdle, t.OfflineSessionIdle)
	}
	p := setting(explain, "ssoSessionIdleTimeout", conf.SSOSessionIdle, t.SSOSessionIdle)
	if s.RememberMe {
		p = rememberMe(explain, p, "ssoSessionIdleTimeoutRememberMe", t.SSOSessionIdleRememberMe)
	}
	return p
}

// userMax returns the user session's max; false for an offline session whose realm does
// not limit it (seed 000: "offline sessions never expire by lifespan, only by idle").
func (r Rules) userMax(s Session, explain bool) (pick, bool) {
	conf, t := r.Realm.Timeouts, r.Realm.Timeouts.Effective()
	if s.Offline {
		if !t.OfflineSessionMaxLimited {
			return pick{}, false
		}
		return setting(explain, "offlineSessionMaxLifespan", conf.OfflineSessionMax, t.OfflineSessionMax, "limited"), true
	}
	p := setting(explain, "ssoSessionMaxLifespan", conf.SSOSessionMax, t.SSOSessionMax)
	if s.RememberMe {
		p = rememberMe(explain, p, "ssoSessionMaxLifespanRememberMe", t.SSOSessionMaxRememberMe)
	}
	return p, true
}

// clientIdle: client attribute > 0, else the realm's client value > 0, else the user
// session's idle (seeds 000/004: "when set to zero, uses the same idle timeout in the SSO
// Session Idle"). Not cut at the user session's idle: Keycloak does not, and the user
// session's own end bounds the client session anyway.
func (r Rules) clientIdle(c *realm.Client, s Session, explain bool) pick {
	t := r.Realm.Timeouts.Effective()
	c = orNone(c)
	attr, attrName, realmValue, realmName := c.SessionIdle, realm.AttrSessionIdle, t.ClientSessionIdle, "clientSessionIdleTimeout"
	if s.Offline {
		attr, attrName, realmValue, realmName = c.OfflineSessionIdle, realm.AttrOfflineSessionIdle, t.ClientOfflineSessionIdle, "clientOfflineSessionIdleTimeout"
	}
	return override(explain, attrName, attr, realmName, realmValue, r.userIdle(s, explain))
}

// clientMax: as clientIdle, then cut at the user session's max. For offline sessions only
// when Offline Session Max Limited is on.
//
// Keycloak (SessionExpirationUtils) also evaluates an offline client session's max when the
// client attribute client.offline.session.max.lifespan is > 0 and the realm does not limit
// offline sessions. Seed 000 says "Client Offline Session Max is only evaluated in the client
// if Offline Session Max Limited is Enabled at the realm level"; the seeds win, so here the
// attribute is ignored then, and Explain says so.
func (r Rules) clientMax(c *realm.Client, s Session, cs ClientSession, userMax *Limit, explain bool) (max Limit, ok bool, ignored []string) {
	t := r.Realm.Timeouts.Effective()
	c = orNone(c)
	if s.Offline && !t.OfflineSessionMaxLimited {
		if c.OfflineSessionMax > 0 && explain {
			ignored = append(ignored, fmt.Sprintf("client attribute %s (%s): offlineSessionMaxLifespanEnabled is off (seed 000)", realm.AttrOfflineSessionMax, c.OfflineSessionMax))
		}
		if t.ClientOfflineSessionMax > 0 && explain {
			ignored = append(ignored, fmt.Sprintf("realm clientOfflineSessionMaxLifespan (%s): offlineSessionMaxLifespanEnabled is off (seed 000)", t.ClientOfflineSessionMax))
		}
		return Limit{}, false, ignored
	}
	attr, attrName, realmValue, realmName := c.SessionMax, realm.AttrSessionMax, t.ClientSessionMax, "clientSessionMaxLifespan"
	if s.Offline {
		attr, attrName, realmValue, realmName = c.OfflineSessionMax, realm.AttrOfflineSessionMax, t.ClientOfflineSessionMax, "clientOfflineSessionMaxLifespan"
	}
	um, _ := r.userMax(s, explain) // both branches that reach here have a user max
	l := override(explain, attrName, attr, realmName, realmValue, um).limit(cs.Started)
	if userMax != nil && userMax.Ends.Before(l.Ends) {
		l.Ends = userMax.Ends
		if explain {
			l.Note = "cut at the user session's max (" + userMax.Source + ")"
		}
	}
	return l, true, nil
}

// override picks the client attribute, else the realm's client-level value, else fallback.
func override(explain bool, attrName string, attr time.Duration, realmName string, realmValue time.Duration, fallback pick) pick {
	switch {
	case attr > 0:
		return attribute(explain, attrName, attr)
	case realmValue > 0 && !explain:
		return pick{d: realmValue}
	case realmValue > 0:
		return pick{d: realmValue, source: "realm " + realmName}
	default:
		return fallback
	}
}

// orNone stands in a client without overrides for a missing one.
func orNone(c *realm.Client) *realm.Client {
	if c == nil {
		return &realm.Client{}
	}
	return c
}
