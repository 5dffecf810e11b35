package tee

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// recorded is a record as the splitter emitted it.
type recorded struct {
	stream  Stream
	partial bool
	text    string
}

type recordList struct{ recs []recorded }

func (r *recordList) record(_ []byte, s Stream, partial bool, text []byte) {
	r.recs = append(r.recs, recorded{s, partial, string(text)})
}
func (r *recordList) lines(Stream, []byte) { panic("raw runs in a CRI test") }
func (r *recordList) full(st Stream, header, line []byte) {
	if bytes.Contains(header, []byte(" stderr ")) != (st == Stderr) {
		panic("the header and the stream disagree")
	}
	r.recs = append(r.recs, recorded{st, false, string(line[:len(line)-1])})
}

func TestLineSplitterMatchesContainerd(t *testing.T) {
	f := func(s string) recorded { return recorded{Stdout, false, s} }
	p := func(s string) recorded { return recorded{Stdout, true, s} }
	for _, tc := range []struct {
		name   string
		chunks []string
		want   []recorded
	}{
		{"one line", []string{"hello\n"}, []recorded{f("hello")}},
		{"empty lines", []string{"\n\n"}, []recorded{f(""), f("")}},
		{"a line in pieces", []string{"he", "l", "lo\nwor", "ld\n"}, []recorded{f("hello"), f("world")}},
		{"no newline at the end", []string{"a\nbc"}, []recorded{f("a"), p("bc")}},
		{"carriage return before newline dropped", []string{"a\r\n"}, []recorded{f("a")}},
		{"only the last carriage return dropped", []string{"a\r\r\n"}, []recorded{f("a\r")}},
		{"carriage return alone", []string{"\r\n"}, []recorded{f("")}},
		{"carriage return and newline in two chunks", []string{"ab\r", "\n"}, []recorded{f("ab")}},
		{"carriage return inside a line kept", []string{"a\rb\n"}, []recorded{f("a\rb")}},
		{"carriage return at the end of the stream kept", []string{"ab\r"}, []recorded{p("ab\r")}},
		{"exactly max before carriage return", []string{"12345\r\n"}, []recorded{f("12345")}},
		{"exactly max, carriage return then newline later", []string{"12345\r", "\n"}, []recorded{f("12345")}},
		{"exactly max held, carriage return then newline later", []string{"123", "45\r", "\n"}, []recorded{f("12345")}},
		{"carriage return past max followed by text", []string{"12345\r", "x\n"}, []recorded{p("12345"), f("\rx")}},
		{"carriage return past max at the end of the stream", []string{"12345\r"}, []recorded{p("12345"), p("\r")}},
		{"two carriage returns past max", []string{"12345\r", "\r\n"}, []recorded{p("12345"), f("\r")}},
		{"long line ending in carriage return", []string{"1234567890\r\n"}, []recorded{p("12345"), f("67890")}},
		{"exactly max", []string{"12345\n"}, []recorded{f("12345")}},
		{"exactly max, newline later", []string{"12345", "\n"}, []recorded{f("12345")}},
		{"max plus one", []string{"123456\n"}, []recorded{p("12345"), f("6")}},
		{"two max", []string{"1234567890\n"}, []recorded{p("12345"), f("67890")}},
		{"long line over chunks", []string{"123", "4567", "89012345", "6\n"}, []recorded{p("12345"), p("67890"), p("12345"), f("6")}},
		{"long held line ends without newline", []string{"1234567"}, []recorded{p("12345"), p("67")}},
		{"pending then long", []string{"12", "3456789012\n"}, []recorded{p("12345"), p("67890"), f("12")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := newLineSplitter(Stdout, CRI)
			ls.max = 5
			var got recordList
			for _, c := range tc.chunks {
				ls.feed(nil, []byte(c), &got)
			}
			ls.flush(nil, &got)
			if fmt.Sprint(got.recs) != fmt.Sprint(tc.want) {
				t.Errorf("got %v\nwant %v", got.recs, tc.want)
			}
		})
	}
}

// framedFile runs the splitter and the sink on chunks of two streams and
// returns what reached the file.
func framedFile(t testing.TB, format Format, max int, chunks []testChunk) []byte {
	var file bytes.Buffer
	s := newSink(format, &file, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, 0)
	clk := newClock(nil)
	split := map[Stream]*lineSplitter{Stdout: newLineSplitter(Stdout, format), Stderr: newLineSplitter(Stderr, format)}
	for _, ls := range split {
		ls.max = max
	}
	for _, c := range chunks {
		split[c.stream].feed(clk.stamp(), c.data, s)
		s.flush()
	}
	for _, st := range []Stream{Stdout, Stderr} {
		split[st].flush(clk.stamp(), s)
	}
	if !s.close(10 * time.Second) {
		t.Fatal("the sink did not finish")
	}
	if lost := s.linesLost.Load(); lost != 0 {
		t.Fatalf("%d lines lost writing to memory", lost)
	}
	return file.Bytes()
}

