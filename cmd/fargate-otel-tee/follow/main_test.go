package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/syncbuf"
	"github.com/fargate-otel/fargate-otel/logrotate"
	"github.com/fargate-otel/fargate-otel/tee/crifile"
	"github.com/fargate-otel/fargate-otel/tee/follow/kubelettest"
)

// The tests run the real binaries (built once, side by side as in the
// image) against an HTTPS server in the test that behaves like the node
// proxy and the kubelet's containerLogs, with real files.

var binDir, followBin, teeBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fargate-otel-follow-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	binDir = dir
	followBin, teeBin = filepath.Join(dir, "fargate-otel-follow"), filepath.Join(dir, "fargate-otel-tee")
	for pkg, out := range map[string]string{"./cmd/fargate-otel-tee/follow": followBin, "./cmd/fargate-otel-tee": teeBin} {
		if err := gobuild.Build(context.Background(), pkg, out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

const (
	testNode      = "fargate-ip-10-0-1-2.eu-west-1.compute.internal"
	testNamespace = "shop"
	testPod       = "cart-7d4b9c-x2x8q"
	testUID       = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

// testTimeout bounds every wait: generous, for a loaded machine.
const testTimeout = 90 * time.Second

func newKubelet(t *testing.T) *kubelettest.Kubelet {
	t.Helper()
	k, err := kubelettest.New(t.TempDir(), testNode, testNamespace, testPod, testUID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// follower is a running fargate-otel-follow.
type follower struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error
}

// args are the flags that point the follower at k and dir.
func args(k *kubelettest.Kubelet, dir string, containers string, extra ...string) []string {
	return append([]string{"--node-proxy", k.URL(), "--token-file", k.TokenFile, "--ca-file", k.CAFile,
		"--node", testNode, "--namespace", testNamespace, "--pod", testPod, "--pod-uid", testUID,
		"--containers", containers, "--dir", dir, "--retry-max", "100ms", "--drain-timeout", "2s"}, extra...)
}

func start(t *testing.T, bin string, argv ...string) *follower {
	t.Helper()
	return startEnv(t, nil, bin, argv...)
}

// startEnv starts bin with extra environment variables.
func startEnv(t *testing.T, env []string, bin string, argv ...string) *follower {
	t.Helper()
	f := &follower{cmd: exec.Command(bin, argv...), stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	f.cmd.Env = append(os.Environ(), env...)
	f.cmd.Stderr = f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.err = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		select {
		case <-f.done:
		default:
			_ = f.cmd.Process.Kill()
			<-f.done
		}
		if t.Failed() {
			t.Logf("follower stderr:\n%s", f.stderr.String())
		}
	})
	return f
}

func (f *follower) kill9(t *testing.T) {
	t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGKILL)
	<-f.done
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (f *follower) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(testTimeout):
		t.Fatal("the follower did not exit after SIGTERM")
	}
	return f.cmd.ProcessState.ExitCode(), time.Since(start)
}

func containerDir(dir, container string) string {
	return filepath.Join(dir, testNamespace+"_"+testPod+"_"+testUID, container)
}

// runLines reads every file of one restart, oldest first, as the collector
// would, and parses them strictly as CRI.
func runLines(t *testing.T, dir, container string, restart int) []crifile.Line {
	t.Helper()
	return readRun(t, dir, container, restart, true)
}

// readRun reads a run's files; not strict, it leaves out a last line being
// written (the follower is running: a read may see half a write).
func readRun(t *testing.T, dir, container string, restart int, strict bool) []crifile.Line {
	t.Helper()
	cdir := containerDir(dir, container)
	name := strconv.Itoa(restart) + ".log"
	entries, _ := os.ReadDir(cdir)
	var backups []string
	for _, e := range entries {
		if base, _, ok := logrotate.ParseBackupName(e.Name()); ok && base == name {
			backups = append(backups, e.Name())
		}
	}
	sort.Strings(backups)
	var out []crifile.Line
	for _, n := range append(backups, name) {
		b, err := os.ReadFile(filepath.Join(cdir, n))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strict {
			b = b[:bytes.LastIndexByte(b, '\n')+1]
		}
		lines, err := crifile.Read(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s/%s is not CRI: %v", cdir, n, err)
		}
		out = append(out, lines...)
	}
	return out
}

// texts are the kubelet's lines of a run (stdout), whole: P pieces joined.
// notices are the follower's own lines (stderr).
func texts(lines []crifile.Line) (texts, notices []string) {
	var cur []byte
	for _, l := range lines {
		if l.Stream == "stderr" {
			notices = append(notices, string(l.Text))
			continue
		}
		cur = append(cur, l.Text...)
		if !l.Partial {
			texts = append(texts, string(cur))
			cur = cur[:0]
		}
	}
	if len(cur) > 0 {
		texts = append(texts, string(cur)+"<no newline>")
	}
	return texts, notices
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// haveLines waits until the run's file holds n of the kubelet's lines.
func haveLines(t *testing.T, dir, container string, restart, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d lines in %s's restart %d", n, container, restart), func() bool {
		got, _ := texts(readRun(t, dir, container, restart, false))
		return len(got) >= n
	})
}

// numbered is "<prefix> <i>" for i in [from, to).
func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

// exactly fails unless got is want, in order.
func exactly(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	var missing, twice []string
	for _, w := range want {
		switch seen[w] {
		case 0:
			missing = append(missing, w)
		case 1:
		default:
			twice = append(twice, w)
		}
	}
	t.Fatalf("%s: %d lines, want %d; missing %d %.200q; more than once %d %.200q", what, len(got), len(want), len(missing), missing, len(twice), twice)
}
