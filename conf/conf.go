// Package conf reads sessiond's configuration: Keycloak-style keys from defaults, the
// conf/sessiond.conf file, SESSIOND_* environment variables and --flags, in that order.
//
// Loading happens in two phases because a third-party provider's options are only known
// once its plugin process has described itself: Load reads every layer, Registrations
// says which providers to start, and Resolve checks every key against the descriptors of
// the providers and returns typed Settings. Problems are collected and reported together,
// each naming its key, where it was set and, for a misspelt key, the closest known one.
//
// github.com/knadh/koanf/v2 holds each layer (its file, env and confmap providers, with
// Parser for the file format); the key scheme, which koanf cannot know, lives here.
package conf

import (
	"fmt"
	"sort"
	"strings"
)

// Profile is the command a configuration is loaded for. Profiles differ in defaults only.
type Profile string

const (
	ProfileStart Profile = "start"     // production: listen on all interfaces
	ProfileDev   Profile = "start-dev" // development: loopback, demo realm
)

// SourceKind is the layer a value came from, lowest first.
type SourceKind int

const (
	FromDefault SourceKind = iota
	FromFile
	FromEnv
	FromFlag
)

// Source says where a value was set.
type Source struct {
	Kind SourceKind
	Name string // the file path, the env var name, or the flag as written (--key)
	Line int    // for FromFile
}

// String renders the source as show-config and error messages print it:
// "default", "conf/sessiond.conf:12", "env SESSIOND_HTTP_PORT", "flag --http-port".
func (s Source) String() string {
	switch s.Kind {
	case FromFile:
		return fmt.Sprintf("%s:%d", s.Name, s.Line)
	case FromEnv:
		return "env " + s.Name
	case FromFlag:
		return "flag " + s.Name
	}
	return "default"
}

// spell writes key the way it is written in this source, so a suggestion can be pasted
// back where the mistake was made.
func (s Source) spell(key string) string {
	switch s.Kind {
	case FromEnv:
		return EnvVar(key)
	case FromFlag:
		return "--" + key
	}
	return key
}

// EnvVar is the environment variable that sets key: SESSIOND_ + upper case, "-" → "_"
// (so the unambiguous "--" separator becomes "__").
func EnvVar(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Source Source
	Key    string // the key as the operator wrote it, without dashes or env prefix
	Msg    string // names the key and, where it helps, the value and what is allowed
}

// Error prefixes the source; a problem of no one key's value (start's missing TLS) has
// none.
func (p Problem) Error() string {
	if p.Source == (Source{}) {
		return p.Msg
	}
	return p.Source.String() + ": " + p.Msg
}

// Error lists every problem found, so an operator can fix them all in one go.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "configuration: " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "configuration has %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find an individual Problem.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems collects Problems in the order they are found.
type problems []Problem

func (ps *problems) add(src Source, key, format string, args ...any) {
	*ps = append(*ps, Problem{Source: src, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil or an *Error with the problems sorted by layer and position, so
// the report reads like the configuration does.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	out := append([]Problem(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Source, out[j].Source
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Line < b.Line
	})
	return &Error{Problems: out}
}
