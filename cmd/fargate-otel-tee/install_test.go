package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestInstallCopiesItselfAsNonRoot(t *testing.T) {
	requireRoot(t, "running the install as another user")
	t.Parallel()
	// Not under t.TempDir(): its parent is private to root.
	dir, err := os.MkdirTemp("", "fargate-otel-install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrapperBin, "install", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = []string{} // no HOME, no PATH: like a FROM scratch image
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	dst := filepath.Join(dir, "fargate-otel-tee")
	if strings.TrimSpace(string(out)) != dst {
		t.Fatalf("install printed %q, want %q", out, dst)
	}
	want, _ := os.ReadFile(wrapperBin)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("installed copy differs from the binary (%d vs %d bytes): %v", len(got), len(want), err)
	}
	info, _ := os.Stat(dst)
	if info.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v, want 0755", info.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left-overs in %s: %v", dir, entries)
	}
	// Again, over the existing copy, and the copy runs.
	if out, err := exec.Command(wrapperBin, "install", dir).CombinedOutput(); err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	if out, err := exec.Command(dst, "--", "echo", "installed copy runs").Output(); err != nil || string(out) != "installed copy runs\n" {
		t.Fatalf("the installed copy: %q, %v", out, err)
	}
	// A folder it cannot write says so.
	if out, err := exec.Command(wrapperBin, "install", filepath.Join(dir, "missing")).CombinedOutput(); err == nil || !strings.Contains(string(out), "writable volume") {
		t.Fatalf("install into a missing folder: %v, %q", err, out)
	}
}

func TestLogrotateSubcommandSweepsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.log")
	if err := os.WriteFile(app, bytes.Repeat([]byte("x\n"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	r := wrapper(t, nil, "logrotate", "--dir", dir, "--budget", "10Ki", "--max-size", "1Ki", "--once")
	if r.code != 0 || !strings.Contains(string(r.stderr), "rotated") {
		t.Fatalf("code %d, stderr %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(app); len(b) != 0 {
		t.Fatalf("app.log still holds %d bytes after copytruncate", len(b))
	}
	matches, _ := filepath.Glob(app + ".????????-??????")
	if len(matches) != 1 {
		t.Fatalf("backups %v", matches)
	}
	r = wrapper(t, nil, "logrotate", "--dir", dir)
	if r.code != 2 || !strings.Contains(string(r.stderr), "--budget is required") {
		t.Fatalf("without a budget: code %d, stderr %s", r.code, r.stderr)
	}
}
