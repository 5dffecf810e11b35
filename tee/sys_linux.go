package tee

import (
	"errors"
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

// passthrough writes a stream through to our own stdout or stderr, which
// stays a blocking descriptor (it is shared with whoever gave it to us, so
// its flags are not ours to change). A write first asks the kernel not to
// wait (pwritev2 with RWF_NOWAIT, a raw system call: see above); what does
// not fit, because the pipe is full, is written by a regular blocking write,
// so that a slow reader of our output still paces the command as it would
// without us. Where the kernel does not take RWF_NOWAIT for the descriptor
// (a terminal, a named pipe, a file, an older kernel: EOPNOTSUPP), or on an
// architecture we have no number for, every write is the regular one.
type passthrough struct {
	f      *os.File
	fd     int
	nowait bool
}

func newPassthrough(f *os.File) *passthrough {
	p := &passthrough{f: f, fd: -1}
	// Control, not Fd: Fd would make a non-blocking descriptor blocking.
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { p.fd = int(fd) })
	}
	p.nowait = p.fd >= 0 && sysPwritev2 != 0
	return p
}

// write writes all of b, or returns the error that stopped it.
func (p *passthrough) write(b []byte) error {
	if p.nowait && len(b) > 0 {
		n, err := pwriteNowait(p.fd, b)
		switch {
		case err == nil:
			b = b[n:]
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			// Full: the blocking write below waits for the reader.
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.ESPIPE):
			p.nowait = false
		default:
			return err // EPIPE: our reader is gone
		}
		if len(b) == 0 {
			return nil
		}
	}
	_, err := p.f.Write(b)
	return err
}

func pwriteNowait(fd int, b []byte) (int, error) {
	iov := syscall.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	// Offset -1 (both halves): the current position, as write(2), which
	// is what a pipe requires.
	n, _, errno := syscall.RawSyscall6(sysPwritev2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, ^uintptr(0), ^uintptr(0), rwfNowait)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
