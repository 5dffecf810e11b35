package follow

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/fargate-otel/fargate-otel/tee"
)

// The kubelet's containerLogs with timestamps=true answers lines
// "<time> <text>\n" (k8s.io/cri-client/pkg/logs: the time of the line's
// first CRI record, RFC3339 with nine fraction digits in the zone of the
// node's file, older kubelets trimming trailing zeros). It joins a line's P
// pieces into one line under the first piece's time, and merges stdout and
// stderr into one stream: the stream of each line is lost. A last line that
// the container left without a newline comes without one, at the end.

// readBuffer is how much of the kubelet's answer is read at once: a line
// longer than a piece is read piece by piece, so memory stays bounded.
const readBuffer = 64 << 10

// maxStamp bounds the time at the start of a line.
const maxStamp = 64

// piece is up to tee.MaxLineSize bytes of one line of the answer.
type piece struct {
	start bool  // the first piece of a line
	ts    int64 // unix ns of the line (start pieces); 0: the line has no time
	text  []byte
	end   bool // the line's end (its newline, not part of text)
}

// lineReader cuts the answer into pieces.
type lineReader struct {
	br     *bufio.Reader
	inLine bool
	max    int
	// idle is called before a read that may wait for the network: the
	// follower writes what it has, so that nothing waits in memory while the
	// stream is quiet.
	idle func() error
}

func newLineReader(r io.Reader, idle func() error) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, readBuffer), max: tee.MaxLineSize, idle: idle}
}

// fill makes sure at least n bytes are buffered and returns what is
// buffered; with fewer (the answer ended, or broke) it returns them and the
// error.
func (r *lineReader) fill(n int) ([]byte, error) {
	var err error
	if r.br.Buffered() < n {
		if r.idle != nil {
			if err := r.idle(); err != nil {
				return nil, err
			}
		}
		_, err = r.br.Peek(n)
	}
	buf, _ := r.br.Peek(r.br.Buffered())
	return buf, err
}

// next returns the next piece. The text is valid until the next call.
func (r *lineReader) next() (piece, error) {
	var p piece
	if !r.inLine {
		p.start = true
		ts, err := r.stamp()
		if err != nil {
			return p, err
		}
		p.ts = ts
		r.inLine = true
	}
	need := 1
	for {
		buf, err := r.fill(need)
		look := buf[:min(len(buf), r.max+1)]
		if i := bytes.IndexByte(look, '\n'); i >= 0 {
			p.text, p.end = buf[:i], true
			r.inLine = false
			_, _ = r.br.Discard(i + 1)
			return p, nil
		}
		if len(look) > r.max {
			p.text = buf[:r.max]
			_, _ = r.br.Discard(r.max)
			return p, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && (len(buf) > 0 || p.start) {
				// The answer ends without a newline: the rest is the last
				// piece (a line that is only a time gives an empty one).
				p.text = buf
				_, _ = r.br.Discard(len(buf))
				r.inLine = false
				return p, nil
			}
			return piece{}, err
		}
		need = len(look) + 1
	}
}

