package tee

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Queue sizes: at most queueBlocks blocks of blockSize bytes wait for the
// disk (2 MiB), which bounds the memory of the wrapper; a block is always
// larger than the largest record (MaxLineSize plus the header).
const (
	defaultBlockSize   = 256 << 10
	defaultQueueBlocks = 8
)

// A write that lasts defaultStallAfter means a stalled disk: the reader stops
// waiting for the writer and drops lines instead. defaultMaxWait bounds the
// wait for a writer that is only short of CPU.
const (
	defaultStallAfter = 100 * time.Millisecond
	defaultMaxWait    = 2 * time.Second
)

// Retry pacing after a failed write: while the file fails, blocks are dropped
// without trying, and the next attempt comes after the backoff.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

var errQueueFull = errors.New("the disk stalled: the queue of lines waiting to be written stayed full")

// block is a run of whole records on its way to the file.
type block struct {
	data []byte
	// dropped records were thrown away just before this block because no
	// block was free; the writer reports them before writing it.
	dropped      int64
	droppedSince time.Time
}

// sink frames records into blocks (on the reader's goroutine) and writes the
// blocks to the log file (on its own goroutine). The reader never waits for a
// stuck or failing disk: it drops records and counts them (see take).
type sink struct {
	format    Format
	out       io.Writer
	log       *slog.Logger
	blockSize int
	limit     int
	made      int
	free      chan *block
	queue     chan *block
	done      chan struct{}
	cur       *block
	now       func() time.Time

	stallAfter time.Duration // see take
	maxWait    time.Duration
	stalled    bool
	timer      *time.Timer
	writeStart atomic.Int64 // unix nanoseconds when the current write began; 0 between writes

	// Reader side: records dropped since the last queued block.
	dropped      int64
	droppedSince time.Time

	// Lines lost in total, for tests.
	linesLost atomic.Int64
}

func newSink(format Format, out io.Writer, log *slog.Logger, blockSize, blocks int) *sink {
	if blockSize <= 0 {
		blockSize = defaultBlockSize
	}
	if blocks <= 0 {
		blocks = defaultQueueBlocks
	}
	s := &sink{
		format:    format,
		out:       out,
		log:       log,
		blockSize: max(blockSize, MaxLineSize+256),
		limit:     blocks,
		free:      make(chan *block, blocks),
		queue:     make(chan *block, blocks),
		done:      make(chan struct{}),
		now:       time.Now,

		stallAfter: defaultStallAfter,
		maxWait:    defaultMaxWait,
	}
	go s.run()
	return s
}

// room returns a block with at least need free bytes, or nil when the
// record must be dropped.
func (s *sink) room(need int) *block {
	if s.cur != nil {
		if cap(s.cur.data)-len(s.cur.data) >= need {
			return s.cur
		}
		s.push()
	}
	s.cur = s.take()
	return s.cur
}

// take gets an empty block. While the writer makes progress the reader waits
// for it, so that an app writing faster than the disk takes is paced by the
// disk, as it is by containerd, which writes synchronously. A writer whose
// current write has lasted stallAfter is stuck on a hung or throttled disk:
// from then on records are dropped, without waiting, until the writer has
// caught up on half of the queue. A writer that is merely short of CPU (a
// loaded node) is waited for, up to maxWait. A failing disk never makes the
// reader wait: its writes return at once and the writer drops their blocks.
func (s *sink) take() *block {
	if s.stalled {
		if len(s.free) < s.limit/2 {
			return nil
		}
		s.stalled = false
	}
	select {
	case b := <-s.free:
		return b
	default:
	}
	if s.made < s.limit {
		s.made++
		return &block{data: make([]byte, 0, s.blockSize)}
	}
	poll := max(s.stallAfter/4, time.Millisecond)
	if s.timer == nil {
		s.timer = time.NewTimer(poll)
	} else {
		s.timer.Reset(poll)
	}
	giveUp := time.Now().Add(s.maxWait)
	for {
		select {
		case b := <-s.free:
			s.timer.Stop()
			return b
		case <-s.timer.C:
		}
		now := time.Now()
		if started := s.writeStart.Load(); (started != 0 && now.UnixNano()-started > int64(s.stallAfter)) || now.After(giveUp) {
			s.stalled = true
			return nil
		}
		s.timer.Reset(poll)
	}
}

func (s *sink) drop(records int64) {
	if s.dropped == 0 {
		s.droppedSince = s.now()
	}
	s.dropped += records
}

// push queues the current block. The queue holds every block there is, so
// this never waits.
func (s *sink) push() {
	b := s.cur
	s.cur = nil
	if b == nil || len(b.data) == 0 {
		if b != nil {
			s.free <- b
		}
		return
	}
	b.dropped, b.droppedSince = s.dropped, s.droppedSince
	s.dropped = 0
	s.queue <- b
}

// pending says whether framed records wait for a flush.
func (s *sink) pending() bool { return s.cur != nil && len(s.cur.data) > 0 }

// flush hands what has been framed so far to the writer.
func (s *sink) flush() {
	if s.cur != nil && len(s.cur.data) > 0 {
		s.push()
	}
}

func (s *sink) record(ts []byte, st Stream, partial bool, text []byte) {
	if s.format == Raw {
		need := len(text)
		if !partial {
			need++
		}
		b := s.room(need)
		if b == nil {
			s.drop(1)
			return
		}
		b.data = append(b.data, text...)
		if !partial {
			b.data = append(b.data, '\n')
		}
		return
	}
	need := len(ts) + len(" stdout P ") + len(text) + 1
	b := s.room(need)
	if b == nil {
		s.drop(1)
		return
	}
	// Copies into the reserved space: this runs once per line.
	n := len(b.data)
	b.data = b.data[:n+need]
	dst := b.data[n:]
	i := copy(dst, ts)
	if st == Stderr {
		i += copy(dst[i:], " stderr ")
	} else {
		i += copy(dst[i:], " stdout ")
	}
	if partial {
		dst[i] = 'P'
	} else {
		dst[i] = 'F'
	}
	dst[i+1] = ' '
	i += 2 + copy(dst[i+2:], text)
	dst[i] = '\n'
}

