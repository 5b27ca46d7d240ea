package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchitectureListsEveryPackage keeps docs/architecture.md's package table true: every
// package of the daemon's own tree (core, conf, internal, plugins, spi) and of its
// measuring tools (bench) is named there, so a new capability or benchmark cannot land
// without saying where it lives and why. Generated protobuf packages are covered by the
// table's `spi/*/…pb` row.
func TestArchitectureListsEveryPackage(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/sessiond/sessiond/"
	for _, path := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(path, module)
		top, _, _ := strings.Cut(rel, "/")
		switch {
		case top != "core" && top != "conf" && top != "internal" && top != "plugins" && top != "spi" && top != "bench":
			continue
		case strings.HasPrefix(rel, "spi/") && strings.HasSuffix(rel, "pb"):
			continue
		}
		if !strings.Contains(string(doc), "`"+rel+"`") {
			t.Errorf("docs/architecture.md does not name package %s: add it to the package table", rel)
		}
	}
}