// stamp reads the time at the start of a line; 0 when the line has none (a
// piece of a line whose start came before sinceTime: the kubelet writes it
// without a time). An answer that ends before the time does is an end: a
// time cut off is not a line.
func (r *lineReader) stamp() (int64, error) {
	need := 1
	for {
		buf, err := r.fill(need)
		look := buf[:min(len(buf), maxStamp)]
		sp, nl := bytes.IndexByte(look, ' '), bytes.IndexByte(look, '\n')
		if sp >= 0 && (nl < 0 || sp < nl) {
			if t, err := time.Parse(time.RFC3339Nano, string(look[:sp])); err == nil {
				_, _ = r.br.Discard(sp + 1)
				return t.UnixNano(), nil
			}
			return 0, nil
		}
		if nl >= 0 || len(look) >= maxStamp {
			return 0, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		need = len(look) + 1
	}
}

// position is what the file of one run holds, enough to resume exactly.
type position struct {
	at    int64 // unix ns of the last line begun in the file; 0: none
	count int   // lines at `at` the file holds whole
	open  bool  // the file ends in a line at `at` that has no end yet (P pieces)
	part  int64 // bytes of that line the file holds
}

// Dispositions of the line being copied.
const (
	lineWrite = iota
	lineDrop  // the file has it
	lineSkip  // the file has its first `skip` bytes: write the rest
)

// copier turns the kubelet's lines into CRI records for the file, dropping
// what a resumed answer gives again: asked from sinceTime = pos.at, the
// kubelet sends every line from that time on, so the first pos.count lines
// at pos.at are dropped, and of an open line the bytes the file has.
type copier struct {
	pos       position
	resuming  bool
	seen      int // lines at pos.at dropped so far
	continued bool
	mode      int
	skip      int64
	lineTS    int64
	out       *records
	// gap is set when the answer misses lines the file has: the kubelet no
	// longer has them (its log rotated while the stream was down), nor,
	// probably, some that followed them.
	gap func(at, next int64, missing int)
}

func newCopier(pos position, resuming bool, out *records) *copier {
	return &copier{pos: pos, resuming: resuming && pos.at != 0, out: out}
}

// feed copies one piece.
func (c *copier) feed(p piece) {
	if p.start {
		c.begin(p.ts)
	}
	switch c.mode {
	case lineDrop:
		return
	case lineSkip:
		n := min(int64(len(p.text)), c.skip)
		c.skip -= n
		if c.skip > 0 && !p.end {
			return
		}
		c.mode = lineWrite
		p.text = p.text[n:]
		if len(p.text) == 0 && !p.end {
			return
		}
	}
	c.out.add(c.lineTS, !p.end, p.text)
	c.pos.part += int64(len(p.text))
	if p.end {
		c.pos.open, c.pos.part = false, 0
		c.pos.count++
	}
}

// begin decides what to do with a line that starts at ts.
func (c *copier) begin(ts int64) {
	if ts == 0 {
		if c.resuming {
			c.mode = lineDrop // the rest of a line from before sinceTime
			return
		}
		ts = max(c.pos.at, c.lineTS) // no time of its own: keep the order
		if ts == 0 {
			ts = time.Now().UnixNano()
		}
	}
	if c.resuming {
		switch {
		case ts < c.pos.at:
			c.mode = lineDrop
			return
		case ts == c.pos.at && c.seen < c.pos.count:
			c.seen++
			c.mode = lineDrop
			return
		case ts == c.pos.at && c.pos.open && !c.continued:
			// The rest of the file's open line; the file has nothing after it.
			c.continued, c.resuming = true, false
			c.mode, c.skip, c.lineTS = lineSkip, c.pos.part, ts
			if c.skip == 0 {
				c.mode = lineWrite
			}
			return
		case ts == c.pos.at:
			c.resuming = false // every line the file has was dropped: this one is new
		case ts > c.pos.at:
			c.resuming = false
			missing := c.pos.count - c.seen
			if c.pos.open && !c.continued {
				missing++
			}
			if missing > 0 && c.gap != nil {
				c.gap(c.pos.at, ts, missing)
			}
		}
	}
	if c.pos.open {
		// The file's last line never got its end: end it, so that the
		// collector does not join it with this one.
		c.out.add(c.pos.at, false, nil)
		c.pos.open, c.pos.part = false, 0
		c.pos.count++
	}
	c.mode, c.lineTS = lineWrite, ts
	if ts != c.pos.at {
		c.pos.at, c.pos.count = ts, 0
	}
	c.pos.open, c.pos.part = true, 0
}

// records is a block of CRI records on its way to the file. Every line of
// the kubelet is written as stdout: its stream is lost in containerLogs.
// The follower's own notices are stderr, as the wrapper's are.
type records struct {
	b []byte
}

// add appends a record of the line at ts (partial: a P piece).
func (r *records) add(ts int64, partial bool, text []byte) {
	r.b = appendStamp(r.b, ts)
	if partial {
		r.b = append(r.b, " stdout P "...)
	} else {
		r.b = append(r.b, " stdout F "...)
	}
	r.b = append(r.b, text...)
	r.b = append(r.b, '\n')
}

// notice appends a line of the follower's own, stamped now.
func (r *records) notice(now time.Time, text string) {
	r.b = appendStamp(r.b, now.UnixNano())
	r.b = append(r.b, " stderr F fargate-otel-tee: "...)
	r.b = append(r.b, text...)
	r.b = append(r.b, '\n')
}

// appendStamp writes the time as the wrapper does: UTC, nine fraction
// digits, Z (the collector's containerd parser wants the Z).
func appendStamp(b []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
}
