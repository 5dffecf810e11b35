package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fargate-otel/fargate-otel/internal/syncbuf"
)

func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	requireRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Fatalf("mount a %s tmpfs: %v", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

var lostRe = regexp.MustCompile(`^fargate-otel-tee: (\d+) log lines were lost since \S+: (.*)$`)

func TestDiskFullCostsFileLinesNeverPassthrough(t *testing.T) {
	logs := mountTmpfs(t, "1m")
	// Leave about 300 KB for the logs; the fast phase writes 3 MB.
	filler := filepath.Join(logs, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{'f'}, 700<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := filepath.Join(t.TempDir(), "stop")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	args := append(identity(logs), "--max-size", "64Mi", "--")
	cmd := exec.CommandContext(ctx, wrapperBin, append(args, helper("diskfull", "30000", stop)...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The fast phase finishes while the disk is full: the app is not blocked.
	eventually(t, "the fast phase to end", func() bool { return bytes.Contains(stderr.Bytes(), []byte("fast done")) })
	if !bytes.Contains(stderr.Bytes(), []byte("cannot write the log file")) {
		t.Fatalf("the disk filled up but the wrapper said nothing on stderr: %q", stderr.Bytes())
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// The file resumes: the loss is reported, then tick lines follow.
	path := logFile(logs, 0)
	eventually(t, "the file to resume after space was freed", func() bool {
		b, _ := os.ReadFile(path)
		i := bytes.Index(b, []byte("log lines were lost"))
		return i >= 0 && bytes.Contains(b[i:], []byte(" stdout F tick "))
	})
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wrapper: %v\nstderr: %s", err, stderr.Bytes())
	}

	// Passthrough is complete and in order.
	passed := strings.Split(strings.TrimSuffix(string(stdout.Bytes()), "\n"), "\n")
	ticks := 0
	for _, l := range passed {
		if strings.HasPrefix(l, "tick ") {
			ticks++
		}
	}
	pad := strings.Repeat("d", 80)
	var want []string
	for i := 0; i < 30000; i++ {
		want = append(want, fmt.Sprintf("fast %d %s", i, pad))
	}
	for i := 0; i < ticks; i++ {
		want = append(want, fmt.Sprintf("tick %d", i))
	}
	for i := 0; i < 200; i++ {
		want = append(want, fmt.Sprintf("final %d", i))
	}
	if strings.Join(passed, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stdout passthrough is not complete: %d lines, want %d", len(passed), len(want))
	}

	// Every line is in the file or counted as lost; the end is all there.
	lines := readCRI(t, path)
	written, lost, notices := 0, 0, 0
	var inFile []string
	for _, l := range lines {
		if m := lostRe.FindStringSubmatch(string(l.Text)); m != nil && l.Stream == "stderr" {
			n, _ := strconv.Atoi(m[1])
			lost += n
			notices++
			if !strings.Contains(m[2], "no space left on device") {
				t.Errorf("the loss is not explained: %q", l.Text)
			}
			continue
		}
		written++
		if l.Stream == "stdout" {
			inFile = append(inFile, string(l.Text))
		}
	}
	if notices == 0 || lost == 0 {
		t.Fatal("no lost-lines notice in the file")
	}
	// The app wrote the stdout lines and one stderr line, "fast done".
	if written+lost != len(want)+1 {
		t.Fatalf("%d lines in the file + %d reported lost = %d, but the app wrote %d", written, lost, written+lost, len(want)+1)
	}
	if tail := strings.Join(inFile[len(inFile)-200:], "\n"); tail != strings.Join(want[len(want)-200:], "\n") {
		t.Fatalf("the last 200 lines are not all in the file after the disk recovered")
	}
}
