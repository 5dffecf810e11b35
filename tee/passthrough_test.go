package tee

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// chunks are writes of every size class the passthrough sees: single
// bytes, lines, whole pipe buffers, more than a pipe holds.
func chunks() [][]byte {
	var out [][]byte
	r := uint32(7)
	for _, size := range []int{1, 100, pipeBuf - 1, pipeBuf, pipeBuf + 1, 1000, 70 << 10, 3, 256 << 10, 17} {
		b := make([]byte, size)
		for i := range b {
			r = r*1664525 + 1013904223
			b[i] = byte(r >> 24)
		}
		out = append(out, b)
	}
	return out
}

// fifo makes a named pipe and opens both ends (the read end first, without
// waiting for a writer).
func fifo(t *testing.T) (r, w *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	rfd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err = os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A blocking reader, as our reader's reader is.
	if err := syscall.SetNonblock(rfd, false); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(rfd), "fifo-read"), w
}

// blockingPipe is a pipe with blocking ends, as our stdout is (os.Pipe makes
// non-blocking ones for the runtime's poller); size 0 keeps the default.
func blockingPipe(t *testing.T, size int) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), fSetPipeSize, uintptr(size)); errno != 0 {
			t.Fatal(errno)
		}
	}
	return os.NewFile(uintptr(fds[0]), "pipe-read"), os.NewFile(uintptr(fds[1]), "pipe-write")
}

func TestPassthroughIsByteExactOnEveryKindOfOutput(t *testing.T) {
	const auto = passMode(255) // what newPassthrough picks (passMode(255) in the name)
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (r, w *os.File) // nil: a regular file
		// plain: the kind that only a regular write serves.
		plain bool
	}{
		{"pipe", func(t *testing.T) (r, w *os.File) { return blockingPipe(t, 0) }, false},
		// One page: nearly every write finds it full.
		{"full pipe", func(t *testing.T) (r, w *os.File) { return blockingPipe(t, pipeBuf) }, false},
		{"named pipe", fifo, false},
		{"file", nil, true},
	} {
		modes := []passMode{auto, passPlain}
		if !tc.plain {
			modes = append(modes, passPolled) // what a kernel before 6.4 gets
		}
		for _, mode := range modes {
			t.Run(fmt.Sprintf("%s/%v", tc.name, mode), func(t *testing.T) {
				var want bytes.Buffer
				for _, c := range chunks() {
					want.Write(c)
				}
				var r, w *os.File
				if tc.open != nil {
					r, w = tc.open(t)
				} else {
					f, err := os.Create(filepath.Join(t.TempDir(), "out"))
					if err != nil {
						t.Fatal(err)
					}
					w = f
				}
				got := make(chan []byte, 1)
				if r != nil {
					go func() {
						b, _ := io.ReadAll(r)
						got <- b
					}()
				}
				p := newPassthrough(w)
				if mode != auto {
					p.mode = mode
				}
				for _, c := range chunks() {
					if err := p.write(c); err != nil {
						t.Fatalf("write of %d bytes: %v", len(c), err)
					}
				}
				if mode == auto && (p.mode == passPlain) != tc.plain {
					t.Errorf("mode %v after the writes; want plain only for a kind that is not a pipe", p.mode)
				}
				if mode != auto && p.mode != mode {
					t.Errorf("mode %v after the writes, want it kept at %v", p.mode, mode)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				var b []byte
				if r != nil {
					select {
					case b = <-got:
					case <-time.After(time.Minute):
						t.Fatal("the reader did not get the end of the stream")
					}
				} else {
					var err error
					if b, err = os.ReadFile(w.Name()); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(b, want.Bytes()) {
					t.Fatalf("got %d bytes, want the %d written, in order", len(b), want.Len())
				}
			})
		}
	}
}

func TestPassthroughReportsAReaderThatIsGone(t *testing.T) {
	for _, mode := range []passMode{passNowait, passPolled, passPlain} {
		r, w := blockingPipe(t, 0)
		_ = r.Close()
		p := newPassthrough(w)
		if mode != passNowait || sysPwritev2 != 0 {
			p.mode = mode
		}
		if err := p.write([]byte("line\n")); !errors.Is(err, syscall.EPIPE) {
			t.Errorf("mode %v: got %v, want EPIPE", mode, err)
		}
		_ = w.Close()
	}
}
