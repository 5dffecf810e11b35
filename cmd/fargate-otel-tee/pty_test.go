package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

func unixTermios(fd int) (*syscall.Termios, error) {
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return nil, e
	}
	return &t, nil
}

// openTestPTY opens a terminal for the wrapper, like the one the kubelet
// gives a tty: true container.
func openTestPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

func TestTTYContainerGetsATerminalAndMergedStreams(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	master, slave := openTestPTY(t)
	defer func() { _ = master.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrapperBin, append(identity(logs), "--", os.Args[0], "tty")...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = slave.Close()
	var screen bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&screen, master)
		done <- err
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wrapper: %v", err)
	}
	if err := <-done; err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatalf("read the terminal: %v", err)
	}
	out := screen.String()
	for _, want := range []string{"stdin=true stdout=true stderr=true\r\n", "this went to stderr\r\n", "merged"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal shows %q, missing %q", out, want)
		}
	}
	lines := readCRI(t, logFile(logs, 0))
	got := string(crifile.Streams(lines)["stdout"])
	if got != "stdin=true stdout=true stderr=true\nthis went to stderr\n" {
		t.Errorf("the file's stdout is %q: want both streams merged, without carriage returns", got)
	}
	notice := false
	for _, l := range lines {
		notice = notice || (l.Stream == "stderr" && strings.Contains(string(l.Text), "merged"))
	}
	if !notice {
		t.Errorf("the file does not say that the streams are merged: %+v", lines)
	}
}
