package follow

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

type kline struct {
	ts   int64
	text string
}

func answerOf(lines []kline, since int64, lastNoNewline bool) string {
	var b strings.Builder
	for i, l := range lines {
		if l.ts < since {
			continue
		}
		b.WriteString(stampOf(l.ts) + " " + l.text)
		if i < len(lines)-1 || !lastNoNewline {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// splitRecords cuts a block of records into files of about size bytes at
// record boundaries, and sprinkles notices (stderr) in, as rotation and the
// follower's own lines do. Returned newest first.
func splitRecords(t *testing.T, dir string, b []byte, size int, rnd *rand.Rand) []string {
	t.Helper()
	var files []string
	var cur []byte
	write := func() {
		p := filepath.Join(dir, fmt.Sprintf("0.log.%08d", len(files)))
		if err := os.WriteFile(p, cur, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append([]string{p}, files...)
		cur = nil
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		cur = append(cur, b[:i]...)
		b = b[i:]
		if rnd.IntN(7) == 0 {
			var n records
			n.notice(time.Unix(0, ts(59, 0)), "a notice of the follower")
			cur = append(cur, n.b...)
		}
		if len(cur) >= size {
			write()
		}
	}
	write()
	return files
}

// The property the follower's resume rests on: wherever an answer was cut
// off, and however the records were spread over rotated files, reading the
// files back gives the copier's position; and copying the answer again from
// that position's time gives every line exactly once.
func TestResumeIsExactlyOnceWhereverTheStreamBroke(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		// Lines with times that repeat (containerd stamps can), some long.
		var lines []kline
		sec := 0
		for i := 0; i < 1+rnd.IntN(30); i++ {
			if rnd.IntN(3) == 0 {
				sec++
			}
			text := fmt.Sprintf("l%d-", i) + strings.Repeat("x", rnd.IntN(3)*rnd.IntN(9))
			lines = append(lines, kline{ts(sec, 0), text})
		}
		noNewline := rnd.IntN(4) == 0
		full := answerOf(lines, 0, noNewline)
		cut := rnd.IntN(len(full) + 1)
		dir := t.TempDir()

		// First session: the answer breaks off at cut.
		pieces, _ := readPieces(t, full[:cut], 5)
		var out records
		c := newCopier(position{}, false, &out)
		for _, p := range pieces {
			c.feed(p)
		}
		first := out.b
		files := splitRecords(t, dir, first, 1+rnd.IntN(80), rnd)
		got, err := scanPosition(files)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.pos {
			t.Fatalf("round %d: the files say %+v, the copier wrote up to %+v\nfile:\n%s", round, got, c.pos, first)
		}

		// Second session: from sinceTime = the position's time, to the end.
		var out2 records
		c2 := newCopier(got, got.at != 0, &out2)
		c2.gap = func(int64, int64, int) { t.Fatalf("round %d: a gap reported where there is none", round) }
		pieces, _ = readPieces(t, answerOf(lines, got.at, noNewline), 5)
		for _, p := range pieces {
			c2.feed(p)
		}
		all, err := crifile.Read(bytes.NewReader(append(append([]byte(nil), first...), out2.b...)))
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for i, l := range lines {
			want.WriteString(l.text)
			if i < len(lines)-1 || !noNewline {
				want.WriteByte('\n')
			}
		}
		if s := string(crifile.Streams(all)["stdout"]); s != want.String() {
			t.Fatalf("round %d (cut at %d of %q): the two sessions wrote\n%q\nwant\n%q", round, cut, full, s, want.String())
		}
	}
}

func TestRepairTailCutsATornRecord(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"a\nb\n", "a\nb\n"},
		{"a\nb\nc", "a\nb\n"},
		{"abc", ""},
		{"", ""},
		{strings.Repeat("long line\n", 20000) + "torn", strings.Repeat("long line\n", 20000)},
	} {
		p := filepath.Join(dir, "0.log")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		cut, err := repairTail(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != tc.want || cut != int64(len(tc.content)-len(tc.want)) {
			t.Errorf("%.20q: %d bytes cut, %d left, want %d", tc.content, cut, len(b), len(tc.want))
		}
	}
	if cut, err := repairTail(filepath.Join(dir, "none.log")); cut != 0 || err != nil {
		t.Errorf("a missing file: %d, %v", cut, err)
	}
}

func TestEachLineBackwardAcrossBlocks(t *testing.T) {
	var lines []string
	var b strings.Builder
	for i := 0; i < 5000; i++ {
		l := fmt.Sprintf("%d %s", i, strings.Repeat("y", i%97))
		lines = append(lines, l)
		b.WriteString(l + "\n")
	}
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	info, _ := f.Stat()
	i := len(lines)
	err = eachLineBackward(f, info.Size(), true, func(line []byte, off int64) bool {
		i--
		if string(line) != lines[i] {
			t.Fatalf("line %d: %q, want %q", i, line, lines[i])
		}
		return true
	})
	if err != nil || i != 0 {
		t.Fatalf("%v, %d lines not seen", err, i)
	}
}

func TestRunFilesNewestFirst(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"1.log", "1.log.20260101-000002", "1.log.20260101-000001", "0.log", "2.log.20250101-000000", "x.log"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := runFiles(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if got := strings.Join(names, " "); got != "1.log 1.log.20260101-000002 1.log.20260101-000001" {
		t.Errorf("files %s", got)
	}
	if n, _ := newestRestart(dir); n != 2 {
		t.Errorf("newest restart %d, want 2 (a backup counts)", n)
	}
}
