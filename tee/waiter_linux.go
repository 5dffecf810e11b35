package tee

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// epollET is EPOLLET as the unsigned flag it is (syscall declares it negative).
const epollET = 1 << 31

// waiter is the reader's epoll instance, edge-triggered: a stream is
// reported when new data arrives, so the order of the events is the order of
// arrival.
//
// The instance is itself registered with the Go runtime's poller (an epoll
// instance is readable while it has events): the reader waits by parking its
// goroutine, as a network read does, not in a blocking epoll_wait. A
// goroutine that blocks in a system call round after round costs a process
// that is otherwise idle dearly: the runtime takes its processor away after
// 20 µs and hands it back when the call returns, and its monitor thread,
// which does this, keeps polling every 20 µs. Parked, the process sleeps in
// the runtime's one epoll_wait between rounds, and the instance here is only
// ever asked without waiting (a raw system call: see sys_linux.go).
type waiter struct {
	ep       int
	file     *os.File // ep, for the runtime's poller
	conn     syscall.RawConn
	deadline time.Time // the read deadline set on file
	events   []syscall.EpollEvent
	n        int // what the last poll got
	err      error
	pollFn   func(uintptr) bool // w.poll, made once (a method value allocates)
}

func newWaiter(size int) (*waiter, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &waiter{ep: ep, events: make([]syscall.EpollEvent, size)}
	w.pollFn = w.poll
	if err := syscall.SetNonblock(ep, true); err != nil {
		_ = syscall.Close(ep)
		return nil, err
	}
	w.file = os.NewFile(uintptr(ep), "epoll")
	if w.conn, err = w.file.SyscallConn(); err != nil {
		_ = w.file.Close()
		return nil, err
	}
	return w, nil
}

// add watches fd for input, reported with id.
func (w *waiter) add(fd int, id int32) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: id}
	return syscall.EpollCtl(w.ep, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// remove stops watching fd.
func (w *waiter) remove(fd int) {
	_ = syscall.EpollCtl(w.ep, syscall.EPOLL_CTL_DEL, fd, nil)
}

// wait returns the events that are ready. Without block, or when none come
// before deadline (zero: no deadline), it returns none.
func (w *waiter) wait(block bool, deadline time.Time) ([]syscall.EpollEvent, error) {
	if !block {
		w.poll(uintptr(w.ep))
		return w.events[:w.n], w.err
	}
	// The deadline is a runtime timer: set only when it changes, which is
	// far less often than once a round.
	if !deadline.Equal(w.deadline) {
		if err := w.file.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		w.deadline = deadline
	}
	// Read calls poll at once, and again each time the runtime's poller
	// says the instance is readable.
	if err := w.conn.Read(w.pollFn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, nil
		}
		return nil, err
	}
	return w.events[:w.n], w.err
}

// poll takes the events that are ready without waiting: done when there are
// some (or an error).
func (w *waiter) poll(fd uintptr) bool {
	w.n, w.err = epollPoll(int(fd), w.events)
	return w.n > 0 || w.err != nil
}

func (w *waiter) close() { _ = w.file.Close() }
