package tee

import (
	"bytes"
	"errors"
	"slices"
	"syscall"
	"time"
)

// readSize is how much one read takes from a stream.
const readSize = 64 << 10

// source is one stream of the command: a pipe, or the pseudo-terminal.
type source struct {
	fd     int
	stream Stream
	out    *passthrough // where the bytes pass through; nil once that broke
	split  *lineSplitter
	closed bool
	broken bool // passing through failed: the stream ends after this read
	hot    bool // the last read filled the buffer: more may be waiting, with no new event
	// readAhead: read in a round that epoll did not report it in; its
	// pending event, if any, tells the arrival of data already taken.
	readAhead bool
	isPTY     bool // the master of the command's terminal: closed by its owner
}

// pump is the single reader of the command's streams. Reading them in one
// loop and stamping each chunk when it is read makes the file's order the
// order in which the kernel handed the chunks over: the best two pipes allow.
type pump struct {
	w       *waiter
	wake    int // read end of a pipe written when the command has exited
	sources []*source
	sink    *sink    // nil: pass through only
	rec     recorder // where lines are framed: the sink, or the rate limit in front of it
	clock   *clock
	buf     []byte // read buffer of the first ready stream of a round
	buf2    []byte // and of the second
	ready   [2]*source

	// flushAt is when the lines framed since the last hand-over go to the
	// file's writer at the latest (zero: none are waiting); see flushDelay.
	flushAt   time.Time
	drainIdle time.Duration // after the exit, stop when nothing came for this long
	drainMax  time.Duration // after the exit, stop at the latest after this long
}

