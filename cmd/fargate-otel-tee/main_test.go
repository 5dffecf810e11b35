package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// The tests run the real binary, built once, with real child processes: the
// test binary itself in a helper role (helpers_test.go), or sh.

const helperEnv = "FARGATE_OTEL_TEE_TEST_HELPER"

var wrapperBin string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelper(os.Args[1:]))
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fargate-otel-tee-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	// Readable by all: some tests run the wrapper as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	wrapperBin = filepath.Join(dir, "fargate-otel-tee")
	if err := gobuild.Build(context.Background(), "./cmd/fargate-otel-tee", wrapperBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Helpers run as another user in some tests: they need to reach the test binary.
	if self, err := os.Executable(); err == nil {
		_ = os.Chmod(filepath.Dir(self), 0o755)
	}
	return m.Run()
}

// helper is the command line that runs the test binary as a helper process.
func helper(args ...string) []string {
	return append([]string{os.Args[0]}, args...)
}

// testTimeout bounds every run of the wrapper: generous, for a loaded machine.
const testTimeout = 90 * time.Second

type result struct {
	stdout, stderr []byte
	code           int
}

// wrapper runs the binary with args to its end.
func wrapper(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	return wrapperEnv(t, nil, stdin, args...)
}

// wrapperEnv runs the binary with extra environment variables.
func wrapperEnv(t *testing.T, env []string, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrapperBin, args...)
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("fargate-otel-tee %q did not finish within %v\nstderr: %s", args, testTimeout, stderr.Bytes())
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run fargate-otel-tee: %v", err)
		}
		code = ee.ExitCode()
	}
	return result{stdout.Bytes(), stderr.Bytes(), code}
}

const (
	testNamespace = "ns"
	testPod       = "web-0"
	testPodUID    = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	testContainer = "app"
)

// identity is the flags that make the wrapper write under logDir.
func identity(logDir string) []string {
	return []string{"--log-dir", logDir, "--namespace", testNamespace, "--pod", testPod, "--pod-uid", testPodUID, "--container", testContainer}
}

func containerDir(logDir string) string {
	return filepath.Join(logDir, testNamespace+"_"+testPod+"_"+testPodUID, testContainer)
}

func logFile(logDir string, restart int) string {
	return filepath.Join(containerDir(logDir), strconv.Itoa(restart)+".log")
}

// readCRI parses a CRI file strictly.
func readCRI(t *testing.T, path string) []crifile.Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	lines, err := crifile.Read(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return lines
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// requireRoot fails in CI (which runs as root) and skips elsewhere.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s needs root; CI runs as root", why)
	}
	t.Skipf("%s needs root (CI runs it)", why)
}
