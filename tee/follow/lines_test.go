package follow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

func ts(sec, nsec int) int64 { return time.Date(2026, 3, 4, 5, 6, sec, nsec, time.UTC).UnixNano() }

func stampOf(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

// readPieces reads an answer with pieces of at most max bytes.
func readPieces(t *testing.T, answer string, max int) ([]piece, error) {
	t.Helper()
	r := newLineReader(strings.NewReader(answer), nil)
	r.max = max
	var out []piece
	for {
		p, err := r.next()
		if err != nil {
			return out, err
		}
		p.text = append([]byte(nil), p.text...)
		out = append(out, p)
	}
}

func TestLineReaderCutsPieces(t *testing.T) {
	t1 := stampOf(ts(1, 5))
	for _, tc := range []struct {
		name, answer string
		want         string // start pieces as "@sec.nsec", then text, "|" for the end of a line
	}{
		{"lines", t1 + " hello\n" + t1 + " \n", "@ hello| @ |"},
		{"exactly max is one piece", t1 + " 12345\n", "@ 12345|"},
		{"longer lines in pieces", t1 + " 1234567\n", "@ 12345 67|"},
		{"a multiple of max", t1 + " 1234567890\n", "@ 12345 67890|"},
		{"no newline at the end", t1 + " abc", "@ abc"},
		{"a line without time", "no time here\n", "@none no ti me he re|"},
		{"a time that is not one", "2026-99-99T00:00:00Z x\n", "@none 2026- 99-99 T00:0 0:00Z  x|"},
		{"an offset is a time too", "2026-03-04T07:06:01.000000005+02:00 x\n", "@ x|"},
		{"trailing zeros trimmed (older kubelets)", "2026-03-04T05:06:01.000000005Z x\n", "@ x|"},
		{"carriage returns are text", t1 + " a\r\n", "@ a\r|"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pieces, err := readPieces(t, tc.answer, 5)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("error %v, want EOF", err)
			}
			var got []string
			for _, p := range pieces {
				s := ""
				if p.start {
					s = "@"
					if p.ts == 0 {
						s += "none"
					} else if p.ts != ts(1, 5) {
						s += fmt.Sprint(p.ts)
					}
					s += " "
				}
				s += string(p.text)
				if p.end {
					s += "|"
				}
				got = append(got, s)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("pieces %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

// A broken answer is an error, not an end.
func TestLineReaderBrokenAnswer(t *testing.T) {
	r := newLineReader(io.MultiReader(strings.NewReader(stampOf(ts(1, 0))+" abc\n"+stampOf(ts(2, 0))+" de"), errReader{}), nil)
	var err error
	for err == nil {
		_, err = r.next()
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v, want the broken answer's", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// copy runs the copier over an answer and returns the records and the
// position after it.
func copyAnswer(t *testing.T, pos position, resuming bool, answer string, max int) (string, position, []string) {
	t.Helper()
	pieces, err := readPieces(t, answer, max)
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	var out records
	c := newCopier(pos, resuming, &out)
	var gaps []string
	c.gap = func(at, next int64, missing int) { gaps = append(gaps, fmt.Sprintf("%d missing", missing)) }
	for _, p := range pieces {
		c.feed(p)
	}
	lines, err := crifile.Read(bytes.NewReader(out.b))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.b)
	}
	var got []string
	for _, l := range lines {
		if l.Stream != "stdout" {
			t.Errorf("a kubelet line written as %s", l.Stream)
		}
		tag := "F"
		if l.Partial {
			tag = "P"
		}
		got = append(got, fmt.Sprintf("%d%s:%s", l.Time.Second(), tag, l.Text))
	}
	return strings.Join(got, " "), c.pos, gaps
}

func TestCopierDropsWhatTheFileHas(t *testing.T) {
	line := func(sec int, text string) string { return stampOf(ts(sec, 0)) + " " + text + "\n" }
	for _, tc := range []struct {
		name     string
		pos      position
		answer   string
		want     string
		wantPos  position
		wantGaps int
	}{{
		name:    "from the start",
		answer:  line(1, "a") + line(1, "b") + line(2, "c"),
		want:    "1F:a 1F:b 2F:c",
		wantPos: position{at: ts(2, 0), count: 1},
	}, {
		name:    "resumed: the lines at the last time the file has are dropped, the others at that time kept",
		pos:     position{at: ts(1, 0), count: 2},
		answer:  line(1, "a") + line(1, "b") + line(1, "b2") + line(2, "c"),
		want:    "1F:b2 2F:c",
		wantPos: position{at: ts(2, 0), count: 1},
	}, {
		name:    "resumed: lines before sinceTime are dropped (a proxy that cut its precision)",
		pos:     position{at: ts(1, 500), count: 1},
		answer:  line(1, "old") + stampOf(ts(1, 500)) + " a\n" + line(2, "c"),
		want:    "2F:c",
		wantPos: position{at: ts(2, 0), count: 1},
	}, {
		name:    "resumed: the rest of a line the file has the start of",
		pos:     position{at: ts(1, 0), count: 1, open: true, part: 7},
		answer:  line(1, "a") + line(1, "1234567890ab") + line(2, "c"),
		want:    "1P:890 1F:ab 2F:c",
		wantPos: position{at: ts(2, 0), count: 1},
	}, {
		name:    "resumed: an open line that ends exactly where the file has it",
		pos:     position{at: ts(1, 0), open: true, part: 5},
		answer:  line(1, "12345"),
		want:    "1F:",
		wantPos: position{at: ts(1, 0), count: 1},
	}, {
		name:     "resumed: the kubelet lost the lines the file ends with (rotated): said, and the open line ended",
		pos:      position{at: ts(1, 0), count: 1, open: true, part: 3},
		answer:   line(3, "x"),
		want:     "1F: 3F:x",
		wantPos:  position{at: ts(3, 0), count: 1},
		wantGaps: 1,
	}, {
		name:    "resumed: a first line without its time is the rest of a line from before",
		pos:     position{at: ts(1, 0), count: 1},
		answer:  "rest of an old line\n" + line(1, "a") + line(2, "b"),
		want:    "2F:b",
		wantPos: position{at: ts(2, 0), count: 1},
	}, {
		name:    "a long line in pieces, and the answer ends in the middle of one",
		answer:  line(1, "abcdefghijkl") + stampOf(ts(2, 0)) + " mnopqrs",
		want:    "1P:abcde 1P:fghij 1F:kl 2P:mnopq 2P:rs",
		wantPos: position{at: ts(2, 0), open: true, part: 7},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, pos, gaps := copyAnswer(t, tc.pos, tc.pos.at != 0, tc.answer, 5)
			if got != tc.want {
				t.Errorf("records %q\n     want %q", got, tc.want)
			}
			if pos != tc.wantPos {
				t.Errorf("position %+v, want %+v", pos, tc.wantPos)
			}
			if len(gaps) != tc.wantGaps {
				t.Errorf("gaps %v, want %d", gaps, tc.wantGaps)
			}
		})
	}
}
