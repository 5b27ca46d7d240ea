package conf

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

func TestThirdPartyProviderInTwoPhases(t *testing.T) {
	inDir(t, "plugin-dir=/opt/sessiond/plugins\n"+
		"spi-user-sessions-acme-db-command=acme\n"+
		"spi-user-sessions-acme-db-sha256="+strings.ToUpper(testSum)+"\n"+
		"spi-user-sessions-acme-db-pool-size=8\n")
	args := []string{
		"--spi-user-sessions-provider=acme-db",
		"--spi-user-sessions--acme-db--dsn=postgres://secret",
		"--spi-connections-acme-legacy-mode=true",                   // the plugin's own alias
		"--spi-user-sessions-memory-max-sessions=5",                 // a built-in, judged in phase 2
		"--spi-revocation-push-other-command=/abs/other",            // registered, not selected
		"--spi-revocation-push-other-sha256=" + testSum,             //
		"--spi-revocation-push-other-anything=goes",                 // never described: unchecked
		"--spi-revocation-push-log-only-max-retries=2",              //
		"--spi-offline-preload-lazy-in-process=true",                //
		"--spi-user-sessions-memory-watch-buffer=9",                 //
		"--spi-cache-lifespan-override-offline-session-lifespan=1h", //
	}
	l, err := Load(ProfileStart, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	regs, err := l.Registrations()
	if err != nil {
		t.Fatalf("Registrations: %v", err)
	}
	wantRegs := Registrations{
		Selected: map[string]string{spi.UserSessions: "acme-db", spi.OfflinePreload: "lazy", spi.CacheLifespan: "default", spi.RevocationPush: "log-only"},
		ThirdParty: []Registration{
			{SPI: spi.UserSessions, ID: "acme-db", Command: "/opt/sessiond/plugins/acme", SHA256: testSum},
			{SPI: spi.RevocationPush, ID: "other", Command: "/abs/other", SHA256: testSum},
		},
	}
	if !reflect.DeepEqual(regs, wantRegs) {
		t.Errorf("Registrations =\n%+v\nwant\n%+v", regs, wantRegs)
	}

	// Phase 2: the selected plugin has described itself; "other" has not.
	s, err := l.Resolve(append(testDescs(), acmeDesc()))
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	acme := s.SPIs[spi.UserSessions].Providers["acme-db"]
	wantAcme := ProviderSettings{ID: "acme-db", ThirdParty: true, Described: true, Command: "/opt/sessiond/plugins/acme", SHA256: testSum,
		Config: spi.Config{"dsn": "postgres://secret", "pool-size": "8", "legacy": "true"}}
	if !reflect.DeepEqual(acme, wantAcme) {
		t.Errorf("acme-db =\n%+v\nwant\n%+v", acme, wantAcme)
	}
	other := s.SPIs[spi.RevocationPush].Providers["other"]
	if other.Described || other.Config["anything"] != "goes" || other.Command != "/abs/other" {
		t.Errorf("undescribed plugin = %+v", other)
	}
	if !s.SPIs[spi.OfflinePreload].Providers["lazy"].InProcess {
		t.Error("lazy in-process not set")
	}
	if got := s.SPIs[spi.UserSessions].Providers["memory"].Config; got["max-sessions"] != "5" || got["watch-buffer"] != "9" {
		t.Errorf("memory config = %v", got)
	}
	for key, want := range map[string]string{
		"spi-user-sessions-acme-db-dsn":             "*****", // declared secret
		"spi-user-sessions-acme-db-pool-size":       "8",
		"spi-revocation-push-other-anything":        "*****", // type unknown: masked
		"spi-user-sessions-acme-db-sha256":          testSum,
		"spi-revocation-push-other-command":         "/abs/other",
		"spi-revocation-push-webhook-secret":        "", // unset secrets stay empty
		"spi-user-sessions-memory-in-process":       "false",
		"spi-offline-preload-database-all-at-start": "false",
	} {
		if got := entry(t, s, key).Value; got != want {
			t.Errorf("show-config %s = %q, want %q", key, got, want)
		}
	}

	// The plugin's descriptor is what judges its options.
	_, err = loadResolve(ProfileStart, append(args, "--spi-user-sessions-acme-db-pool-size=big", "--spi-user-sessions-acme-db-pol-size=1"), nil,
		append(testDescs(), acmeDesc()))
	mustContainAll(t, errString(err), `invalid value "big" for --spi-user-sessions-acme-db-pool-size`,
		"did you mean --spi-user-sessions-acme-db-pool-size?")
}

func TestUncheckedWhileAPluginIsUndescribed(t *testing.T) {
	inDir(t, "")
	args := []string{
		"--spi-revocation-push-other-command=other", "--spi-revocation-push-other-sha256=" + testSum,
		"--spi-vendor-specific-thing=1", // might be an alias "other" declares
	}
	s := resolve(t, ProfileStart, args, nil, testDescs())
	want := []Entry{{Key: "spi-vendor-specific-thing", Value: "*****", Source: Source{Kind: FromFlag, Name: "--spi-vendor-specific-thing"}}}
	if !reflect.DeepEqual(s.Unchecked, want) {
		t.Errorf("Unchecked = %+v", s.Unchecked)
	}
	if got := entry(t, s, "spi-vendor-specific-thing"); got != want[0] {
		t.Errorf("show-config omits the unchecked key: %+v", got)
	}
	// Once "other" is described, nothing claims the key.
	_, err := loadResolve(ProfileStart, args, nil, append(testDescs(), spi.Descriptor{SPI: spi.RevocationPush, ID: "other"}))
	mustContainAll(t, errString(err), "unknown option --spi-vendor-specific-thing")
}

func TestBuiltinOptionEndingLikeARegistrationIsNotOne(t *testing.T) {
	inDir(t, "")
	descs := append(testDescs(), spi.Descriptor{SPI: spi.RevocationPush, ID: "exec", Options: []spi.Option{
		{Name: "notify-command", Type: spi.String},
	}})
	s := resolve(t, ProfileStart, []string{"--spi-revocation-push-exec-notify-command=/bin/true"}, nil, descs)
	if _, registered := s.SPIs[spi.RevocationPush].Providers["exec-notify"]; registered {
		t.Error("an option named *-command registered a plugin")
	}
	if got := s.SPIs[spi.RevocationPush].Providers["exec"].Config["notify-command"]; got != "/bin/true" {
		t.Errorf("notify-command = %q", got)
	}
}

func TestFeatures(t *testing.T) {
	cases := []struct {
		name      string
		env, args []string
		want      Features
	}{
		{"defaults", nil, nil, Features{FeaturePersistentUserSessions: true, FeatureTransientSessions: true}},
		{"disable one", nil, []string{"--features-disabled=persistent-user-sessions"},
			Features{FeaturePersistentUserSessions: false, FeatureTransientSessions: true}},
		{"disable both with spaces", []string{"SESSIOND_FEATURES_DISABLED= transient-sessions , persistent-user-sessions"}, nil,
			Features{FeaturePersistentUserSessions: false, FeatureTransientSessions: false}},
		{"flag enable overrides env disable", []string{"SESSIOND_FEATURES_DISABLED=transient-sessions"}, []string{"--features-disabled=", "--features=transient-sessions"},
			Features{FeaturePersistentUserSessions: true, FeatureTransientSessions: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inDir(t, "")
			s := resolve(t, ProfileStart, tc.args, tc.env, testDescs())
			if !reflect.DeepEqual(s.Features, tc.want) {
				t.Errorf("Features = %v, want %v", s.Features, tc.want)
			}
			if s.Features.Enabled("no-such-feature") {
				t.Error("unknown feature enabled")
			}
		})
	}
}

func TestDescriptorMistakesAreReported(t *testing.T) {
	inDir(t, "")
	descs := append(testDescs(),
		spi.Descriptor{SPI: "storage", ID: "x"},
		spi.Descriptor{SPI: spi.UserSessions, ID: "memory"},
		spi.Descriptor{SPI: spi.UserSessions, ID: "odd", Options: []spi.Option{{Name: "command", Type: spi.String}}},
	)
	_, err := loadResolve(ProfileStart, nil, nil, descs)
	mustContainAll(t, errString(err), `SPI "storage", which does not exist`, `two user-sessions providers have the id "memory"`,
		`declares option "command", which sessiond reserves`)
}

// Issue 19, point 6: a relative command is taken in plugin-dir, whose default is not the
// repository's plugins/ (Go source): a system folder under start, bin/plugins under
// start-dev. The old default is one flag away.
func TestPoint6_commandRelativeToPluginDirWhoseDefaultIsNotTheSourceFolder(t *testing.T) {
	for _, tc := range []struct {
		profile Profile
		extra   []string
		want    string
	}{
		{ProfileStart, nil, filepath.Join("/usr/lib/sessiond/plugins", "bin", "fixed")},
		{ProfileDev, nil, filepath.Join("bin/plugins", "bin", "fixed")},
		{ProfileStart, []string{"--plugin-dir=plugins"}, filepath.Join("plugins", "bin", "fixed")},
	} {
		t.Run(string(tc.profile)+" "+strings.Join(tc.extra, " "), func(t *testing.T) {
			inDir(t, "")
			args := append([]string{"--spi-cache-lifespan-fixed-command=bin/fixed", "--spi-cache-lifespan-fixed-sha256=" + testSum}, tc.extra...)
			s := resolve(t, tc.profile, args, nil, testDescs())
			if got := s.SPIs[spi.CacheLifespan].Providers["fixed"].Command; got != tc.want {
				t.Errorf("Command = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEffectiveListsEveryKeyOnce(t *testing.T) {
	inDir(t, "")
	s := resolve(t, ProfileDev, nil, nil, testDescs())
	seen := map[string]bool{}
	for _, e := range s.Effective() {
		if seen[e.Key] {
			t.Errorf("%s listed twice", e.Key)
		}
		seen[e.Key] = true
	}
	for _, o := range ServerOptions() {
		if !seen[o.Name] {
			t.Errorf("show-config misses %s", o.Name)
		}
	}
	for _, d := range testDescs() {
		for _, o := range d.Options {
			if k := providerKey(d.SPI, d.ID, o.Name); !seen[k] {
				t.Errorf("show-config misses %s", k)
			}
		}
	}
	if e := entry(t, s, "http-host"); e.Value != "127.0.0.1" || e.Source.Kind != FromDefault {
		t.Errorf("http-host = %+v", e)
	}
}
