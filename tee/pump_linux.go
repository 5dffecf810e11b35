package tee

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// readSize is how much one read takes from a pipe: its whole default capacity.
const readSize = 64 << 10

// source is one stream of the command: a pipe, or the pseudo-terminal.
type source struct {
	fd     int
	stream Stream
	out    *os.File // where the bytes pass through; nil once that broke
	split  *lineSplitter
	closed bool
	isPTY  bool // the master of the command's terminal: closed by its owner
}

// pump is the single reader of the command's streams. Reading them in one
// loop and stamping each chunk when it is read makes the file's order the
// order in which the kernel handed the chunks over: the best two pipes allow.
type pump struct {
	ep      int
	wake    int // read end of a pipe written when the command has exited
	sources []*source
	sink    *sink // nil: pass through only
	clock   *clock
	buf     []byte

	drainIdle time.Duration // after the exit, stop when nothing came for this long
	drainMax  time.Duration // after the exit, stop at the latest after this long
}

func newPump(sources []*source, wake int, s *sink, clk *clock) (*pump, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &pump{ep: ep, wake: wake, sources: sources, sink: s, clock: clk, buf: make([]byte, readSize)}
	for i, src := range sources {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, src.fd, &ev); err != nil {
			_ = syscall.Close(ep)
			return nil, err
		}
	}
	if wake >= 0 {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, wake, &ev); err != nil {
			_ = syscall.Close(ep)
			return nil, err
		}
	}
	return p, nil
}

func (p *pump) open() int {
	n := 0
	for _, s := range p.sources {
		if !s.closed {
			n++
		}
	}
	return n
}

// run reads until every stream has ended, or, once the command has exited,
// until the streams stay quiet for drainIdle (a background process of the
// command may hold them open for ever) or drainMax has passed.
func (p *pump) run() error {
	defer syscall.Close(p.ep)
	events := make([]syscall.EpollEvent, len(p.sources)+1)
	exited := false
	var deadline time.Time
	for p.open() > 0 {
		timeout := -1
		if exited {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			timeout = int(min(left, p.drainIdle).Milliseconds()) + 1
		}
		n, err := syscall.EpollWait(p.ep, events, timeout)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return err
		}
		if n == 0 && exited {
			break
		}
		for _, ev := range events[:n] {
			if ev.Fd < 0 {
				var b [8]byte
				_, _ = syscall.Read(p.wake, b[:])
				if !exited {
					exited = true
					deadline = time.Now().Add(p.drainMax)
				}
				continue
			}
			p.readOnce(p.sources[ev.Fd])
		}
		if p.sink != nil {
			p.sink.flush()
		}
	}
	for _, s := range p.sources {
		p.end(s)
	}
	if p.sink != nil {
		p.sink.flush()
	}
	return nil
}

func (p *pump) readOnce(s *source) {
	if s.closed {
		return
	}
	n, err := syscall.Read(s.fd, p.buf)
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return
		}
		// EIO: the pseudo-terminal has no process left on it. Any other
		// error ends the stream too.
		p.end(s)
		return
	}
	if n == 0 {
		p.end(s)
		return
	}
	chunk := p.buf[:n]
	ts := p.clock.stamp()
	if s.out != nil {
		if _, err := s.out.Write(chunk); err != nil {
			// Our own stdout or stderr is gone: pass the break on to
			// the command (it gets EPIPE or SIGPIPE, as it would have).
			s.out = nil
			if p.sink != nil {
				s.split.feed(ts, chunk, p.sink)
			}
			p.end(s)
			return
		}
	}
	if p.sink != nil {
		s.split.feed(ts, chunk, p.sink)
	}
}

// end closes a stream and writes its unfinished last line.
func (p *pump) end(s *source) {
	if s.closed {
		return
	}
	s.closed = true
	_ = syscall.EpollCtl(p.ep, syscall.EPOLL_CTL_DEL, s.fd, nil)
	if !s.isPTY {
		_ = syscall.Close(s.fd)
	}
	if p.sink != nil {
		s.split.flush(p.clock.stamp(), p.sink)
	}
}
