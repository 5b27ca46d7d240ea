// Package scaffold writes a new provider module for one SPI, from templates embedded in
// sessiond: what `sessiond plugin new <spi> <name>` runs. The module compiles as written, its
// main serves the provider through plugins/sdk, and its test runs the SPI's conformance
// suite in-process and through a real plugin process (plugins/sdk/sdktest).
//
// Until github.com/sessiond/sessiond publishes a version, the module builds against a local
// checkout through a replace directive; its go.mod and go.sum start from that checkout's,
// so the first build needs no download.
package scaffold

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/sessiond/sessiond/spi"
)

// ModulePath is the module a provider module requires.
const ModulePath = "github.com/sessiond/sessiond"

//go:embed templates
var templates embed.FS

// Options says what to write.
type Options struct {
	SPI  string // one of spi.Names()
	Name string // the provider id: the <id> of --spi-<spi>-<id>-… keys
	Dir  string // the folder to write; it must not exist, or be empty
	// Module is the new module's path; "example.com/sessiond-<name>" when empty.
	Module string
	// Checkout is the folder of a sessiond checkout the module is built against with a
	// replace directive, until a version is published. Empty: Version is required.
	Checkout string
	// Version is the released github.com/sessiond/sessiond version to require instead of a
	// checkout (go mod tidy then fetches it).
	Version string
}

// namePattern is what a provider id looks like.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// ErrInvalid marks a refusal of the options themselves.
var ErrInvalid = errors.New("invalid plugin new request")

// data is what the templates see.
type data struct {
	Options
	SPIConst  string // spi.UserSessions, …
	Binary    string // sessiond-<name>
	GoVersion string
	Requires  []string // require lines copied from the checkout's go.mod
	Replace   string   // absolute path of the checkout, "" for none
}

// spiConsts pairs each SPI with its constant in package spi and its template folder.
var spiConsts = map[string]string{
	spi.UserSessions:   "spi.UserSessions",
	spi.OfflinePreload: "spi.OfflinePreload",
	spi.CacheLifespan:  "spi.CacheLifespan",
	spi.RevocationPush: "spi.RevocationPush",
}

// Write writes the module and returns the paths it wrote, relative to o.Dir.
func Write(o Options) ([]string, error) {
	if _, ok := spiConsts[o.SPI]; !ok {
		return nil, fmt.Errorf("unknown SPI %q, want one of %s: %w", o.SPI, strings.Join(spi.Names(), ", "), ErrInvalid)
	}
	if !namePattern.MatchString(o.Name) {
		return nil, fmt.Errorf("provider name %q: want lower-case letters and digits, words joined by hyphens (it is the <id> of --spi-%s-<id>-… keys): %w", o.Name, o.SPI, ErrInvalid)
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("no folder to write into: %w", ErrInvalid)
	}
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: plugin new writes a new module into an empty or new folder: %w", o.Dir, ErrInvalid)
	}
	if o.Module == "" {
		o.Module = "example.com/sessiond-" + o.Name
	}
	d := data{Options: o, SPIConst: spiConsts[o.SPI], Binary: "sessiond-" + o.Name}
	var goSum []byte
	switch {
	case o.Checkout != "":
		abs, err := filepath.Abs(o.Checkout)
		if err != nil {
			return nil, err
		}
		mod, err := os.ReadFile(filepath.Join(abs, "go.mod"))
		if err != nil {
			return nil, fmt.Errorf("sessiond checkout %s: %w", abs, err)
		}
		if ModuleOf(mod) != ModulePath {
			return nil, fmt.Errorf("%s is not a checkout of %s (its go.mod declares %q): %w", abs, ModulePath, ModuleOf(mod), ErrInvalid)
		}
		d.Replace, d.GoVersion, d.Requires = abs, goDirective(mod), requires(mod)
		if d.Version == "" {
			d.Version = "v0.0.0"
		}
		if goSum, err = os.ReadFile(filepath.Join(abs, "go.sum")); err != nil {
			return nil, fmt.Errorf("sessiond checkout %s: %w", abs, err)
		}
	case o.Version != "":
		d.GoVersion = "1.26"
	default:
		return nil, fmt.Errorf("neither a sessiond checkout nor a version to require: %w", ErrInvalid)
	}

	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	write := func(name string, content []byte) error {
		if err := os.WriteFile(filepath.Join(o.Dir, name), content, 0o644); err != nil {
			return err
		}
		written = append(written, name)
		return nil
	}
	for _, folder := range []string{"templates/module", "templates/" + o.SPI} {
		err := fs.WalkDir(templates, folder, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			raw, err := templates.ReadFile(path)
			if err != nil {
				return err
			}
			t, err := template.New(path).Option("missingkey=error").Parse(string(raw))
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := t.Execute(&out, d); err != nil {
				return err
			}
			return write(strings.TrimSuffix(filepath.Base(path), ".tmpl"), out.Bytes())
		})
		if err != nil {
			return written, err
		}
	}
	if goSum != nil {
		if err := write("go.sum", goSum); err != nil {
			return written, err
		}
	}
	return written, nil
}

// ModuleOf is the module path a go.mod declares.
func ModuleOf(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

func goDirective(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	return "1.26"
}

// requires returns "path version" of every requirement of a go.mod, so that the new module
// starts with the versions the checkout was built and tested with.
func requires(gomod []byte) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "require" && f[1] == "(":
			in = true
		case in && len(f) == 1 && f[0] == ")":
			in = false
		case in && len(f) == 2:
			out = append(out, f[0]+" "+f[1])
		case !in && len(f) == 3 && f[0] == "require":
			out = append(out, f[1]+" "+f[2])
		}
	}
	return out
}

// FindCheckout returns the nearest folder at or above each of from whose go.mod declares
// ModulePath; "" when there is none.
func FindCheckout(from ...string) string {
	for _, start := range from {
		dir, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && ModuleOf(mod) == ModulePath {
				return dir
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}
