package realm

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The actions of Keycloak's action tokens, by their token type ids. A realm may override the
// User-Initiated Action Lifespan of each (the admin console's "Override User-Initiated Action
// Lifespan": Email Verification, IdP account email verification, Forgot password, Execute
// actions), and of custom actions by their own names.
const (
	ActionVerifyEmail      = "verify-email"
	ActionIdPVerifyAccount = "idp-verify-account-via-email"
	ActionResetCredentials = "reset-credentials"
	ActionExecuteActions   = "execute-actions"
)

// KeycloakActions are the four actions Keycloak ships, in the admin console's order.
func KeycloakActions() []string {
	return []string{ActionVerifyEmail, ActionIdPVerifyAccount, ActionResetCredentials, ActionExecuteActions}
}

// AttrActionLifespanPrefix starts the realm attribute that overrides one action's
// User-Initiated Action Lifespan: "actionTokenGeneratedByUserLifespan.verify-email" = "600"
// (Keycloak's RealmAttributes.ACTION_TOKEN_GENERATED_BY_USER_LIFESPAN + "." + action).
const AttrActionLifespanPrefix = "actionTokenGeneratedByUserLifespan."

// actionName is what an action may be called: Keycloak's ids are lowercase words joined by
// dashes; custom ones may also use dots, underscores and capitals. The bound and the
// alphabet keep a name safe in a record key, a log line and a URL without escaping.
var actionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckActionName refuses an action name outside the safe pattern: a letter or digit, then
// up to 63 letters, digits, '.', '_' or '-'.
func CheckActionName(name string) error {
	if !actionName.MatchString(name) {
		return fmt.Errorf("action %q is not a valid action name (a letter or digit, then up to 63 letters, digits, '.', '_' or '-')", cutName(name))
	}
	return nil
}

func cutName(s string) string {
	if len(s) > 70 {
		return strings.ToValidUTF8(s[:70], "") + "…"
	}
	return s
}

// UserActionLifespanFor is the lifespan of an action token the user asked for (a
// user-initiated one): the realm's override for that action, else User-Initiated Action
// Lifespan (Keycloak's RealmModel.getActionTokenGeneratedByUserLifespan(actionTokenType)).
func (r *Realm) UserActionLifespanFor(action string) time.Duration {
	if d, ok := r.ActionLifespans[action]; ok {
		return d
	}
	return r.Timeouts.Effective().UserActionLifespan
}

// realmAttributes reads the per-action overrides among the realm attributes; the session
// limits (sessionLimits.*) are read by sessionLimits.
// Attributes are as strict as fields: an unknown one is an error, so a misspelt override
// never passes silently. An empty value is "not set", as Keycloak skips it.
func realmAttributes(attrs map[string]string) (map[string]time.Duration, error) {
	var out map[string]time.Duration
	// Sorted, so that the first error reported is the same on every run.
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		if strings.HasPrefix(name, AttrSessionLimitsPrefix) || name == AttrDPoPNonce {
			continue
		}
		action, ok := strings.CutPrefix(name, AttrActionLifespanPrefix)
		if !ok {
			return nil, fmt.Errorf("attributes: unknown attribute %q (sessiond reads %s<action>, e.g. %s%s, %s* and %s)", cutName(name), AttrActionLifespanPrefix, AttrActionLifespanPrefix, ActionVerifyEmail, AttrSessionLimitsPrefix, AttrDPoPNonce)
		}
		if err := CheckActionName(action); err != nil {
			return nil, fmt.Errorf("attributes: %q: %w", cutName(name), err)
		}
		value := strings.TrimSpace(attrs[name])
		if value == "" {
			continue
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n <= 0 || n > maxActionLifespanSeconds {
			return nil, fmt.Errorf("attributes: %q: %q is not a positive whole number of seconds up to %d (remove the attribute to use User-Initiated Action Lifespan)", name, cutName(value), maxActionLifespanSeconds)
		}
		if out == nil {
			out = map[string]time.Duration{}
		}
		out[action] = time.Duration(n) * time.Second
	}
	return out, nil
}

// maxActionLifespanSeconds bounds an override: ten years, far past any sensible one, and
// far from overflowing a time.Duration.
const maxActionLifespanSeconds = 10 * 366 * 24 * 3600
