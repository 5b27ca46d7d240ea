package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// ChecksumError reports that a plugin executable does not have the SHA-256 digest it was
// registered with. The host refuses to run it; callers branch on it with errors.As to
// tell a tampered or upgraded binary from a plugin that merely failed to start.
type ChecksumError struct {
	SPI, ID  string
	Path     string // the file that was opened and hashed (symlinks resolved)
	Expected string // hex digest from the registration
	Actual   string // hex digest of the file on disk
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("provider %s/%s: refusing to run %s: checksum mismatch: its sha256 is %s, the registered sha256 (spi-%s-%s-sha256) is %s",
		e.SPI, e.ID, e.Path, e.Actual, e.SPI, e.ID, e.Expected)
}

// resolveCommand turns a Spec's Command into the absolute path that is both hashed and
// executed, so PATH cannot point the exec somewhere other than the file that was checked.
func resolveCommand(command string) (string, error) {
	path, err := exec.LookPath(command)
	if err != nil {
		return "", err
	}
	return filepath.Abs(path)
}

// FileSHA256 returns the hex SHA-256 digest of the file at path, as an operator computes
// it with sha256sum to register a plugin.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return digest(f)
}

// digest returns the hex SHA-256 digest of what r holds.
func digest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
