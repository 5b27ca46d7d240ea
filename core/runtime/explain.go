package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sessiond/sessiond/conf"
)

// The errors of a provider that will not start name what the operator must change: the
// key, where it was set, and for a plugin binary where a relative path was looked for.

// entry is the effective value and source of key; ok is false for a key not listed.
func entry(settings *conf.Settings, key string) (conf.Entry, bool) {
	for _, e := range settings.Effective() {
		if e.Key == key {
			return e, true
		}
	}
	return conf.Entry{}, false
}

// explainCommand wraps the error of starting a registered plugin with the key that
// registered it, its source and, for a binary that is not there, where a relative path
// was resolved.
func explainCommand(settings *conf.Settings, r conf.Registration, err error) error {
	key := fmt.Sprintf("spi-%s-%s-command", r.SPI, r.ID)
	e, ok := entry(settings, key)
	if !ok {
		return fmt.Errorf("%s: %w", key, err)
	}
	where := ""
	if !filepath.IsAbs(e.Value) {
		dir, _ := entry(settings, "plugin-dir")
		abs, _ := filepath.Abs(r.Command)
		where = fmt.Sprintf("; a relative path is taken in plugin-dir %q (%s), so it was looked for at %s", settings.PluginDir, dir.Source, abs)
		// plugin-dir defaulted to plugins/ before; say so rather than let an upgrade
		// look like a lost binary.
		old := filepath.Join("plugins", e.Value)
		if fi, statErr := os.Stat(old); statErr == nil && fi.Mode().IsRegular() && dir.Source.Kind == conf.FromDefault {
			where += fmt.Sprintf("; there is one at %s, in plugins/, the default plugin-dir of earlier versions: set --plugin-dir=plugins to run it from there", old)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s=%s (%s): no plugin binary there%s: %w", key, e.Value, e.Source, where, err)
	}
	return fmt.Errorf("%s=%s (%s)%s: %w", key, e.Value, e.Source, where, err)
}

// optionName is how providers name their options in errors (sqlstore.ReadOptions and the
// SDK's option readers: "option url: ...").
var optionName = regexp.MustCompile(`\boption ([a-z0-9][a-z0-9-]*)`)

// optionSources is the tail of a Configure error that names the full key of the option
// the provider complained about and where it was set.
func optionSources(settings *conf.Settings, spiName, id string, err error) string {
	var said []string
	seen := map[string]bool{}
	for _, m := range optionName.FindAllStringSubmatch(err.Error(), -1) {
		key := fmt.Sprintf("spi-%s-%s-%s", spiName, id, m[1])
		if seen[key] {
			continue
		}
		seen[key] = true
		if e, ok := entry(settings, key); ok {
			said = append(said, fmt.Sprintf("%s is set by %s", key, e.Source))
		}
	}
	if len(said) == 0 {
		return ""
	}
	return " (" + strings.Join(said, "; ") + ")"
}
