package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// follower reads a log file the way the collector does: to the end, and when
// the name points to a new file (rotation by rename), it finishes the old
// file and then opens the new one.
type follower struct {
	path    string
	f       *os.File
	ino     uint64
	r       *bufio.Reader
	partial []byte // a line whose end has not been written yet
	lines   []crifile.Line
	files   int
}

func (fl *follower) open() bool {
	f, err := os.Open(fl.path)
	if err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return false
	}
	fl.f, fl.ino, fl.r, fl.partial = f, st.Ino, bufio.NewReaderSize(f, 64<<10), nil
	fl.files++
	return true
}

// drain reads every complete line available now.
func (fl *follower) drain(t *testing.T) {
	for {
		b, err := fl.r.ReadBytes('\n')
		if len(fl.partial) > 0 {
			b = append(fl.partial, b...)
			fl.partial = nil
		}
		if err == nil {
			l, perr := crifile.ParseLine(b[:len(b)-1])
			if perr != nil {
				t.Fatalf("file %d: %v", fl.files, perr)
			}
			fl.lines = append(fl.lines, l)
			continue
		}
		if errors.Is(err, io.EOF) {
			// Half a line: the rest comes with a later read (bufio
			// reads the file again after an EOF).
			fl.partial = b
			return
		}
		t.Fatal(err)
	}
}

// rotated says whether the name now points to another file.
func (fl *follower) rotated() bool {
	var st syscall.Stat_t
	if err := syscall.Stat(fl.path, &st); err != nil {
		return errors.Is(err, syscall.ENOENT)
	}
	return st.Ino != fl.ino
}

func TestRotationLosesNothingForAFollowingReader(t *testing.T) {
	t.Parallel()
	const total, rate = 150_000, 50_000 // 3 s at 50k lines/s, about 21 MiB of CRI lines
	logs := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	args := append(identity(logs), "--max-size", "1Mi", "--max-backups", "3", "--")
	cmd := exec.CommandContext(ctx, wrapperBin, append(args, helper("rate", strconv.Itoa(total), strconv.Itoa(rate))...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stdout = io.Discard
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fl := &follower{path: logFile(logs, 0)}
	eventually(t, "the log file", fl.open)
	var waitErr error
	done := false
	for !done {
		fl.drain(t)
		if fl.rotated() {
			fl.drain(t) // the rest of the old file
			_ = fl.f.Close()
			eventually(t, "the new log file after a rotation", fl.open)
			continue
		}
		select {
		case waitErr = <-exited:
			done = true
		default:
			time.Sleep(time.Millisecond) // the poll interval of a tailing reader
		}
	}
	if waitErr != nil {
		t.Fatalf("wrapper: %v\nstderr: %s", waitErr, stderr.Bytes())
	}
	// The wrapper is gone: read what is left, including a last rotation.
	for fl.drain(t); fl.rotated(); fl.drain(t) {
		_ = fl.f.Close()
		if !fl.open() {
			break
		}
	}
	_ = fl.f.Close()

	seen := make([]int, total)
	for _, l := range fl.lines {
		if l.Partial {
			t.Fatalf("unexpected partial line %q", l.Text)
		}
		var i int
		if _, err := fmt.Sscanf(string(l.Text), "line %d ", &i); err != nil || i < 0 || i >= total {
			t.Fatalf("unexpected line %q", l.Text)
		}
		seen[i]++
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("line %d seen %d times (read %d lines from %d files)", i, n, len(fl.lines), fl.files)
		}
	}
	if fl.files < 15 {
		t.Fatalf("only %d files for about 21 MiB at 1 MiB rotation", fl.files)
	}
	t.Logf("%d lines read exactly once from %d files", total, fl.files)
}
