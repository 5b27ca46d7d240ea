package token

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sessiond/sessiond/spi"
)

// SignSET signs a Security Event Token (RFC 8417) for realm with its active asymmetric key:
// payload is the SET's claims, a JSON object with an events claim, and the JWS header type
// is secevent+jwt (RFC 8417 §2.3), which Verify accepts for no kind of token. So that no
// SET can pass for a token elsewhere either, a payload with a typ or sub claim of its own
// is refused: a SET names its subject in the event (sub_id), never in sub.
func (m *KeyManager) SignSET(ctx context.Context, realm string, payload []byte) (string, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return "", fmt.Errorf("SET in realm %q: payload is not a JSON object: %w", realm, spi.ErrInvalid)
	}
	if _, ok := claims["events"]; !ok {
		return "", fmt.Errorf("SET in realm %q: payload has no events claim: %w", realm, spi.ErrInvalid)
	}
	for name := range claims {
		if strings.EqualFold(name, "typ") || strings.EqualFold(name, "sub") {
			return "", fmt.Errorf("SET in realm %q: payload claims %s, which a SET must not: %w", realm, name, spi.ErrInvalid)
		}
	}
	raw, _, err := m.sign(ctx, realm, asymmetric, typSET, payload)
	return raw, err
}
