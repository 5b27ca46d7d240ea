package conf

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

const envPrefix = "SESSIOND_"

// pluginCookie is go-plugin's handshake variable (plugins/wire), present in the
// environment of plugin processes; it is not configuration.
const pluginCookie = "SESSIOND_PLUGIN"

// testPrefix is reserved for the test suite's own variables (SESSIOND_TEST_POSTGRES_URL,
// SESSIOND_TEST_REDIS_URL, SESSIOND_TEST_NATS_URL…), which a shell running the tests keeps
// set while it runs sessiond binaries; they are not configuration, and no option may start
// with "test-".
const testPrefix = envPrefix + "TEST_"

// layer is what one source set, keys as written (without dashes or env prefix).
type layer struct {
	kind SourceKind
	k    *koanf.Koanf
	src  map[string]Source
	bare map[string]bool // flags given without a value (--in-process)
}

// Loaded is the configuration as read, before any key is checked against the providers.
type Loaded struct {
	profile  Profile
	layers   []layer // file, env, flags: lowest first
	hostname string
	pid      int
	serving  bool // Resolve applies the profile's rules for serving (ForServing)
}

// ForServing returns the configuration for running the server with: its Resolve also
// applies the profile's serving rules (under start: TLS or http-enabled, a hostname, strong
// credentials), reporting their problems with every other one. show-config, plugins list
// and the reference resolve without them, so they work on a configuration that start
// would refuse.
func (l *Loaded) ForServing() *Loaded {
	c := *l
	c.serving = true
	return &c
}

// Entry is one key's value and where it came from.
type Entry struct {
	Key    string
	Value  string
	Source Source
}

// Load reads the configuration file, the SESSIOND_* variables of environ and args (the
// command line after the command name). It fails on what can be judged without knowing
// the providers: malformed or positional arguments, a missing --config file, bad lines in
// the file.
func Load(profile Profile, args, environ []string) (*Loaded, error) {
	l, probs := load(profile, args, environ)
	if err := probs.err(); err != nil {
		return nil, err
	}
	return l, nil
}

// Peek returns the values of the given server options as far as they are set in the
// file, env or flags, ignoring every problem; defaults are not returned. It is for what
// must be known before loading proper, such as the log level of the logger that reports
// loading.
func Peek(args, environ []string, keys ...string) []Entry {
	l, _ := load(ProfileStart, args, environ)
	var out []Entry
	for _, k := range keys {
		if v, src, ok := l.lookup(k); ok {
			out = append(out, Entry{Key: k, Value: v, Source: src})
		}
	}
	return out
}

// lookup finds a key under its exact spelling in the highest layer that has a value for it.
func (l *Loaded) lookup(key string) (string, Source, bool) {
	for i := len(l.layers) - 1; i >= 0; i-- {
		ly := l.layers[i]
		if ly.k.Exists(key) && !ly.bare[key] {
			return ly.k.String(key), ly.src[key], true
		}
	}
	return "", Source{}, false
}

func load(profile Profile, args, environ []string) (*Loaded, problems) {
	var probs problems
	if profile != ProfileStart && profile != ProfileDev {
		probs.add(Source{}, "", "unknown profile %q: want %s or %s", profile, ProfileStart, ProfileDev)
	}
	host, _ := os.Hostname()
	l := &Loaded{profile: profile, hostname: host, pid: os.Getpid()}
	flags := loadFlags(args, &probs)
	envs := loadEnv(environ, &probs)

	path, src, explicit := DefaultConfigFile, Source{}, false
	for _, ly := range []layer{flags, envs} {
		if ly.k.Exists(keyConfig) {
			path, src, explicit = ly.k.String(keyConfig), ly.src[keyConfig], true
			if ly.bare[keyConfig] || path == "" {
				probs.add(src, keyConfig, "config needs a file path")
			}
			break
		}
	}
	if fl, ok := loadFile(path, src, explicit, environ, &probs); ok {
		l.layers = append(l.layers, fl)
	}
	l.layers = append(l.layers, envs, flags)
	return l, probs
}

