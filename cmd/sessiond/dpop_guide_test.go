package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDPoPGuide runs docs/dpop.md's example as written: the realm file, start-dev on it,
// and the client's commands (a key and proofs made with openssl, refresh, introspection,
// a replay, a refresh without a proof, UserInfo both ways, client_credentials). Only the
// port differs, and the embedded store's file goes to the test's folder.
func TestDPoPGuide(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "dpop.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "dpop-realm.json"), []byte(guideBlock(t, guide, "dpop:realm")), 0o600); err != nil {
		t.Fatal(err)
	}
	server := strings.TrimSpace(guideBlock(t, guide, "dpop:server"))
	args, ok := strings.CutPrefix(server, "go run ./cmd/sessiond start-dev ")
	if !ok {
		t.Fatalf("the guide's server command is not `go run ./cmd/sessiond start-dev …`: %q", server)
	}
	port := freePort(t)
	store := "--spi-user-sessions-embedded-path=" + filepath.Join(t.TempDir(), "sessiond.db")
	startDaemonIn(t, work, append(strings.Fields(args), "--http-port="+port, store)...)

	client := strings.ReplaceAll(guideBlock(t, guide, "dpop:client"), "127.0.0.1:8080", "127.0.0.1:"+port)
	out := guideRun(t, work, client)
	jkt := regexp.MustCompile(`(?m)^jkt: ([A-Za-z0-9_-]{43})$`).FindStringSubmatch(out)
	if jkt == nil {
		t.Fatalf("the guide printed no thumbprint:\n%s", out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"dpop_signing_alg_values_supported":\["ES256"`),
		regexp.MustCompile(`(?s)"token_type":"DPoP".*"cnf":\{"jkt":"` + regexp.QuoteMeta(jkt[1]) + `"\}`),
		regexp.MustCompile(`"error":"invalid_dpop_proof","error_description":"[^"]*used before`),
		regexp.MustCompile(`"error":"invalid_dpop_proof","error_description":"client spa must use DPoP`),
		regexp.MustCompile(`(?m)^401$`),
		regexp.MustCompile(`"sub":"alice-id"`),
		regexp.MustCompile(`(?s)"sub":"alice-id".*"token_type":"DPoP"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the guide's output does not match %s:\n%s", want, out)
		}
	}
	if left, _ := os.ReadDir(work); len(left) != 1 {
		t.Errorf("the guide left files behind: %v", left)
	}
}
