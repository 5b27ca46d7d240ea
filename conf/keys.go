package conf

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sessiond/sessiond/spi"
)

// ref names one option after its key has been resolved: a provider option, or a
// server option (spi == "") named by option.
type ref struct {
	spi, provider, option string
}

func (r ref) key() string {
	if r.spi == "" {
		return r.option
	}
	return providerKey(r.spi, r.provider, r.option)
}

// providerKey is the Keycloak form spi-<spi>-<provider>-<option>, the one documented.
func providerKey(spiName, id, option string) string {
	return "spi-" + spiName + "-" + id + "-" + option
}

// keyFor is the key show-config and the reference print for an option: the Keycloak
// form, unless hyphens make it resolve to another option (provider "log" option
// "only-errors" next to provider "log-only"); then the unambiguous "--" form.
func (c *catalog) keyFor(spiName, id, option string) string {
	k := providerKey(spiName, id, option)
	if p := c.place(k); p.ok && p.ref == (ref{spiName, id, option}) {
		return k
	}
	return "spi-" + spiName + "--" + id + "--" + option
}

// catalog is what is known about providers while keys are resolved: the descriptors
// given, and the third-party providers registered by their command/sha256 keys.
type catalog struct {
	described  bool                                 // false while only registrations are read
	descs      map[string]map[string]spi.Descriptor // spi → id →
	thirdParty map[string]map[string]bool           // spi → id →
	aliases    map[string]ref
	server     map[string]ServerOption
}

func newCatalog(descs []spi.Descriptor, described bool, probs *problems) *catalog {
	c := &catalog{
		described:  described,
		descs:      map[string]map[string]spi.Descriptor{},
		thirdParty: map[string]map[string]bool{},
		aliases:    map[string]ref{},
		server:     map[string]ServerOption{},
	}
	for _, o := range ServerOptions() {
		c.server[o.Name] = o
	}
	for _, s := range spi.Names() {
		c.descs[s] = map[string]spi.Descriptor{}
		c.thirdParty[s] = map[string]bool{}
	}
	for _, d := range descs {
		byID, ok := c.descs[d.SPI]
		switch {
		case !ok:
			probs.add(Source{}, "", "provider %q describes itself as of SPI %q, which does not exist", d.ID, d.SPI)
			continue
		case !validKey(d.ID):
			probs.add(Source{}, "", "%s provider id %q cannot be written in a key", d.SPI, d.ID)
			continue
		}
		if _, dup := byID[d.ID]; dup {
			probs.add(Source{}, "", "two %s providers have the id %q", d.SPI, d.ID)
			continue
		}
		byID[d.ID] = d
		for _, o := range d.Options {
			if reservedOption(o.Name) {
				probs.add(Source{}, "", "%s provider %q declares option %q, which sessiond reserves", d.SPI, d.ID, o.Name)
			}
			for _, a := range o.Aliases {
				if sa, ok := selectionAlias(a); ok {
					probs.add(Source{}, "", "%s provider %q declares alias %q of option %q, which sessiond reserves: it selects the %s provider",
						d.SPI, d.ID, a, o.Name, sa.SPI)
					continue
				}
				c.aliases[a] = ref{d.SPI, d.ID, o.Name}
			}
		}
	}
	return c
}

// ids lists the providers of an SPI known so far, longest first so that prefix
// matching finds the longest id.
func (c *catalog) ids(spiName string) []string {
	var ids []string
	for id := range c.descs[spiName] {
		ids = append(ids, id)
	}
	for id := range c.thirdParty[spiName] {
		if _, ok := c.descs[spiName][id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) > len(ids[j])
		}
		return ids[i] < ids[j]
	})
	return ids
}

// undescribed reports whether some registered third-party provider has not described
// itself: its options, and any aliases it declares, are not known yet.
func (c *catalog) undescribed() bool {
	for s, ids := range c.thirdParty {
		for id := range ids {
			if _, ok := c.descs[s][id]; !ok {
				return true
			}
		}
	}
	return false
}

// accepts reports whether option is a valid option name for provider id of spiName.
func (c *catalog) accepts(spiName, id, option string) bool {
	if reservedOption(option) {
		return true
	}
	if d, ok := c.descs[spiName][id]; ok {
		_, declared := d.Option(option)
		return declared
	}
	return c.thirdParty[spiName][id] // not described: anything goes, unchecked
}

// splitSPI finds the SPI a key body (after "spi-") starts with; hyphens are ambiguous,
// so the longest SPI name that is followed by "-" wins.
func splitSPI(body string) (spiName, tail string) {
	for _, s := range spi.Names() {
		if strings.HasPrefix(body, s+"-") && len(s) > len(spiName) {
			spiName, tail = s, body[len(s)+1:]
		}
	}
	return spiName, tail
}

// splitProvider splits "<provider>-<option>": the longest provider id whose option
// exists wins; failing that the longest id, so the error can name its unknown option.
func (c *catalog) splitProvider(spiName, tail string) (id, option string) {
	for _, cand := range c.ids(spiName) {
		rest, ok := strings.CutPrefix(tail, cand+"-")
		if !ok || rest == "" {
			continue
		}
		if c.accepts(spiName, cand, rest) {
			return cand, rest
		}
		if id == "" {
			id, option = cand, rest
		}
	}
	return id, option
}

