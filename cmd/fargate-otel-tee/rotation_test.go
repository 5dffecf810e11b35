package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/syncbuf"
	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// follower reads a log file the way the collector does with the kubelet's
// layout: it tails the file, and when the name points to a new file (rotation
// by rename) it finishes the old one, reads the backups it has not read yet
// (the collector includes <n>.log.* for that: a reader that falls behind by
// more than one rotation still sees everything), and tails the new file.
// Files are told apart by a fingerprint, as the collector does: the inode and
// the first bytes (inodes of deleted files are reused).
type follower struct {
	dir, name string
	f         *os.File
	ino       uint64
	r         *bufio.Reader
	partial   []byte // a line whose end has not been written yet
	lines     []crifile.Line
	files     int
	done      map[string]bool // fingerprints of the files read to their end
}

// fingerprint of an open file; "" while it is empty.
func fingerprint(f *os.File, ino uint64) string {
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d:%s", ino, b[:n])
}

func newFollower(path string) *follower {
	return &follower{dir: filepath.Dir(path), name: filepath.Base(path), done: map[string]bool{}}
}

func (fl *follower) path() string { return filepath.Join(fl.dir, fl.name) }

// openFile opens a file and says whether it is one not read yet.
func (fl *follower) openFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || fl.done[fingerprint(f, st.Ino)] {
		_ = f.Close()
		return false
	}
	fl.f, fl.ino, fl.r, fl.partial = f, st.Ino, bufio.NewReaderSize(f, 64<<10), nil
	fl.files++
	return true
}

// open starts tailing the current file.
func (fl *follower) open() bool { return fl.openFile(fl.path()) }

// finish reads the file being followed to its end and closes it.
func (fl *follower) finish(t *testing.T) {
	fl.drain(t)
	if len(fl.partial) > 0 {
		t.Fatalf("file %d ends in half a line %q", fl.files, fl.partial)
	}
	if fp := fingerprint(fl.f, fl.ino); fp != "" {
		fl.done[fp] = true
	}
	_ = fl.f.Close()
}

// catchUp reads every backup not read yet, oldest first.
func (fl *follower) catchUp(t *testing.T) {
	backups, _ := filepath.Glob(fl.path() + ".????????-??????")
	sort.Strings(backups) // kubelet-style names sort by age
	for _, b := range backups {
		if fl.openFile(b) {
			fl.finish(t)
		}
	}
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
	if err := syscall.Stat(fl.path(), &st); err != nil {
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
	args := append(identity(logs), "--max-size", "1Mi", "--max-backups", "10", "--")
	cmd := exec.CommandContext(ctx, wrapperBin, append(args, helper("rate", strconv.Itoa(total), strconv.Itoa(rate))...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stdout = io.Discard
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fl := newFollower(logFile(logs, 0))
	eventually(t, "the log file", fl.open)
	var waitErr error
	for done := false; !done; {
		fl.drain(t)
		if fl.rotated() {
			fl.finish(t)
			fl.catchUp(t)
			eventually(t, "the new log file after a rotation", func() bool { fl.catchUp(t); return fl.open() })
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
	// The wrapper is gone: read what is left.
	fl.finish(t)
	fl.catchUp(t)
	if fl.open() {
		fl.finish(t)
	}

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