type testChunk struct {
	stream Stream
	data   []byte
}

// cutChunks splits both streams into chunks of varying size, interleaved.
func cutChunks(stdout, stderr []byte, seed uint32) []testChunk {
	var out []testChunk
	next := func() int {
		seed = seed*1664525 + 1013904223
		return int(seed>>24) + 1
	}
	for len(stdout) > 0 || len(stderr) > 0 {
		for _, s := range []struct {
			st Stream
			b  *[]byte
		}{{Stdout, &stdout}, {Stderr, &stderr}} {
			n := min(next(), len(*s.b))
			if n > 0 {
				out = append(out, testChunk{s.st, (*s.b)[:n]})
				*s.b = (*s.b)[n:]
			}
		}
	}
	return out
}

// containerdRecords is what containerd's CRI logger writes for one stream
// (internal/cri/io/logger.go): lines end at '\n', which is not written, nor
// is a '\r' right before it (bufio ReadLine); a line is cut into pieces of
// max bytes, all P but the last, which is F; a last line without '\n' is
// cut the same way, all P.
func containerdRecords(s Stream, data []byte, max int) []recorded {
	var out []recorded
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte{'\n'})
		data = rest
		if complete {
			line = bytes.TrimSuffix(line, []byte{'\r'})
		}
		for len(line) > max {
			out = append(out, recorded{s, true, string(line[:max])})
			line = line[max:]
		}
		if complete || len(line) > 0 {
			out = append(out, recorded{s, !complete, string(line)})
		}
	}
	return out
}

// containerdStream is what the kubelet's reader gives back from containerd's
// file for a stream: the stream without the '\r' of each "\r\n".
func containerdStream(data []byte) []byte {
	return bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
}

func checkRoundTrip(t testing.TB, stdout, stderr []byte, seed uint32, max int) {
	file := framedFile(t, CRI, max, cutChunks(stdout, stderr, seed))
	lines, err := crifile.Read(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("the file does not parse: %v\n%q", err, file)
	}
	for i, l := range lines {
		if len(l.Text) > max {
			t.Fatalf("line %d has %d bytes of text, above %d", i, len(l.Text), max)
		}
		if i > 0 && l.Time.Before(lines[i-1].Time) {
			t.Fatalf("line %d goes back in time", i)
		}
	}
	// The records of each stream are exactly containerd's.
	for _, st := range []Stream{Stdout, Stderr} {
		data := map[Stream][]byte{Stdout: stdout, Stderr: stderr}[st]
		var got []recorded
		for _, l := range lines {
			if l.Stream == st.String() {
				got = append(got, recorded{st, l.Partial, string(l.Text)})
			}
		}
		if want := containerdRecords(st, data, max); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: records differ from containerd's:\n got %+v\nwant %+v", st, got, want)
		}
	}
	got := crifile.Streams(lines)
	if want := containerdStream(stdout); !bytes.Equal(got["stdout"], want) {
		t.Fatalf("stdout does not round-trip:\n got %q\nwant %q", got["stdout"], want)
	}
	if want := containerdStream(stderr); !bytes.Equal(got["stderr"], want) {
		t.Fatalf("stderr does not round-trip:\n got %q\nwant %q", got["stderr"], want)
	}
}

func TestCRIRoundTripsWithTheRealLineSize(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789abcdef"), 3*MaxLineSize/16+5) // 3 pieces and a bit
	stdout := append(append([]byte("short\n"), long...), "\nlast without newline"...)
	stderr := append(append([]byte{0, 1, 2, 0xff, '\r', '\n'}, bytes.Repeat([]byte("x"), MaxLineSize)...), '\n')
	for seed := uint32(0); seed < 5; seed++ {
		checkRoundTrip(t, stdout, stderr, seed*7919, MaxLineSize)
	}
}

func TestRawFileHoldsTheBytesOfOneStream(t *testing.T) {
	data := []byte("a\nbb\n\nccc" + strings.Repeat("d", 40) + "\nend")
	for seed := uint32(0); seed < 20; seed++ {
		got := framedFile(t, Raw, 16, cutChunks(data, nil, seed))
		if !bytes.Equal(got, data) {
			t.Fatalf("seed %d: raw file %q, want %q", seed, got, data)
		}
	}
}

func FuzzCRIRoundTrip(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), []byte("err\n"), uint32(1), uint8(5))
	f.Add([]byte("no newline"), []byte(""), uint32(2), uint8(3))
	f.Add([]byte("\r\n\n\x00\xff"), []byte("123456789\n1234"), uint32(3), uint8(4))
	f.Add([]byte("1234\r\n12345\r\r\n\r"), []byte("abcd\rx\r"), uint32(5), uint8(3))
	f.Add(bytes.Repeat([]byte("y"), 100), bytes.Repeat([]byte("z\n"), 30), uint32(4), uint8(7))
	f.Fuzz(func(t *testing.T, stdout, stderr []byte, seed uint32, max uint8) {
		checkRoundTrip(t, stdout, stderr, seed, int(max%32)+1)
	})
}
