package conf

import (
	"testing"

	"github.com/sessiond/sessiond/spi"
)

// Issue 19, point 2: Keycloak's cache-lifespan keys take effect on their own, as in
// Keycloak: setting one selects the override provider, unless the cache-lifespan provider
// is selected explicitly, in which case a selection of another provider is refused.
func TestPoint2_keycloakLifespanKeysSelectTheOverrideProvider(t *testing.T) {
	const (
		alias       = "spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override"
		clientAlias = "spi-user-sessions-infinispan-offline-client-session-cache-entry-lifespan-override"
	)
	for _, tc := range []struct {
		name       string
		file       string
		args, env  []string
		provider   string // selected; "" when refused
		source     string // of the selection
		refusedFor []string
	}{
		{name: "alias in the file selects override", file: alias + "=3600\n",
			provider: "override", source: DefaultConfigFile + ":1"},
		{name: "client alias in the environment selects override", env: []string{EnvVar(clientAlias) + "=600"},
			provider: "override", source: "env " + EnvVar(clientAlias)},
		{name: "alias with override selected explicitly", args: []string{"--" + alias + "=3600", "--spi-cache-lifespan-provider=override"},
			provider: "override", source: "flag --spi-cache-lifespan-provider"},
		{name: "the option's own key does not select (use the selection key)", args: []string{"--spi-cache-lifespan-override-offline-session-lifespan=60"},
			provider: "default", source: "default"},
		{name: "alias while default is selected in the environment is refused", args: []string{"--" + alias + "=3600"},
			env: []string{"SESSIOND_SPI_CACHE_LIFESPAN_PROVIDER=default"},
			refusedFor: []string{"flag --" + alias + ": --" + alias + " sets an option of cache-lifespan provider \"override\"",
				"SESSIOND_SPI_CACHE_LIFESPAN_PROVIDER (env SESSIOND_SPI_CACHE_LIFESPAN_PROVIDER) selects \"default\"", "so it would do nothing"}},
		{name: "alias in the file while a flag selects default is refused", file: alias + "=3600\n",
			args:       []string{"--spi-cache-lifespan-provider=default"},
			refusedFor: []string{DefaultConfigFile + ":1: " + alias + " sets an option", "--spi-cache-lifespan-provider (flag --spi-cache-lifespan-provider) selects \"default\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inDir(t, tc.file)
			s, err := loadResolve(ProfileStart, tc.args, tc.env, testDescs())
			if tc.refusedFor != nil {
				if err == nil {
					t.Fatalf("accepted; selected %q", s.SPIs[spi.CacheLifespan].Provider)
				}
				if ps := problemsOf(t, err); len(ps) != 1 {
					t.Errorf("want one problem, got %v", ps)
				}
				mustContainAll(t, err.Error(), tc.refusedFor...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.SPIs[spi.CacheLifespan].Provider; got != tc.provider {
				t.Errorf("cache-lifespan provider %q, want %q", got, tc.provider)
			}
			if got := entry(t, s, "spi-cache-lifespan-provider").Source.String(); got != tc.source {
				t.Errorf("selection's source %q, want %q", got, tc.source)
			}
		})
	}
}

// Issue 19, point 3: an option of a provider that is not selected does nothing; it is
// accepted and warned about with its key and source (the runtime logs the warnings once).
func TestPoint3_optionsOfAProviderNotSelectedAreWarnedAbout(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string // one warning each, in order
	}{
		{name: "the guide's in-process example while postgres is selected",
			args: []string{"--spi-user-sessions-memory-in-process=true"},
			want: []string{`--spi-user-sessions-memory-in-process has no effect: it is an option of user-sessions provider "memory", and spi-user-sessions-provider is "postgres" (default); select spi-user-sessions-provider=memory to use it`}},
		{name: "an option from the environment names its variable",
			args: []string{"--spi-user-sessions-provider=embedded"},
			env:  []string{"SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL=postgres://db/sessions"},
			want: []string{`SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL has no effect: it is an option of user-sessions provider "postgres", and spi-user-sessions-provider is "embedded" (flag --spi-user-sessions-provider)`}},
		{name: "options of the selected provider are not warned about",
			args: []string{"--spi-user-sessions-provider=memory", "--spi-user-sessions-memory-in-process=true"}},
		{name: "the override's own option while default is selected",
			args: []string{"--spi-cache-lifespan-override-offline-session-lifespan=60"},
			want: []string{`--spi-cache-lifespan-override-offline-session-lifespan has no effect: it is an option of cache-lifespan provider "override", and spi-cache-lifespan-provider is "default" (default)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inDir(t, "")
			s, err := loadResolve(ProfileStart, tc.args, tc.env, testDescs())
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Warnings) != len(tc.want) {
				t.Fatalf("warnings %v, want %d", s.Warnings, len(tc.want))
			}
			for i, w := range tc.want {
				mustContainAll(t, s.Warnings[i].Error(), w)
			}
		})
	}
}
