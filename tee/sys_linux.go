package tee

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// The reader's system calls, made cheap for an app that writes a little
// often (a line every millisecond is a round every millisecond).
//
// Go's syscall.Syscall tells the runtime that the goroutine may block: when
// the runtime's monitor thread sleeps (it does whenever the process is idle,
// which is between any two rounds), that wakes it, and it then polls every
// 20 µs until the process is idle again. At a round per millisecond that
// cost the wrapper more than its own work. The calls here cannot block: the
// command's pipes and terminal are non-blocking, FIONREAD and an epoll_wait
// without a timeout return at once. So they are raw system calls, which the
// runtime does not see. Calls that may block (the passthrough when our
// stdout is slow, the file) go through the runtime as before.

// readRaw reads from a non-blocking descriptor.
func readRaw(fd int, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// bytesAvailable is how many bytes wait in a pipe or terminal (FIONREAD),
// 0 when unknown.
func bytesAvailable(fd int) int {
	var n int32
	if _, _, errno := syscall.RawSyscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno != 0 {
		return 0
	}
	return int(n)
}

// epollPoll takes the events that are ready, without waiting.
func epollPoll(ep int, events []syscall.EpollEvent) (int, error) {
	for {
		// epoll_pwait without a signal mask is epoll_wait, on every
		// architecture (arm64 has no epoll_wait).
		n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// rwfNowait is RWF_NOWAIT (Linux 4.14), which syscall does not name.
const rwfNowait = 0x8

// pipeBuf is PIPE_BUF: a write this small into a pipe that has room for a
// write at all (poll says POLLOUT: a free page) never waits.
const pipeBuf = 4096

// How passthrough writes: see passthrough.
type passMode uint8

const (
	passNowait passMode = iota // pwritev2 RWF_NOWAIT first
	passPolled                 // a pipe: poll, then a raw write of at most pipeBuf
	passPlain                  // a regular blocking write only
)

func (m passMode) String() string {
	switch m {
	case passNowait:
		return "nowait"
	case passPolled:
		return "polled"
	case passPlain:
		return "plain"
	}
	return fmt.Sprintf("passMode(%d)", uint8(m))
}

// passthrough writes a stream through to our own stdout or stderr, which
// stays a blocking descriptor (its flags are shared with whoever gave it to
// us, and are not ours to change). A write first tries what cannot wait, as a
// raw system call (see above), and writes what is left with a regular
// blocking write, so that a slow reader of our output still paces the
// command as it would without us:
//
//   - pwritev2 with RWF_NOWAIT: anonymous pipes (what containerd gives a
//     container) take it since Linux 6.4.
//   - a pipe or named pipe where the kernel does not (EOPNOTSUPP): when poll
//     says it has room (a free page) and the write is at most PIPE_BUF, the
//     write cannot wait either, as we are its only writer (PID 1 of a
//     container is; another writer at the same instant can only make it wait
//     as long as a regular write would).
//   - anything else (a terminal, a file, a socket): the regular write.
type passthrough struct {
	f    *os.File
	fd   int
	mode passMode
}

func newPassthrough(f *os.File) *passthrough {
	p := &passthrough{f: f, fd: -1, mode: passPlain}
	// Control, not Fd: Fd would make a non-blocking descriptor blocking.
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { p.fd = int(fd) })
	}
	var st syscall.Stat_t
	switch {
	case p.fd < 0:
	case sysPwritev2 != 0:
		p.mode = passNowait
	case syscall.Fstat(p.fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO:
		p.mode = passPolled
	}
	return p
}

// write writes all of b, or returns the error that stopped it.
func (p *passthrough) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var n int
	var err error
	switch p.mode {
	case passNowait:
		n, err = pwriteNowait(p.fd, b)
		if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
			p.mode = passPlain
			var st syscall.Stat_t
			if syscall.Fstat(p.fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO {
				p.mode = passPolled
			}
			return p.write(b)
		}
	case passPolled:
		if len(b) <= pipeBuf && writable(p.fd) {
			n, err = writeRaw(p.fd, b)
		}
	}
	switch {
	case err == nil:
		b = b[n:]
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		// Full: the regular write below waits for the reader.
	default:
		return err // EPIPE: our reader is gone
	}
	if len(b) == 0 {
		return nil
	}
	_, err = p.f.Write(b)
	return err
}

func pwriteNowait(fd int, b []byte) (int, error) {
	iov := syscall.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	// Offset -1: the current position, as write(2); a pipe has no other.
	n, _, errno := syscall.RawSyscall6(sysPwritev2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, ^uintptr(0), ^uintptr(0), rwfNowait)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func writeRaw(fd int, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// writable says whether a write to fd would not wait now (or would fail at
// once: POLLERR is a pipe without a reader).
func writable(fd int) bool {
	const pollOut, pollErr = 0x4, 0x8
	pfd := struct {
		fd             int32
		events, revent int16
	}{fd: int32(fd), events: pollOut}
	var zero syscall.Timespec
	n, _, errno := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	return errno == 0 && n == 1 && pfd.revent&(pollOut|pollErr) != 0
}
