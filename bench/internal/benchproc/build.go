package benchproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RepoRoot is the directory of the module the command runs in (go env GOMOD): the bench
// tools run from the repository and build its ./cmd/sessiond.
func RepoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the sessiond module (go env GOMOD: %q, %v): run from the repository", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

// Build compiles ./cmd/sessiond of the tree at dir into out.
func Build(ctx context.Context, dir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/sessiond")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/sessiond in %s: %w\n%s", dir, err, b)
	}
	return nil
}

// Export writes the files of commit rev of the repository at repo into dir with git
// archive: the tree as committed, and nothing in .git changes (no worktree to clean up).
func Export(ctx context.Context, repo, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	archive := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", rev)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	var archiveErr, untarErr strings.Builder
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		untar.Wait() //nolint:errcheck // the archive's error is the cause
		return fmt.Errorf("git archive %s: %w\n%s", rev, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("unpacking git archive %s: %w\n%s", rev, err, untarErr.String())
	}
	return nil
}

// BuildAt compiles ./cmd/sessiond as of commit rev into out, from an export of it beside
// out that is removed afterwards.
func BuildAt(ctx context.Context, repo, rev, out string) error {
	src := out + "-src"
	defer os.RemoveAll(src)
	if err := Export(ctx, repo, rev, src); err != nil {
		return err
	}
	return Build(ctx, src, out)
}
