package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the code")

// The configuration reference is generated from the code; this test fails when the
// checked-in copy is stale. Regenerate: go test ./cmd/sessiond -run Reference -update
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "reference"}, &out, &errOut); code != 0 {
		t.Fatalf("config reference exited %d: %s", code, errOut.String())
	}
	path := filepath.Join("..", "..", "docs", "configuration.md")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./cmd/sessiond -run Reference -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("docs/configuration.md is stale; regenerate it: go test ./cmd/sessiond -run Reference -update")
	}
}
