package conf

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

// A registered plugin's options appear in the reference with their types and defaults,
// beside the keys that register it (and without in-process, which plugins do not have).
func TestReferenceListsThirdPartyPlugins(t *testing.T) {
	plugin := spi.Descriptor{SPI: spi.UserSessions, ID: "redis", Version: "0.1.0", Help: "Sessions in Redis.",
		Options: []spi.Option{
			{Name: "url", Type: spi.String, Default: "redis://127.0.0.1:6379/0", Help: "Redis URL."},
			{Name: "dial-timeout", Type: spi.Duration, Default: "5s", Help: "Connect timeout."},
		}}
	var b bytes.Buffer
	if err := WriteReferenceWith(&b, testDescs(), []spi.Descriptor{plugin}); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	_, section, ok := strings.Cut(doc, "#### `redis`")
	if !ok {
		t.Fatalf("no section for the plugin:\n%s", doc)
	}
	section, _, _ = strings.Cut(section, "\n#")
	mustContainAll(t, section, "Sessions in Redis.",
		"| `spi-user-sessions-redis-url` | string | `redis://127.0.0.1:6379/0` | `SESSIOND_SPI_USER_SESSIONS_REDIS_URL` | Redis URL. |",
		"| `spi-user-sessions-redis-dial-timeout` | duration | `5s` |",
		"`spi-user-sessions-redis-command`", "`spi-user-sessions-redis-sha256`")
	if strings.Contains(section, "in-process") {
		t.Errorf("the plugin's section offers in-process:\n%s", section)
	}
	var plain bytes.Buffer
	if err := WriteReference(&plain, testDescs()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "`redis`") {
		t.Error("WriteReference without plugins lists one")
	}
}
