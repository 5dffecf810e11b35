package tee

import (
	"bytes"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// gatedWriter stands for a disk: it blocks while closed and fails while
// failing. A stand-in is fine here: this is a unit test of the queue; the real
// disk-full case runs in the wrapper's tests on a tmpfs.
type gatedWriter struct {
	mu      sync.Mutex
	cond    *sync.Cond
	open    bool
	failing error
	buf     bytes.Buffer
	entered chan struct{}
}

func newGatedWriter() *gatedWriter {
	w := &gatedWriter{open: true, entered: make(chan struct{}, 1000)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.entered <- struct{}{}:
	default:
	}
	for !w.open {
		w.cond.Wait()
	}
	if w.failing != nil {
		return 0, w.failing
	}
	return w.buf.Write(p)
}

func (w *gatedWriter) set(open bool, failing error) {
	w.mu.Lock()
	w.open, w.failing = open, failing
	w.cond.Broadcast()
	w.mu.Unlock()
}

var lostNotice = regexp.MustCompile(`fargate-otel-tee: (\d+) log lines were lost since \S+: (.*)`)

// accounting checks that every record was written or counted as lost, and
// returns the lost count and the reasons given.
func accounting(t *testing.T, file []byte, total int) (lost int, reasons []string) {
	t.Helper()
	lines, err := crifile.Read(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	written := 0
	last := -1
	for _, l := range lines {
		if m := lostNotice.FindSubmatch(l.Text); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			lost += n
			reasons = append(reasons, string(m[2]))
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimPrefix(l.Text, []byte("line "))))
		if err != nil || n <= last {
			t.Fatalf("unexpected or out-of-order line %q after %d", l.Text, last)
		}
		last = n
		written++
	}
	if written+lost != total {
		t.Fatalf("%d lines written + %d reported lost != %d sent", written, lost, total)
	}
	return lost, reasons
}

// lineSender feeds numbered stdout lines ("line N") to s, flushing after
// each, and counts them in *total.
func lineSender(s *sink) (send func(n int), total *int) {
	clk := newClock(nil)
	ls := newLineSplitter(Stdout, CRI)
	total = new(int)
	send = func(n int) {
		for i := 0; i < n; i++ {
			ls.feed(clk.stamp(), []byte("line "+strconv.Itoa(*total)+"\n"), s)
			*total++
			s.flush()
		}
	}
	return send, total
}

func TestSinkNeverWaitsForASlowDiskAndCountsWhatItDrops(t *testing.T) {
	w := newGatedWriter()
	s := newSink(CRI, w, slog.New(slog.NewTextHandler(io.Discard, nil)), MaxLineSize+256, 4)
	s.stallAfter = 20 * time.Millisecond
	s.maxWait = time.Minute // the hang must be seen in the write, not in the time waited
	send, total := lineSender(s)
	send(10)
	w.set(false, nil) // the disk hangs
	<-w.entered
	// The reader waits once, for stallAfter, then goes on at full speed,
	// dropping: with 4 blocks in flight it cannot keep everything.
	done := make(chan struct{})
	start := time.Now()
	go func() { send(5000); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the reader waited for the disk")
	}
	if waited := time.Since(start); waited < s.stallAfter {
		t.Fatalf("the reader dropped after %v, before the writer stalled for %v", waited, s.stallAfter)
	}
	w.set(true, nil)
	send(10)
	if !s.close(30 * time.Second) {
		t.Fatal("the sink did not finish")
	}
	lost, reasons := accounting(t, w.buf.Bytes(), *total)
	if lost == 0 || int64(lost) != s.linesLost.Load() {
		t.Fatalf("lost %d (counted %d), want some lost while the disk hung", lost, s.linesLost.Load())
	}
	if reasons[0] != errQueueFull.Error() {
		t.Fatalf("reason %q", reasons[0])
	}
}

func TestSinkRetriesAFailingDiskAndReportsOnceItWorks(t *testing.T) {
	w := newGatedWriter()
	s := newSink(CRI, w, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, 0)
	send, total := lineSender(s)
	send(5)
	w.set(true, &errnoErr{syscall.ENOSPC})
	deadline := time.Now().Add(30 * time.Second)
	for s.linesLost.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no write failed while the disk was full")
		}
		send(1)
		time.Sleep(time.Millisecond) // pacing the producer, not waiting for a result
	}
	w.set(true, nil)
	// Lines go on; after at most the backoff one gets through.
	deadline = time.Now().Add(30 * time.Second)
	for !bytes.Contains(w.snapshot(), []byte("were lost")) {
		if time.Now().After(deadline) {
			t.Fatal("writing never resumed after the disk recovered")
		}
		send(1)
		time.Sleep(time.Millisecond) // pacing the producer, not waiting for a result
	}
	send(5)
	if !s.close(30 * time.Second) {
		t.Fatal("the sink did not finish")
	}
	lost, reasons := accounting(t, w.buf.Bytes(), *total)
	if lost == 0 || len(reasons) != 1 || !regexp.MustCompile(`no space left on device`).MatchString(reasons[0]) {
		t.Fatalf("lost %d, reasons %q; want lines lost to ENOSPC, reported once", lost, reasons)
	}
}

func (w *gatedWriter) snapshot() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

type errnoErr struct{ errno syscall.Errno }

func (e *errnoErr) Error() string { return "write 0.log: " + e.errno.Error() }
func (e *errnoErr) Unwrap() error { return e.errno }