// register records third-party providers named by spi-<spi>-<id>-command or -sha256
// (or the "--" form). A key that is a declared option of a described provider is not a
// registration, however it ends.
func (c *catalog) register(key string) {
	body, ok := strings.CutPrefix(key, "spi-")
	if !ok {
		return
	}
	if parts := strings.Split(body, "--"); len(parts) == 3 {
		if _, known := c.thirdParty[parts[0]]; known && parts[1] != "" && (parts[2] == optCommand || parts[2] == optSHA256) {
			c.thirdParty[parts[0]][parts[1]] = true
		}
		return
	}
	s, tail := splitSPI(body)
	if s == "" {
		return
	}
	for id := range c.descs[s] {
		if rest, ok := strings.CutPrefix(tail, id+"-"); ok && !reservedOption(rest) && c.accepts(s, id, rest) {
			return
		}
	}
	for _, opt := range []string{optCommand, optSHA256} {
		if id, ok := strings.CutSuffix(tail, "-"+opt); ok && id != "" {
			c.thirdParty[s][id] = true
		}
	}
}

// placement is the outcome of resolving one key.
type placement struct {
	ref ref
	ok  bool
	// why the key was not placed, to finish "unknown option <key>"
	why string
	// the key may yet belong to a third-party provider that has not described itself
	deferrable bool
}

// place resolves a key as written (file form) to the option it sets.
func (c *catalog) place(key string) placement {
	if _, ok := c.server[key]; ok {
		return placement{ref: ref{option: key}, ok: true}
	}
	if a, ok := selectionAlias(key); ok {
		return placement{ref: ref{option: selectionKey(a.SPI)}, ok: true}
	}
	if r, ok := c.aliases[key]; ok {
		return placement{ref: r, ok: true}
	}
	body, ok := strings.CutPrefix(key, "spi-")
	if !ok {
		return placement{}
	}
	if strings.Contains(body, "--") {
		parts := strings.Split(body, "--")
		if _, known := c.descs[parts[0]]; !known {
			return c.unknownSPI()
		}
		switch {
		case len(parts) == 2 && parts[1] == "provider":
			return placement{ref: ref{option: selectionKey(parts[0])}, ok: true}
		case len(parts) == 3 && parts[1] != "" && parts[2] != "":
			return c.option(parts[0], parts[1], parts[2])
		}
		return placement{why: "the unambiguous form is spi-<spi>--<provider>--<option> or spi-<spi>--provider"}
	}
	s, tail := splitSPI(body)
	if s == "" {
		return c.unknownSPI()
	}
	if tail == "provider" {
		return placement{ref: ref{option: selectionKey(s)}, ok: true}
	}
	id, opt := c.splitProvider(s, tail)
	if id == "" {
		return c.unknownProvider(s, "")
	}
	return c.option(s, id, opt)
}

func (c *catalog) option(s, id, opt string) placement {
	if c.accepts(s, id, opt) {
		return placement{ref: ref{s, id, opt}, ok: true}
	}
	if _, ok := c.descs[s][id]; !ok {
		return c.unknownProvider(s, id)
	}
	var names []string
	for _, o := range c.options(s, id) {
		names = append(names, o.Name)
	}
	return placement{why: fmt.Sprintf("%s provider %s has no option %q; its options are %s", s, id, opt, strings.Join(names, ", "))}
}

func (c *catalog) unknownSPI() placement {
	return placement{
		why:        "the SPIs are " + strings.Join(spi.Names(), ", "),
		deferrable: c.undescribed(),
	}
}

func (c *catalog) unknownProvider(s, id string) placement {
	what := "no " + s + " provider matches"
	if id != "" {
		what = fmt.Sprintf("%s has no provider %q", s, id)
	}
	return placement{
		why:        what + "; " + c.knownProviders(s),
		deferrable: !c.described || c.undescribed(),
	}
}

// knownProviders says which providers an SPI has, for error messages.
func (c *catalog) knownProviders(s string) string {
	var names []string
	for _, id := range c.ids(s) {
		if c.thirdParty[s][id] {
			id += " (plugin)"
		}
		names = append(names, id)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "it has no providers known yet"
	}
	return "its providers are " + strings.Join(names, ", ")
}

// options lists a provider's options as show-config and the reference show them:
// sessiond's reserved ones first, then the provider's own.
func (c *catalog) options(s, id string) []spi.Option {
	opts := reservedOptions(c.thirdParty[s][id])
	if d, ok := c.descs[s][id]; ok {
		opts = append(opts, d.Options...)
	}
	return opts
}

// keys lists every key the catalog knows, for suggestions.
func (c *catalog) keys() []string {
	var keys []string
	for k := range c.server {
		keys = append(keys, k)
	}
	for a := range c.aliases {
		keys = append(keys, a)
	}
	for _, a := range SelectionAliases() {
		keys = append(keys, a.Key)
	}
	for _, s := range spi.Names() {
		for _, id := range c.ids(s) {
			for _, o := range c.options(s, id) {
				keys = append(keys, c.keyFor(s, id, o.Name))
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// Suggest returns the known word closest to word by edit distance, or "" when none is
// close enough to be a likely typo: what "did you mean" offers for a key, a command or a
// subcommand.
func Suggest(word string, known []string) string { return suggest(word, known) }

// suggest returns the known key closest to key by edit distance, or "" when none is
// close enough to be a likely typo.
func suggest(key string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		if d := editDistance(key, k); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(2, len(key)/5) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
