// Package crifile reads log files in the CRI format that containerd writes
// and the kubelet reads (k8s.io/cri-client/pkg/logs):
//
//	<RFC3339Nano time> <stdout|stderr> <P|F> <text>\n
//
// It is the independent reader against which the wrapper's output is checked
// in tests and benchmarks; the wrapper itself does not use it.
package crifile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// Line is one line of the file.
type Line struct {
	Time    time.Time
	Stream  string // stdout or stderr
	Partial bool   // P: a piece of a longer line, no newline follows it
	Text    []byte
}

// ParseLine parses one line without its newline, as strictly as the
// collector's containerd parser: the time must end in Z.
func ParseLine(b []byte) (Line, error) {
	var l Line
	ts, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return l, errors.New("no space after the time")
	}
	if len(ts) == 0 || ts[len(ts)-1] != 'Z' {
		return l, fmt.Errorf("time %q does not end in Z", ts)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return l, fmt.Errorf("time %q: %w", ts, err)
	}
	l.Time = t
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return l, errors.New("no space after the stream")
	}
	switch string(stream) {
	case "stdout", "stderr":
		l.Stream = string(stream)
	default:
		return l, fmt.Errorf("stream %q is neither stdout nor stderr", stream)
	}
	tag, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return l, errors.New("no space after the tag")
	}
	switch string(tag) {
	case "P":
		l.Partial = true
	case "F":
	default:
		return l, fmt.Errorf("tag %q is neither P nor F", tag)
	}
	l.Text = text
	return l, nil
}

// Read parses every line of r. Every line must end in a newline.
func Read(r io.Reader) ([]Line, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Line
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			if b[len(b)-1] != '\n' {
				return out, fmt.Errorf("line %d: no newline at the end of the file", n)
			}
			l, perr := ParseLine(b[:len(b)-1])
			if perr != nil {
				return out, fmt.Errorf("line %d: %w", n, perr)
			}
			out = append(out, l)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// Streams rebuilds what each stream carried, as the kubelet's reader does:
// the text of an F line plus a newline, the text of a P line as it is.
func Streams(lines []Line) map[string][]byte {
	out := map[string][]byte{}
	for _, l := range lines {
		b := append(out[l.Stream], l.Text...)
		if !l.Partial {
			b = append(b, '\n')
		}
		out[l.Stream] = b
	}
	return out
}
