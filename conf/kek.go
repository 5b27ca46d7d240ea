package conf

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// kekSize is the size of the key-encryption key (AES-256; core/token KEKSize).
const kekSize = 32

// kekHowTo says how to make a key-encryption key, for error messages.
const kekHowTo = "32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`"

// KeyEncryptionKeyBytes returns the key-encryption key the operator supplied through
// key-encryption-key-file or key-encryption-key, nil when neither is set. An unreadable
// file or a value that is not 32 bytes in base64 is an error naming the option.
func (s *Settings) KeyEncryptionKeyBytes() ([]byte, error) {
	text, from := s.KeyEncryptionKey, keyKEK
	if s.KeyEncryptionKeyFile != "" {
		b, err := os.ReadFile(s.KeyEncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyKEKFile, err)
		}
		text, from = string(b), keyKEKFile+" "+s.KeyEncryptionKeyFile
	}
	if text == "" {
		return nil, nil
	}
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == kekSize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: not a key-encryption key: want %s", from, kekHowTo)
}
