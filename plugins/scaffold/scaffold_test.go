package scaffold

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

// checkout is this repository, the checkout a module is written against.
func checkout(t *testing.T) string {
	t.Helper()
	root := FindCheckout(".")
	if root == "" {
		t.Fatal("no checkout found above the test's folder")
	}
	return root
}

func TestWriteEverySPI(t *testing.T) {
	root := checkout(t)
	for _, name := range spi.Names() {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "mod")
			files, err := Write(Options{SPI: name, Name: "x-1", Dir: dir, Checkout: root})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"go.mod", "go.sum", "main.go", "provider.go", "provider_test.go", "README.md"} {
				if !strings.Contains(strings.Join(files, " "), want) {
					t.Errorf("wrote %v, not %s", files, want)
				}
			}
			mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			for _, want := range []string{"module example.com/sessiond-x-1\n", "require github.com/sessiond/sessiond v0.0.0\n",
				"replace github.com/sessiond/sessiond => " + root + "\n", "github.com/hashicorp/go-hclog v"} {
				if !strings.Contains(string(mod), want) {
					t.Errorf("go.mod lacks %q:\n%s", want, mod)
				}
			}
			provider, _ := os.ReadFile(filepath.Join(dir, "provider.go"))
			if !strings.Contains(string(provider), `const ID = "x-1"`) {
				t.Errorf("provider.go does not name the provider:\n%s", provider)
			}
		})
	}
}

func TestWriteAgainstAPublishedVersion(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(Options{SPI: spi.CacheLifespan, Name: "x", Dir: dir, Module: "example.org/x", Version: "v1.2.3"}); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(mod), "require github.com/sessiond/sessiond v1.2.3\n") || strings.Contains(string(mod), "replace") {
		t.Errorf("go.mod:\n%s", mod)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); !os.IsNotExist(err) {
		t.Errorf("a go.sum was written without a checkout to take it from: %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	root := checkout(t)
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "a"), nil, 0o644)
	notSessiond := t.TempDir()
	os.WriteFile(filepath.Join(notSessiond, "go.mod"), []byte("module example.com/other\n"), 0o644)
	for name, o := range map[string]Options{
		"unknown SPI":       {SPI: "sessions", Name: "x", Dir: t.TempDir(), Checkout: root},
		"name with capital": {SPI: spi.CacheLifespan, Name: "X", Dir: t.TempDir(), Checkout: root},
		"name with a dot":   {SPI: spi.CacheLifespan, Name: "a.b", Dir: t.TempDir(), Checkout: root},
		"folder not empty":  {SPI: spi.CacheLifespan, Name: "x", Dir: full, Checkout: root},
		"no folder":         {SPI: spi.CacheLifespan, Name: "x", Checkout: root},
		"another module":    {SPI: spi.CacheLifespan, Name: "x", Dir: t.TempDir(), Checkout: notSessiond},
		"no checkout":       {SPI: spi.CacheLifespan, Name: "x", Dir: t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Write(o); !errors.Is(err, ErrInvalid) {
				t.Errorf("Write: %v, want ErrInvalid", err)
			}
		})
	}
}
