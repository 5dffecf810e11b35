package tee

import (
	"bytes"
	"fmt"
)

// Stream is stdout or stderr.
type Stream uint8

// The two streams of a process.
const (
	Stdout Stream = iota
	Stderr
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// ParseStream reads "stdout" or "stderr".
func ParseStream(s string) (Stream, error) {
	switch s {
	case "stdout":
		return Stdout, nil
	case "stderr":
		return Stderr, nil
	}
	return Stdout, fmt.Errorf("stream %q: use stdout or stderr", s)
}

// Format is how lines are written to the log file.
type Format uint8

const (
	// CRI is containerd's format: <time> <stream> <P|F> <text>.
	CRI Format = iota
	// Raw writes the text of the lines only, both streams mixed in order of
	// arrival, for tools that read plain text.
	Raw
)

func (f Format) String() string {
	if f == Raw {
		return "raw"
	}
	return "cri"
}

// ParseFormat reads "cri" or "raw".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "cri":
		return CRI, nil
	case "raw":
		return Raw, nil
	}
	return CRI, fmt.Errorf("format %q: use cri or raw", s)
}

// MaxLineSize is where long lines are split into P pieces, as containerd does
// by default (max_container_log_line_size).
const MaxLineSize = 16 * 1024

// recorder receives the records of the line splitter.
type recorder interface {
	// record is one CRI line: a piece of a longer line (partial) or the end
	// of a line (without its newline).
	record(ts []byte, s Stream, partial bool, text []byte)
	// full is the common case made cheap: a whole line of stream s, its
	// newline included, after a header made by fullHeader (CRI format only).
	full(s Stream, header, line []byte)
	// lines is a run of complete lines of stream s, newlines included (raw
	// format only).
	lines(s Stream, text []byte)
}

// fullHeader is "<ts> <stream> F ", the start of a CRI line.
func fullHeader(dst, ts []byte, s Stream) []byte {
	dst = append(dst[:0], ts...)
	if s == Stderr {
		dst = append(dst, " stderr F "...)
	} else {
		dst = append(dst, " stdout F "...)
	}
	return dst
}

// lineSplitter cuts one stream into records exactly as containerd does: a
// line is the text up to '\n' (the '\n' is not part of the record), a '\r'
// right before the '\n' is dropped (containerd reads lines with Go's
// bufio ReadLine semantics), a line longer than MaxLineSize is written as
// MaxLineSize pieces tagged P and a final piece tagged F, and a last line
// without a newline is flushed as P when the stream ends. So the records of
// an app are the same here as in a node's /var/log/pods, and a collector
// gives the same log bodies on Fargate and off it. The raw format keeps every
// byte. Passthrough to stdout and stderr never goes through here.
type lineSplitter struct {
	stream Stream
	format Format
	max    int // MaxLineSize; smaller in tests
	// pending is the start of a line whose end has not arrived: at most max
	// bytes, or max+1 when the last one is a '\r' (in CRI format), which a
	// '\n' may still drop or other text make part of the line.
	pending []byte
	header  []byte // fullHeader of the chunk being fed
}

func newLineSplitter(s Stream, f Format) *lineSplitter {
	return &lineSplitter{stream: s, format: f, max: MaxLineSize}
}

// feed splits a chunk that arrived at ts.
func (ls *lineSplitter) feed(ts, chunk []byte, out recorder) {
	if ls.format == Raw {
		ls.feedRaw(ts, chunk, out)
		return
	}
	ls.header = fullHeader(ls.header, ts, ls.stream)
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			ls.hold(ts, chunk, out)
			return
		}
		if len(ls.pending) == 0 && i <= ls.max && (i == 0 || chunk[i-1] != '\r') {
			out.full(ls.stream, ls.header, chunk[:i+1])
		} else {
			ls.complete(ts, chunk[:i], out)
		}
		chunk = chunk[i+1:]
	}
}

// feedRaw passes runs of complete lines on in one piece: raw lines need no
// splitting, only the unfinished line at the end is held.
func (ls *lineSplitter) feedRaw(ts, chunk []byte, out recorder) {
	last := bytes.LastIndexByte(chunk, '\n')
	if last < 0 {
		ls.hold(ts, chunk, out)
		return
	}
	if len(ls.pending) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		ls.complete(ts, chunk[:i], out)
		chunk = chunk[i+1:]
		last -= i + 1
	}
	if last >= 0 {
		out.lines(ls.stream, chunk[:last+1])
	}
	ls.hold(ts, chunk[last+1:], out)
}

// complete ends the current line with text.
func (ls *lineSplitter) complete(ts, text []byte, out recorder) {
	if ls.format == CRI {
		// containerd drops a '\r' right before '\n', wherever it arrived.
		if n := len(text); n > 0 && text[n-1] == '\r' {
			text = text[:n-1]
		} else if n := len(ls.pending); len(text) == 0 && n > 0 && ls.pending[n-1] == '\r' {
			ls.pending = ls.pending[:n-1]
		}
	}
	if len(ls.pending) > 0 {
		ls.spillHeldCR(ts, out)
		take := min(len(text), ls.max-len(ls.pending))
		ls.pending = append(ls.pending, text[:take]...)
		text = text[take:]
		if len(text) == 0 {
			out.record(ts, ls.stream, false, ls.pending)
			ls.pending = ls.pending[:0]
			return
		}
		out.record(ts, ls.stream, true, ls.pending)
		ls.pending = ls.pending[:0]
	}
	for len(text) > ls.max {
		out.record(ts, ls.stream, true, text[:ls.max])
		text = text[ls.max:]
	}
	out.record(ts, ls.stream, false, text)
}

// hold keeps text that has no newline yet, writing out P pieces once more than
// max bytes are waiting (exactly max may still end as F; in CRI format so may
// max and a '\r', which a '\n' would drop).
func (ls *lineSplitter) hold(ts, text []byte, out recorder) {
	if len(text) == 0 {
		return
	}
	if len(ls.pending) > 0 {
		ls.spillHeldCR(ts, out)
		take := min(len(text), ls.max-len(ls.pending))
		ls.pending = append(ls.pending, text[:take]...)
		text = text[take:]
		if len(text) == 0 || ls.heldCR(text) {
			ls.pending = append(ls.pending, text...)
			return
		}
		out.record(ts, ls.stream, true, ls.pending)
		ls.pending = ls.pending[:0]
	}
	for len(text) > ls.max && (len(text) != ls.max+1 || !ls.heldCR(text[ls.max:])) {
		out.record(ts, ls.stream, true, text[:ls.max])
		text = text[ls.max:]
	}
	ls.pending = append(ls.pending, text...)
}

// heldCR says whether rest, what is left past max bytes of a line, is a lone
// '\r' that must wait for the next byte before it counts (CRI format).
func (ls *lineSplitter) heldCR(rest []byte) bool {
	return ls.format == CRI && len(rest) == 1 && rest[0] == '\r'
}

// spillHeldCR writes out the max bytes before a held '\r' once more text
// follows it: the '\r' is then part of the line, and starts the next piece.
func (ls *lineSplitter) spillHeldCR(ts []byte, out recorder) {
	if len(ls.pending) > ls.max {
		out.record(ts, ls.stream, true, ls.pending[:ls.max])
		ls.pending = append(ls.pending[:0], ls.pending[ls.max:]...)
	}
}

// flush writes a last line that has no newline, as P, when the stream ends.
func (ls *lineSplitter) flush(ts []byte, out recorder) {
	if len(ls.pending) > 0 {
		ls.spillHeldCR(ts, out)
		out.record(ts, ls.stream, true, ls.pending)
		ls.pending = ls.pending[:0]
	}
}
