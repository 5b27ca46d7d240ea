package conf

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyEncryptionKeyBytes(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		settings Settings
		want     []byte
		err      string
	}{
		{name: "none", settings: Settings{}},
		{name: "value, standard base64", settings: Settings{KeyEncryptionKey: base64.StdEncoding.EncodeToString(key)}, want: key},
		{name: "value, URL base64 without padding", settings: Settings{KeyEncryptionKey: base64.RawURLEncoding.EncodeToString(key)}, want: key},
		{name: "file with a trailing newline", settings: Settings{KeyEncryptionKeyFile: file("kek", base64.StdEncoding.EncodeToString(key)+"\n")}, want: key},
		{name: "too short", settings: Settings{KeyEncryptionKey: base64.StdEncoding.EncodeToString(key[:16])}, err: "key-encryption-key: not a key-encryption key: want 32 random bytes in base64"},
		{name: "raw bytes in the file", settings: Settings{KeyEncryptionKeyFile: file("raw", string(key))}, err: "key-encryption-key-file " + filepath.Join(dir, "raw") + ": not a key-encryption key"},
		{name: "missing file", settings: Settings{KeyEncryptionKeyFile: filepath.Join(dir, "nope")}, err: "key-encryption-key-file: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.settings.KeyEncryptionKeyBytes()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != string(tt.want) {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// start refuses to run without a key-encryption key, with the other serving rules, and says
// what to set; start-dev runs without one.
func TestStartRequiresAKeyEncryptionKey(t *testing.T) {
	inDir(t, "")
	serving := func(p Profile, args ...string) error {
		l, err := Load(p, append([]string{"--http-enabled=true", "--hostname=https://sso.example.com"}, args...), nil)
		if err != nil {
			return err
		}
		_, err = l.ForServing().Resolve(testDescs())
		return err
	}
	if err := serving(ProfileStart); err == nil ||
		!strings.Contains(err.Error(), "key-encryption-key-file") || !strings.Contains(err.Error(), "SESSIOND_KEY_ENCRYPTION_KEY") {
		t.Errorf("start without a key-encryption key: %v", err)
	}
	for _, arg := range []string{testKEKFlag, "--key-encryption-key-file=kek"} {
		if err := serving(ProfileStart, arg); err != nil {
			t.Errorf("start with %s: %v", arg, err)
		}
	}
	if err := serving(ProfileDev); err != nil {
		t.Errorf("start-dev without a key-encryption key: %v", err)
	}
}

// The token and key options reach Settings, and wrong values are refused naming the key.
func TestKeyAndTokenOptions(t *testing.T) {
	inDir(t, "")
	s := resolve(t, ProfileStart, nil, nil, testDescs())
	if s.RefuseLegacyTokens || s.KeyRotationInterval != 720*time.Hour || s.KeyEncryptionKey != "" || s.KeyEncryptionKeyFile != "" {
		t.Errorf("defaults: refuse legacy %v, rotation %s, kek %q file %q", s.RefuseLegacyTokens, s.KeyRotationInterval, s.KeyEncryptionKey, s.KeyEncryptionKeyFile)
	}
	s = resolve(t, ProfileStart, []string{"--legacy-tokens=refuse", "--key-rotation-interval=0", "--key-encryption-key-file=/etc/kek"}, nil, testDescs())
	if !s.RefuseLegacyTokens || s.KeyRotationInterval != 0 || s.KeyEncryptionKeyFile != "/etc/kek" {
		t.Errorf("flags: refuse legacy %v, rotation %s, kek file %q", s.RefuseLegacyTokens, s.KeyRotationInterval, s.KeyEncryptionKeyFile)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"legacy tokens neither", []string{"--legacy-tokens=maybe"}, []string{"--legacy-tokens", "accept", "refuse"}},
		{"rotation too often", []string{"--key-rotation-interval=30s"}, []string{"--key-rotation-interval", "at least 1m0s"}},
		{"both key-encryption options", []string{"--key-encryption-key-file=/etc/kek", "--key-encryption-key=abc"}, []string{"--key-encryption-key and --key-encryption-key-file are both set"}},
	} {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.args, nil, tc.want...) })
	}
}
