package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestEverySignalReachesTheChild(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrapperBin, append(identity(t.TempDir()), "--", os.Args[0], "signals")...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("the child's output ended early; stderr %q", stderr.String())
		}
		return lines.Text()
	}
	if got := next(); got != "ready" {
		t.Fatalf("first line %q", got)
	}
	// One at a time: two pending signals of one kind would merge.
	for _, sig := range handledSignals {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if got, want := next(), fmt.Sprintf("got %d", sig); got != want {
			t.Fatalf("after sending %v the child said %q, want %q", sig, got, want)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wrapper: %v; stderr %q", err, stderr.String())
	}
}

func TestExitCodesPassThrough(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	codes := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for code := range codes {
				// No identity: the exit path is the same, and 256 log folders are not needed.
				r := wrapper(t, nil, "--log-dir", logs, "--", "sh", "-c", fmt.Sprintf("exit %d", code))
				if r.code != code {
					t.Errorf("child exited %d, wrapper %d", code, r.code)
				}
			}
		}()
	}
	for code := 0; code <= 255; code++ {
		codes <- code
	}
	close(codes)
	wg.Wait()
}

func TestDeathBySignalIs128PlusTheSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGKILL, syscall.SIGSEGV, syscall.SIGTERM, syscall.SIGUSR1} {
		r := wrapper(t, nil, append(identity(t.TempDir()), "--", "sh", "-c", fmt.Sprintf("kill -%d $$", int(sig)))...)
		if r.code != 128+int(sig) {
			t.Errorf("child killed by %v: wrapper exited %d, want %d", sig, r.code, 128+int(sig))
		}
	}
}

func TestReapsOrphansAsPID1(t *testing.T) {
	requireRoot(t, "a new PID namespace")
	t.Parallel()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	logs := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	args := append([]string{"--pid", "--fork", "--mount-proc", wrapperBin}, identity(logs)...)
	args = append(args, "--", os.Args[0], "orphans", "10")
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "all reaped") {
		t.Fatalf("output %q", out)
	}
	// The orphans were really the wrapper's to reap.
	var adopted int
	if _, err := fmt.Sscanf(string(out[strings.Index(string(out), "adopted"):]), "adopted %d", &adopted); err != nil || adopted == 0 {
		t.Fatalf("no orphan was adopted by PID 1, the test proves nothing: %q", out)
	}
}
