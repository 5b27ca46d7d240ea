package conf

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

var update = flag.Bool("update", false, "rewrite testdata/reference.golden.md")

func TestWriteReferenceGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReference(&b, testDescs()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "reference.golden.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("reference differs from %s (go test ./conf -run Golden -update):\n%s", golden, b.String())
	}
}

// The reference documents every key Resolve accepts, with its env var and aliases.
func TestReferenceCoversEveryKey(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReference(&b, testDescs()); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	var probs problems
	c := newCatalog(testDescs(), true, &probs)
	for _, k := range c.keys() {
		if strings.HasPrefix(k, "spi-") && strings.HasSuffix(k, "-provider") {
			continue // selections are described in prose
		}
		want := "`" + k + "`"
		if !strings.Contains(doc, want) {
			t.Errorf("reference misses %s", want)
		}
	}
	for _, o := range ServerOptions() {
		mustContainAll(t, doc, "`"+EnvVar(o.Name)+"`")
	}
	for _, f := range KnownFeatures() {
		mustContainAll(t, doc, "`"+f.Name+"`")
	}
	mustContainAll(t, doc, "`0.0.0.0` (start-dev: `127.0.0.1`)", "Secret: masked in show-config.",
		"Alias: `spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override`.",
		"`spi-user-sessions-infinispan-preload-offline-sessions-from-database` (`SESSIOND_SPI_USER_SESSIONS_INFINISPAN_PRELOAD_OFFLINE_SESSIONS_FROM_DATABASE`) is accepted as an alias of the selection: `true` selects `database`, `false` selects `lazy`.")
}

func TestWriteReferenceRejectsBadDescriptors(t *testing.T) {
	err := WriteReference(&bytes.Buffer{}, []spi.Descriptor{{SPI: "nope", ID: "x"}})
	mustContainAll(t, errString(err), `SPI "nope"`)
}
