package runtime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
)

// testKEK is the key-encryption key of the tests that run `start`.
var testKEK = base64.StdEncoding.EncodeToString([]byte("sessiond runtime tests' kek 32b!"))

var testKEKFlag = "--key-encryption-key=" + testKEK

// TestStartAndTheKeyEncryptionKey: `start` refuses to run without a key-encryption key and
// says what to set; with one it stores the realm's keys encrypted; started again without
// it, or with another one, it refuses with a message that says which key the store needs.
func TestStartAndTheKeyEncryptionKey(t *testing.T) {
	e := newEnv(t)
	other := base64.StdEncoding.EncodeToString([]byte("another kek, also 32 bytes long!"))
	kekFile := filepath.Join(e.dir, "kek")
	if err := os.WriteFile(kekFile, []byte(testKEK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(profile conf.Profile, extra ...string) (*Runtime, error) {
		return Start(context.Background(), hclog.NewNullLogger(), Options{Profile: profile, Args: append([]string{
			"--http-host=127.0.0.1", "--http-enabled=true", "--http-port=0", "--realm-file=" + e.realmFile, "--hostname=http://sessiond.test",
			"--spi-user-sessions-provider=embedded", "--spi-user-sessions-embedded-path=" + filepath.Join(e.dir, "sessions.db"),
			"--spi-user-sessions-embedded-in-process=true", "--spi-offline-preload-lazy-in-process=true",
			"--spi-cache-lifespan-default-in-process=true", "--spi-revocation-push-log-only-in-process=true",
		}, extra...)})
	}
	if _, err := start(conf.ProfileStart); err == nil || !strings.Contains(err.Error(), "set key-encryption-key-file") {
		t.Fatalf("start without a key-encryption key: %v", err)
	}

	// start-dev without a key stores the realm's first keys in plain text; start with one
	// encrypts those same keys rather than making new ones.
	rt, err := start(conf.ProfileDev)
	if err != nil {
		t.Fatal(err)
	}
	kid := firstKID(t, rt)
	stop(t, rt)
	rt, err = start(conf.ProfileStart, "--key-encryption-key-file="+kekFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := firstKID(t, rt); got != kid {
		t.Errorf("after encrypting the stored keys the realm's key is %s, want the one stored in plain text, %s", got, kid)
	}
	stop(t, rt)

	for _, tc := range []struct {
		name    string
		profile conf.Profile
		extra   []string
		want    string
	}{
		{"start-dev without the key", conf.ProfileDev, nil, "none is configured: set key-encryption-key-file"},
		{"another key", conf.ProfileStart, []string{"--key-encryption-key=" + other}, "but the one configured is"},
		{"a key of the wrong size", conf.ProfileStart, []string{"--key-encryption-key=" + base64.StdEncoding.EncodeToString([]byte("short"))}, "want 32 random bytes in base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := start(tc.profile, tc.extra...)
			if err == nil {
				stop(t, rt)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	rt, err = start(conf.ProfileStart, "--key-encryption-key="+testKEK)
	if err != nil {
		t.Fatalf("start again with the key, from the environment's option this time: %v", err)
	}
	stop(t, rt)
}

// firstKID returns the kid of the first key of the offline realm's JWKS, creating the key.
func firstKID(t *testing.T, rt *Runtime) string {
	t.Helper()
	return jwksKIDs(t, rt)[0]
}

// jwksKIDs returns the kids of the offline realm's JWKS, in order.
func jwksKIDs(t *testing.T, rt *Runtime) []string {
	t.Helper()
	resp, err := http.Get("http://" + rt.Addr().String() + "/realms/offline/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK || len(set.Keys) == 0 {
		t.Fatalf("JWKS: %d, %+v, %v", resp.StatusCode, set, err)
	}
	kids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		kids[i] = k.KID
	}
	return kids
}