func (s *sink) full(_ Stream, header, line []byte) {
	need := len(header) + len(line)
	b := s.room(need)
	if b == nil {
		s.drop(1)
		return
	}
	n := len(b.data)
	b.data = b.data[:n+need]
	copy(b.data[n+copy(b.data[n:], header):], line)
}

func (s *sink) lines(_ Stream, text []byte) {
	for len(text) > 0 {
		b := s.room(1)
		if b == nil {
			s.drop(int64(bytes.Count(text, []byte{'\n'})))
			return
		}
		free := cap(b.data) - len(b.data)
		n := len(text)
		if n > free {
			n = bytes.LastIndexByte(text[:free], '\n') + 1
			if n == 0 {
				if len(b.data) > 0 {
					s.push() // the line fits in an empty block
					continue
				}
				n = free
			}
		}
		b.data = append(b.data, text[:n]...)
		text = text[n:]
	}
}

// notice is a line of the wrapper's own in the file (as stderr in CRI).
func (s *sink) notice(ts []byte, text string) []byte {
	if s.format == Raw {
		return []byte("fargate-otel-tee: " + text + "\n")
	}
	return []byte(string(ts) + " stderr F fargate-otel-tee: " + text + "\n")
}

// say writes a notice of the wrapper through the queue, in order with the
// records around it. Reader side only.
func (s *sink) say(ts []byte, text string) {
	line := s.notice(ts, text)
	if b := s.room(len(line)); b != nil {
		b.data = append(b.data, line...)
	} else {
		s.drop(1)
	}
}

// run is the writer goroutine.
func (s *sink) run() {
	defer close(s.done)
	var (
		lost      int64 // records not written and not yet reported in the file
		lostSince time.Time
		reasons   []string // distinct, in order
		retryAt   time.Time
		backoff   = minBackoff
		failing   bool
		clk       = newClock(s.now)
	)
	lose := func(n int64, why error) {
		if n == 0 {
			return
		}
		if lost == 0 {
			lostSince = s.now()
		}
		lost += n
		s.linesLost.Add(n)
		addReason(&reasons, why)
	}
	fail := func(err error) {
		if !failing {
			s.log.Warn("cannot write the log file; the command's output still passes through, lines for the file are counted and reported once writing works again", "error", err)
		}
		failing = true
		retryAt = s.now().Add(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
	report := func() error {
		if lost == 0 {
			return nil
		}
		text := fmt.Sprintf("%d log lines were lost since %s: %s", lost, lostSince.UTC().Format(time.RFC3339Nano), strings.Join(reasons, "; "))
		if _, err := s.write(s.notice(clk.stamp(), text)); err != nil {
			return err
		}
		if failing {
			s.log.Info("the log file is writable again", "lost_lines", lost)
		}
		lost, reasons, failing, backoff = 0, nil, false, minBackoff
		return nil
	}
	for b := range s.queue {
		if b.dropped > 0 {
			if lost == 0 {
				lostSince = b.droppedSince
			}
			lost += b.dropped
			s.linesLost.Add(b.dropped)
			addReason(&reasons, errQueueFull)
		}
		// Lines are counted only when they are lost: a CRI record is one line.
		if failing && s.now().Before(retryAt) {
			lose(countLines(b.data), nil)
		} else if err := report(); err != nil {
			fail(err)
			lose(countLines(b.data), err)
		} else if n, err := s.write(b.data); err != nil {
			fail(err)
			lose(countLines(b.data[n:]), err)
		}
		b.data = b.data[:0]
		b.dropped = 0
		s.free <- b
	}
	if err := report(); err != nil {
		s.log.Warn("log lines were lost and could not be reported in the log file", "lines", lost, "error", err)
	}
	if n := s.linesLost.Load(); n > 0 {
		s.log.Warn("log lines lost in total", "lines", n)
	}
}

func countLines(b []byte) int64 { return int64(bytes.Count(b, []byte{'\n'})) }

// write is a write to the file, timed for the reader's stall detection.
func (s *sink) write(p []byte) (int, error) {
	s.writeStart.Store(time.Now().UnixNano())
	defer s.writeStart.Store(0)
	return s.out.Write(p)
}

// addReason keeps the distinct causes of a loss, at most a few.
func addReason(reasons *[]string, err error) {
	if err == nil || len(*reasons) >= 3 || slices.Contains(*reasons, err.Error()) {
		return
	}
	*reasons = append(*reasons, err.Error())
}

// close hands the last block to the writer and waits for it, at most timeout
// (a disk that hangs must not keep the command's exit code from its caller).
func (s *sink) close(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	s.flush()
	if s.dropped > 0 {
		// Nothing followed the drop: carry the count on an empty block,
		// waiting for one to come back if all are in flight.
		var b *block
		if s.made < s.limit {
			s.made++
			b = &block{}
		} else {
			select {
			case b = <-s.free:
			case <-deadline.C:
			}
		}
		if b != nil {
			b.dropped, b.droppedSince = s.dropped, s.droppedSince
			s.dropped = 0
			s.queue <- b
		}
	}
	close(s.queue)
	select {
	case <-s.done:
		return true
	case <-deadline.C:
		s.log.Warn("the log file did not take the last lines in time; exiting without them", "waited", timeout)
		return false
	}
}