func loadFile(path string, src Source, explicit bool, environ []string, probs *problems) (layer, bool) {
	ly := layer{kind: FromFile, k: koanf.New("."), src: map[string]Source{}}
	if path == "" {
		return ly, false
	}
	if _, err := os.Stat(path); err != nil {
		switch {
		case !explicit && errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, fs.ErrNotExist):
			probs.add(src, keyConfig, "config file %s does not exist", path)
		default:
			probs.add(src, keyConfig, "config file %s: %v", path, err)
		}
		return ly, false
	}
	p := &Parser{Name: path, Lookup: lookupIn(environ), Lines: map[string]int{}}
	if err := ly.k.Load(file.Provider(path), p); err != nil {
		if ce := (*Error)(nil); errors.As(err, &ce) {
			*probs = append(*probs, ce.Problems...)
		} else {
			probs.add(src, keyConfig, "read config file %s: %v", path, err)
		}
		return ly, false
	}
	for k, n := range p.Lines {
		ly.src[k] = Source{Kind: FromFile, Name: path, Line: n}
	}
	if ly.k.Exists(keyConfig) {
		probs.add(ly.src[keyConfig], keyConfig, "config cannot be set inside the config file; use --config or %s", EnvVar(keyConfig))
	}
	return ly, true
}

func loadEnv(environ []string, probs *problems) layer {
	ly := layer{kind: FromEnv, k: koanf.New("."), src: map[string]Source{}}
	transform := func(name, value string) (string, any) {
		if name == pluginCookie || strings.HasPrefix(name, testPrefix) {
			return "", nil
		}
		key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, envPrefix)), "_", "-")
		src := Source{Kind: FromEnv, Name: name}
		if !validKey(key) {
			probs.add(src, key, "invalid variable name %s: SESSIOND_ is followed by letters, digits and underscores", name)
			return "", nil
		}
		ly.src[key] = src
		return key, value
	}
	// The env provider never fails; a failure here would be a koanf bug, not configuration.
	_ = ly.k.Load(env.Provider(".", env.Opt{
		Prefix:        envPrefix,
		TransformFunc: transform,
		EnvironFunc:   func() []string { return environ },
	}), nil)
	return ly
}

// loadFlags reads --key=value and --key value. A flag followed by another flag, or
// last, has no value: that is "true" for a bool option and an error for the rest,
// decided once the option's type is known.
func loadFlags(args []string, probs *problems) layer {
	ly := layer{kind: FromFlag, k: koanf.New("."), src: map[string]Source{}, bare: map[string]bool{}}
	m := map[string]any{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			for _, rest := range args[i+1:] {
				probs.add(Source{Kind: FromFlag, Name: rest}, "", "unexpected argument %q: sessiond takes options only", rest)
			}
			i = len(args)
			continue
		case !strings.HasPrefix(a, "--"):
			msg := "unexpected argument %q: sessiond takes options only, written --key=value"
			if strings.HasPrefix(a, "-") {
				msg = "unknown argument %q: options are written --key=value"
			}
			probs.add(Source{Kind: FromFlag, Name: a}, "", msg, a)
			continue
		}
		key, val, hasVal := strings.Cut(a[2:], "=")
		src := Source{Kind: FromFlag, Name: "--" + key}
		if !validKey(key) {
			probs.add(src, key, "invalid option %q: keys are letters, digits and hyphens", a)
			continue
		}
		delete(ly.bare, key)
		if !hasVal {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				val = args[i]
			} else {
				ly.bare[key] = true
			}
		}
		m[key] = val
		ly.src[key] = src
	}
	_ = ly.k.Load(confmap.Provider(m, ""), nil) // a map provider cannot fail
	return ly
}

// lookupIn resolves variables from environ; the last definition of a name wins.
func lookupIn(environ []string) func(string) (string, bool) {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}
