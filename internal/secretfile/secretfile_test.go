package secretfile_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sessiond/sessiond/internal/secretfile"
)

func TestOpenLeavesAFileItsOwnersAlone(t *testing.T) {
	old := syscall.Umask(0) // the most permissive umask must not matter
	defer syscall.Umask(old)
	tests := []struct {
		name     string
		existing fs.FileMode // 0: no file yet
		want     fs.FileMode
		was      fs.FileMode
	}{
		{"created", 0, 0o600, 0},
		{"existing 0644", 0o644, 0o600, 0o644},
		{"existing 0666", 0o666, 0o600, 0o666},
		{"existing 0640", 0o640, 0o600, 0o640},
		{"existing 0600 untouched", 0o600, 0o600, 0},
		{"existing 0400 untouched", 0o400, 0o400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if tt.existing != 0 {
				if err := os.WriteFile(path, []byte("x"), tt.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			f, was, err := secretfile.Open(path, os.O_RDONLY|os.O_CREATE)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want || was != tt.was {
				t.Errorf("mode %v, was %v; want %v, was %v", got, was, tt.want, tt.was)
			}
		})
	}
}

func TestRestrictLeavesNonRegularFilesAlone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if was, err := secretfile.Restrict(w); err != nil || was != 0 {
		t.Errorf("Restrict(pipe) = %v, %v; want it left alone", was, err)
	}
}
