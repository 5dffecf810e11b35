package tee

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// step is a chunk of one stream that arrives at a time after the start.
type step struct {
	at    time.Duration
	st    Stream
	chunk string
}

var leftOutNotice = regexp.MustCompile(`^fargate-otel-tee: (\d+) log lines \((\d+) bytes\) were left out of this file since (\S+): over the log rate limit \((.*)\); they still passed through`)

// limitRun frames the steps through the rate limit, on a clock that shows
// each step's time, and returns the file. max is where lines are split (0:
// MaxLineSize).
func limitRun(t *testing.T, format Format, r RateLimit, max int, steps []step) []byte {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	clk := newClock(func() time.Time { return now })
	var out bytes.Buffer
	s := newSink(format, &out, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, 0)
	lim := newLimited(s, clk, r)
	split := [2]*lineSplitter{newLineSplitter(Stdout, format), newLineSplitter(Stderr, format)}
	for _, ls := range split {
		if max > 0 {
			ls.max = max
		}
	}
	for _, st := range steps {
		now = start.Add(st.at)
		split[st.st].feed(clk.stamp(), []byte(st.chunk), lim)
		s.flush()
	}
	for _, ls := range split {
		ls.flush(clk.stamp(), lim)
	}
	lim.finish(clk.stamp())
	if !s.close(time.Minute) {
		t.Fatal("the sink did not close")
	}
	return out.Bytes()
}

// texts lists the file's records: the text, "P:" before pieces, and
// "left N/B" for a report of N lines and B bytes left out.
func texts(t *testing.T, file []byte) []string {
	t.Helper()
	lines, err := crifile.Read(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("%v\n%s", err, file)
	}
	var out []string
	for _, l := range lines {
		if m := leftOutNotice.FindSubmatch(l.Text); m != nil {
			if l.Stream != "stderr" {
				t.Errorf("the report is on %s, want stderr", l.Stream)
			}
			out = append(out, "left "+string(m[1])+"/"+string(m[2]))
			continue
		}
		p := ""
		if l.Partial {
			p = "P:"
		}
		out = append(out, p+string(l.Text))
	}
	return out
}

