package conf

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Parser is a koanf.Parser for the keycloak.conf format that sessiond.conf uses:
//
//	# a comment
//	http-port=8080
//	spi-user-sessions-provider = ${SESSIONS_PROVIDER:memory}
//
// One key=value per line, keys without leading dashes, blanks around "=" ignored.
// In values, ${VAR} is replaced by the environment variable VAR (an error when it is
// not set) and ${VAR:default} falls back to default; \${ is a literal "${".
// A key set twice in one file is an error, as is any line that is not key=value.
type Parser struct {
	// Name is the file's name in error messages.
	Name string
	// Lookup resolves ${VAR}; nil means no variable is set.
	Lookup func(name string) (string, bool)
	// Lines, when not nil, receives the line each key was read from (koanf keeps values
	// only, and show-config and errors point at the line).
	Lines map[string]int
}

// Unmarshal parses b into a flat map of string values. Its error is an *Error listing
// every bad line.
func (p *Parser) Unmarshal(b []byte) (map[string]any, error) {
	out := map[string]any{}
	seen := map[string]int{}
	var probs problems
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		src := Source{Kind: FromFile, Name: p.Name, Line: n}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case !ok:
			probs.add(src, "", "expected key=value, got %q", line)
			continue
		case strings.HasPrefix(key, "-"):
			probs.add(src, key, "write keys without leading dashes in a file: %s=", strings.TrimLeft(key, "-"))
			continue
		case !validKey(key):
			probs.add(src, key, "invalid key %q: keys are letters, digits and hyphens", key)
			continue
		}
		if first, dup := seen[key]; dup {
			probs.add(src, key, "%s is set again; it was first set on line %d", key, first)
			continue
		}
		seen[key] = n
		expanded, err := p.expand(val)
		if err != nil {
			probs.add(src, key, "%s: %v", key, err)
			continue
		}
		out[key] = expanded
		if p.Lines != nil {
			p.Lines[key] = n
		}
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// expand replaces ${VAR} and ${VAR:default}.
func (p *Parser) expand(v string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(v, "${")
		if i < 0 {
			b.WriteString(v)
			return b.String(), nil
		}
		if i > 0 && v[i-1] == '\\' {
			b.WriteString(v[:i-1])
			b.WriteString("${")
			v = v[i+2:]
			continue
		}
		b.WriteString(v[:i])
		end := strings.IndexByte(v[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in value")
		}
		expr := v[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":")
		if name == "" {
			return "", fmt.Errorf("empty variable name in ${%s}", expr)
		}
		val, ok := "", false
		if p.Lookup != nil {
			val, ok = p.Lookup(name)
		}
		switch {
		case ok:
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set and ${%s} has no default (write ${%s:default})", name, name, name)
		}
		v = v[i+end+1:]
	}
}

// Marshal writes m as key=value lines, sorted by key, escaping "${" so that Unmarshal
// reads back the same values.
func (p *Parser) Marshal(m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, strings.ReplaceAll(fmt.Sprint(m[k]), "${", `\${`))
	}
	return b.Bytes(), nil
}

// validKey accepts what can name an option: letters, digits and hyphens. Dots would
// nest in koanf; anything else is a typo no key can match.
func validKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
