package wire

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestChangelogListsTheProtocolVersions: CHANGELOG.md's Unreleased section names the plugin
// protocol versions this tree speaks, so that a bump (or a dropped version) is recorded
// where plugin authors read it.
func TestChangelogListsTheProtocolVersions(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, unreleased, ok := strings.Cut(string(raw), "\n## [Unreleased]\n")
	if !ok {
		t.Fatal("CHANGELOG.md has no ## [Unreleased] section")
	}
	unreleased, _, _ = strings.Cut(unreleased, "\n## ")
	m := regexp.MustCompile(`(?m)^Plugin protocol versions: ([0-9, ]+)$`).FindStringSubmatch(unreleased)
	if m == nil {
		t.Fatal("the Unreleased section has no line `Plugin protocol versions: …`")
	}
	var want []string
	for _, v := range ProtocolVersions() {
		want = append(want, strconv.Itoa(v))
	}
	if got := strings.TrimSpace(m[1]); got != strings.Join(want, ", ") {
		t.Errorf("CHANGELOG.md says protocol versions %q; this tree speaks %q", got, strings.Join(want, ", "))
	}
}