func numbered(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

func TestRateLimitKeepsTheBudgetAndReportsTheRest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit RateLimit
		max   int
		steps []step
		want  []string
	}{{
		name:  "a burst is cut at the burst, reported once the rate is back under",
		limit: RateLimit{Lines: 10, LinesBurst: 5},
		steps: []step{
			{0, Stdout, numbered("l", 0, 20)},
			{500 * time.Millisecond, Stdout, "a\n"},  // 5 tokens back: kept, but left-outs were 0.5 s ago
			{1600 * time.Millisecond, Stdout, "b\n"}, // a quiet second: the report, then the line
		},
		want: []string{"l0", "l1", "l2", "l3", "l4", "a", "left 15/55", "b"},
	}, {
		name:  "the burst defaults to one second of the rate",
		limit: RateLimit{Lines: 3},
		steps: []step{{0, Stdout, numbered("l", 0, 5)}},
		want:  []string{"l0", "l1", "l2", "left 2/6"},
	}, {
		name:  "lines left out at the end are reported at the end",
		limit: RateLimit{Lines: 1, LinesBurst: 2},
		steps: []step{{0, Stderr, "x\ny\nz\n"}},
		want:  []string{"x", "y", "left 1/2"},
	}, {
		name:  "bytes: a line is kept only if it fits",
		limit: RateLimit{Bytes: 10, BytesBurst: 10},
		steps: []step{
			{0, Stdout, "1234\n12345\n1\n"}, // 5 + 6 bytes: the second does not fit in the 5 left, the third does
			{2 * time.Second, Stdout, "z\n"},
		},
		want: []string{"1234", "1", "left 1/6", "z"},
	}, {
		name:  "a line longer than the byte burst goes through when the bucket is full",
		limit: RateLimit{Bytes: 4, BytesBurst: 4},
		max:   5,
		steps: []step{
			{0, Stdout, "abcdefghijkl\n"}, // 13 bytes, in pieces: kept whole, the bucket owes 9
			{time.Second, Stdout, "m\n"},  // 4 bytes back: still owing, left out
			{4 * time.Second, Stdout, "n\n"},
		},
		want: []string{"P:abcde", "P:fghij", "kl", "left 1/2", "n"},
	}, {
		name:  "a line in pieces is left out whole, the other stream is decided on its own",
		limit: RateLimit{Lines: 1, LinesBurst: 2},
		max:   4,
		steps: []step{
			{0, Stdout, "kept\n"},
			{0, Stdout, "abcdefg"}, // the first pieces of a long line, left out? no: one token left
			{0, Stderr, "err\n"},   // no token: left out
			{0, Stdout, "hij\n"},   // the end of the kept long line
			{0, Stdout, "0123456789\n"},
			{3 * time.Second, Stderr, "late\n"},
		},
		want: []string{"kept", "P:abcd", "P:efgh", "ij", "left 2/15", "late"},
	}, {
		name:  "both limits: the tighter one cuts",
		limit: RateLimit{Lines: 100, Bytes: 8, BytesBurst: 8},
		steps: []step{{0, Stdout, "aaa\nbbb\nccc\n"}, {5 * time.Second, Stdout, "d\n"}},
		want:  []string{"aaa", "bbb", "left 1/4", "d"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(t, limitRun(t, CRI, tc.limit, tc.max, tc.steps))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("file:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRateLimitRawFormatDecidesEachLine(t *testing.T) {
	file := limitRun(t, Raw, RateLimit{Lines: 2, LinesBurst: 2}, 0, []step{
		{0, Stdout, "a\nb\nc\nd\n"},
		{2 * time.Second, Stdout, "e\n"},
	})
	re := regexp.MustCompile(`fargate-otel-tee: 2 log lines \(4 bytes\) were left out`)
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "a" || lines[1] != "b" || !re.MatchString(lines[2]) || lines[3] != "e" {
		t.Fatalf("raw file %q", file)
	}
}

// A sustained overload is reported every reportEvery, and every line is
// either in the file or counted in a report.
func TestRateLimitSustainedOverload(t *testing.T) {
	var steps []step
	n := 0
	// 1000 lines/s for 25 s, in chunks of 10 every 10 ms, against 100 lines/s.
	for ms := 0; ms < 25000; ms += 10 {
		steps = append(steps, step{time.Duration(ms) * time.Millisecond, Stdout, numbered("s", n, n+10)})
		n += 10
	}
	got := texts(t, limitRun(t, CRI, RateLimit{Lines: 100, LinesBurst: 200}, 0, steps))
	kept, left, reports := 0, 0, 0
	for _, s := range got {
		if c, ok := strings.CutPrefix(s, "left "); ok {
			k, _ := strconv.Atoi(strings.Split(c, "/")[0])
			left += k
			reports++
			continue
		}
		kept++
	}
	if kept+left != n {
		t.Fatalf("%d lines kept + %d reported left out = %d, want %d", kept, left, kept+left, n)
	}
	// The budget: the burst plus 100 lines per second.
	if max := 200 + 100*25 + 1; kept > max || kept < max-10 {
		t.Errorf("%d lines kept in 25 s, want about %d", kept, max)
	}
	if reports != 3 { // after 10 s, after 20 s, at the end
		t.Errorf("%d reports, want 3 (every 10 s of the overload and one at the end)", reports)
	}
}

func TestRateLimitCheck(t *testing.T) {
	for _, tc := range []struct {
		r    RateLimit
		want string
	}{
		{RateLimit{}, ""},
		{RateLimit{Lines: 5, LinesBurst: 1, Bytes: 1, BytesBurst: 2}, ""},
		{RateLimit{LinesBurst: 5}, "set --rate-limit-lines"},
		{RateLimit{BytesBurst: 5}, "set --rate-limit-bytes"},
		{RateLimit{Lines: -1}, "negative"},
	} {
		err := tc.r.Check()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.want)
		}
	}
	if got := (RateLimit{Lines: 1000, Bytes: 1 << 20, BytesBurst: 4 << 20}).String(); got != "1000 lines/s, burst 1000; 1Mi/s, burst 4Mi" {
		t.Errorf("String() = %q", got)
	}
}
