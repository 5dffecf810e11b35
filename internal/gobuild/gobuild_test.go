package gobuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "gobuild", "gobuild.go")); err != nil {
		t.Errorf("RepoRoot %s does not hold this package: %v", root, err)
	}
	t.Chdir(t.TempDir())
	if _, err := RepoRoot(); err == nil || !strings.Contains(err.Error(), "inside the repository") {
		t.Errorf("outside the repository: %v, want an error saying where to run", err)
	}
}

const hello = "./internal/gobuild/testdata/hello"

func TestBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hello")
	if err := Build(context.Background(), hello, out); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(out).Output()
	if err != nil || string(got) != "hello from a build\n" {
		t.Fatalf("the built binary printed %q (%v)", got, err)
	}
	err = Build(context.Background(), "./internal/gobuild/testdata/missing", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "go build ./internal/gobuild/testdata/missing") {
		t.Errorf("a missing package: %v, want an error naming it", err)
	}
}

func TestBinaryPrefersTheBuiltOne(t *testing.T) {
	built := filepath.Join(t.TempDir(), "prebuilt")
	if err := os.WriteFile(built, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOBUILD_TEST_BIN", built)
	if got := Built("GOBUILD_TEST_BIN"); got != built {
		t.Errorf("Built = %q, want %q", got, built)
	}
	if got := Binary(t, "GOBUILD_TEST_BIN", hello); got != built {
		t.Errorf("Binary = %q, want the env var's %q", got, built)
	}
	// A path to nothing (a stale variable) builds instead.
	t.Setenv("GOBUILD_TEST_BIN", filepath.Join(t.TempDir(), "gone"))
	if Built("GOBUILD_TEST_BIN") != "" {
		t.Error("Built returned a missing file")
	}
	got := Binary(t, "GOBUILD_TEST_BIN", hello)
	if filepath.Base(got) != "hello" {
		t.Errorf("Binary = %q, want a fresh build named hello", got)
	}
	if out, err := exec.Command(got).Output(); err != nil || !strings.HasPrefix(string(out), "hello") {
		t.Errorf("the fresh build printed %q (%v)", out, err)
	}
}