func newPump(sources []*source, wake int, s *sink, rec recorder, clk *clock) (*pump, error) {
	w, err := newWaiter(len(sources) + 1)
	if err != nil {
		return nil, err
	}
	p := &pump{w: w, wake: wake, sources: sources, sink: s, rec: rec, clock: clk, buf: make([]byte, readSize), buf2: make([]byte, readSize)}
	// Edge-triggered (see waiter): what a read leaves behind is remembered
	// instead (source.hot).
	for i, src := range sources {
		if err := w.add(src.fd, int32(i)); err != nil {
			w.close()
			return nil, err
		}
	}
	if wake >= 0 {
		if err := w.add(wake, -1); err != nil {
			w.close()
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
	defer p.w.close()
	exited := false
	var deadline time.Time
	var staleBuf [2]*source
	for p.open() > 0 {
		var until time.Time // zero: wait for ever
		if exited {
			now := time.Now()
			if !now.Before(deadline) {
				break
			}
			until = now.Add(min(deadline.Sub(now), p.drainIdle))
		} else if !p.flushAt.IsZero() {
			until = p.flushAt
		}
		block := true
		ready := p.ready[:0]
		// Data left by the last read is older than anything new: first.
		for _, src := range p.sources {
			if src.hot && !src.closed {
				ready = append(ready, src)
				block = false
			}
		}
		events, err := p.w.wait(block, until)
		if err != nil {
			return err
		}
		if len(events) == 0 && len(ready) == 0 {
			if exited {
				break
			}
			// The flush deadline: nothing else wakes the reader without
			// an event.
			p.handOver()
			continue
		}
		// Then the streams in the order their new data arrived. A stream
		// read ahead of its event (below) has an event that tells when
		// data we already took arrived: it goes after the others.
		stale := staleBuf[:0]
		for _, ev := range events {
			if ev.Fd < 0 {
				var b [8]byte
				_, _ = readRaw(p.wake, b[:])
				if !exited {
					exited = true
					deadline = time.Now().Add(p.drainMax)
				}
				continue
			}
			src := p.sources[ev.Fd]
			switch {
			case slices.Contains(ready, src):
			case src.readAhead:
				stale = append(stale, src)
			default:
				ready = append(ready, src)
			}
			src.readAhead = false
		}
		for _, src := range stale {
			if !slices.Contains(ready, src) {
				ready = append(ready, src)
			}
		}
		reported := len(ready)
		if reported > 0 {
			// The other stream too: what it got since epoll answered
			// belongs to the same span of time.
			for _, src := range p.sources {
				if !src.closed && !slices.Contains(ready, src) {
					ready = append(ready, src)
				}
			}
		}
		p.readRound(ready, reported)
		p.framed(exited)
	}
	for _, s := range p.sources {
		p.end(s)
	}
	p.handOver()
	return nil
}

// flushDelay is how long framed lines may wait for more before they go to the
// file's writer (a full block goes at once). Handing a block over wakes the
// writer's goroutine, and its write the runtime's monitor: per round, with an
// app that writes every millisecond, that was most of the wrapper's CPU. The
// collector polls the files every 200 ms, the passthrough (kubectl logs) does
// not wait at all, and every exit path hands the last lines over.
const flushDelay = 50 * time.Millisecond

// framed decides what happens to the lines a round framed: they go to the
// writer when flushDelay has passed since the first of them, or at once
// once the command has exited (the drain is short, and nothing may be left
// behind by a wrapper that is about to end).
func (p *pump) framed(exited bool) {
	if p.sink == nil {
		return
	}
	if !p.sink.pending() {
		p.flushAt = time.Time{} // a full block went on its own
		return
	}
	now := time.Now()
	switch {
	case exited:
		p.handOver()
	case p.flushAt.IsZero():
		p.flushAt = now.Add(flushDelay)
	case !now.Before(p.flushAt):
		p.handOver()
	}
}

// handOver gives the writer what has been framed.
func (p *pump) handOver() {
	if p.sink != nil {
		p.sink.flush()
	}
	p.flushAt = time.Time{}
}

// readRound reads once from each ready stream, in the order in which epoll
// reported them (the order in which they became ready) and then the streams it
// did not report, passes the chunks through and frames them.
//
// With two streams, how much each holds is taken first, with two calls back to
// back, and only that much is read: the two chunks are then a snapshot of one
// instant, and what comes later waits for the next round.
func (p *pump) readRound(ready []*source, reported int) {
	var chunks [2]chunk
	var avail [2]int
	if len(ready) == 2 {
		for i, s := range ready {
			avail[i] = bytesAvailable(s.fd)
		}
	}
	n := 0
	for i, s := range ready {
		buf := p.buf
		if i > 0 {
			buf = p.buf2
		}
		if avail[i] > 0 && avail[i] < len(buf) {
			buf = buf[:avail[i]]
		}
		if data := p.read(s, buf); len(data) > 0 && n < len(chunks) {
			chunks[n] = chunk{s, data}
			n++
			// Read ahead of its event: that event, when it comes, is stale.
			s.readAhead = i >= reported
		}
	}
	for _, c := range chunks[:n] {
		p.pass(c)
	}
	if p.sink != nil && n > 0 {
		ts := p.clock.stamp()
		if n == 1 {
			chunks[0].s.split.feed(ts, chunks[0].data, p.rec)
		} else {
			interleave(ts, chunks[0], chunks[1], p.rec)
		}
	}
	// A stream whose passthrough broke ends after its last chunk is framed.
	for _, c := range chunks[:n] {
		if c.s.broken {
			p.end(c.s)
		}
	}
}

// chunk is what one read got from one stream.
type chunk struct {
	s    *source
	data []byte
}

// interleave frames two chunks that were waiting at the same time.
//
// Both streams waiting means the command wrote to both since the last read;
// the pipes have kept each stream's order but not their order relative to
// each other. The lines are merged as if each chunk's lines were spread evenly
// over that span, the chunk that became ready first leading: the next line
// comes from the chunk that has used the smaller share of its lines. This
// restores steady interleavings (a reader woken late on a busy node, a command
// alternating the streams flat out) and, like containerd's two concurrent
// line writers, interleaves the lines of two bursts that overlap.
func interleave(ts []byte, a, b chunk, out recorder) {
	na, nb := pieces(a.data), pieces(b.data)
	ra, rb := a.data, b.data
	for i, j := 0, 0; len(ra) > 0 || len(rb) > 0; {
		// a's next line goes first when i/na <= j/nb.
		if len(rb) == 0 || (len(ra) > 0 && i*nb <= j*na) {
			var line []byte
			line, ra = cutLine(ra)
			a.s.split.feed(ts, line, out)
			i++
		} else {
			var line []byte
			line, rb = cutLine(rb)
			b.s.split.feed(ts, line, out)
			j++
		}
	}
}

// pieces counts the lines of a chunk, an unfinished last one included.
func pieces(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// cutLine splits off the first line, newline included.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}

// read reads what one stream has. It returns nil at the end of the stream
// or when nothing was there.
func (p *pump) read(s *source, buf []byte) []byte {
	if s.closed {
		return nil
	}
	n, err := readRaw(s.fd, buf)
	s.hot = err == nil && n == readSize // a full read may have left more
	if err != nil {
		if errors.Is(err, syscall.EINTR) {
			s.hot = true
			return nil
		}
		if errors.Is(err, syscall.EAGAIN) {
			return nil
		}
		// EIO: the pseudo-terminal has no process left on it. Any other
		// error ends the stream too.
		p.end(s)
		return nil
	}
	if n == 0 {
		p.end(s)
		return nil
	}
	return buf[:n]
}

// pass writes a chunk through to our own stdout or stderr.
func (p *pump) pass(c chunk) {
	if c.s.out == nil {
		return
	}
	if err := c.s.out.write(c.data); err != nil {
		// Our own stdout or stderr is gone: pass the break on to the
		// command (it gets EPIPE or SIGPIPE, as it would have). What was
		// read is still logged.
		c.s.out = nil
		c.s.broken = true
	}
}

// end closes a stream and writes its unfinished last line.
func (p *pump) end(s *source) {
	if s.closed {
		return
	}
	s.closed = true
	p.w.remove(s.fd)
	if !s.isPTY {
		_ = syscall.Close(s.fd)
	}
	if p.sink != nil {
		s.split.flush(p.clock.stamp(), p.rec)
	}
}
