package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/plugins/scaffold"
	"github.com/sessiond/sessiond/providers/builtin"
	"github.com/sessiond/sessiond/spi"
)

const pluginNewUsage = `Usage: sessiond plugin new <spi> <name> [--dir D] [--module M] [--sessiond-source S | --sessiond-version V]

Writes a new provider module for <spi> (one of %s) with the provider id <name>:
go.mod, main.go serving the provider through plugins/sdk, provider.go, and
provider_test.go running the SPI's conformance suite in-process and through a plugin
process.

  --dir D               folder to write, new or empty (default ./sessiond-<name>)
  --module M            module path (default example.com/sessiond-<name>)
  --sessiond-source S   sessiond checkout to build against with a replace directive
                        (default: the checkout holding the working folder or this binary)
  --sessiond-version V  require this published version of github.com/sessiond/sessiond
                        instead of a checkout
`

// pluginNew is `sessiond plugin new`.
func pluginNew(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plugin new", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "")
	module := fs.String("module", "", "")
	source := fs.String("sessiond-source", "", "")
	version := fs.String("sessiond-version", "", "")
	// Flags may come before or after the two words.
	var words []string
	for len(args) > 0 {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, pluginNewUsage, strings.Join(spi.Names(), ", "))
			return nil
		} else if err != nil {
			return usageError(fmt.Sprintf("%v\n\n"+pluginNewUsage, err, strings.Join(spi.Names(), ", ")))
		}
		args = fs.Args()
		if len(args) > 0 {
			words, args = append(words, args[0]), args[1:]
		}
	}
	if len(words) != 2 {
		return usageError(fmt.Sprintf(pluginNewUsage, strings.Join(spi.Names(), ", ")))
	}
	spiName, name := words[0], words[1]
	if !slices.Contains(spi.Names(), spiName) {
		return usageError(fmt.Sprintf("unknown SPI %q%s; the SPIs are %s", spiName, didYouMean(spiName, spi.Names()), strings.Join(spi.Names(), ", ")))
	}
	if _, taken := builtin.Lookup(spiName, name); taken {
		return usageError(fmt.Sprintf("%q is the id of a built-in %s provider; choose another name", name, spiName))
	}
	o := scaffold.Options{SPI: spiName, Name: name, Dir: *dir, Module: *module, Version: *version}
	if o.Dir == "" {
		o.Dir = "sessiond-" + name
	}
	if *version == "" {
		o.Checkout = *source
		if o.Checkout == "" {
			wd, _ := os.Getwd()
			exe, _ := os.Executable()
			o.Checkout = scaffold.FindCheckout(wd, filepath.Dir(exe))
		}
		if o.Checkout == "" {
			return errors.New("no sessiond checkout found above the working folder or this binary: until github.com/sessiond/sessiond publishes a version, " +
				"give the folder of a clone with --sessiond-source=<path> (or a published version with --sessiond-version=<v>)")
		}
	}
	files, err := scaffold.Write(o)
	if err != nil {
		if errors.Is(err, scaffold.ErrInvalid) {
			return usageError(err.Error())
		}
		return err
	}
	fmt.Fprintf(stdout, "wrote a %s provider %q in %s: %s\n", spiName, name, o.Dir, strings.Join(files, ", "))
	if o.Checkout != "" {
		abs, _ := filepath.Abs(o.Checkout)
		fmt.Fprintf(stdout, "go.mod builds against the sessiond checkout %s (replace directive) until a version is published\n", abs)
	}
	fmt.Fprintf(stdout, "next: cd %s && go test ./... && go build -o sessiond-%s .\n", o.Dir, name)
	_ = stderr
	return nil
}
