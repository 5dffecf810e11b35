// Package gobuild finds this repository and builds its commands, for tests,
// benchmarks and the e2e harness: a test takes the binary the Makefile built
// (its path in an env var) and builds one itself only when it is missing, so
// that a plain `go test` works too.
package gobuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ModulePath is the root module's path.
const ModulePath = "github.com/fargate-otel/fargate-otel"

// RepoRoot is the root of the repository: the nearest folder above the
// working directory whose go.mod declares the root module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module "+ModulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module " + ModulePath + " above the working directory: run from inside the repository")
		}
		dir = parent
	}
}

// Build builds a package of this repository (e.g. "./cmd/fargate-otel-tee",
// relative to the repository root, or an import path) into a static,
// trimmed, stripped binary at out, as the Makefile's GO_BUILD does. The go
// command is $GO when set (the Makefile's), else go on PATH.
func Build(ctx context.Context, pkg, out string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	if goBin, err = exec.LookPath(goBin); err != nil {
		return fmt.Errorf("build %s: no go command: %w", pkg, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, output)
	}
	return nil
}

// Built is the path in the env var envVar when that file exists (a binary
// the Makefile built), else "".
func Built(envVar string) string {
	p := os.Getenv(envVar)
	if p == "" {
		return ""
	}
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Binary is Built(envVar), else pkg built into the test's temporary folder.
// It fails the test when the build fails.
func Binary(t testing.TB, envVar, pkg string) string {
	t.Helper()
	if p := Built(envVar); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), path.Base(pkg))
	if err := Build(context.Background(), pkg, out); err != nil {
		t.Fatalf("%v (or set %s to a built binary, as `make test` does)", err, envVar)
	}
	return out
}
