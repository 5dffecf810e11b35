package logrotate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tickingClock returns a clock that advances by step on every call, so that
// tests rotate many times "within one second" or across seconds at will.
func tickingClock(start time.Time, step time.Duration) func() time.Time {
	now := start
	return func() time.Time {
		t := now
		now = now.Add(step)
		return t
	}
}

// filesInAgeOrder lists path's backups (oldest first) and then path itself.
func filesInAgeOrder(t *testing.T, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if base, _, ok := ParseBackupName(e.Name()); ok && base == filepath.Base(path) {
			out = append(out, filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
	sort.Strings(out)
	return append(out, path)
}

func records(n, width int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		line := fmt.Sprintf("record %06d ", i)
		line += strings.Repeat("x", max(0, width-len(line)-1)) + "\n"
		out[i] = []byte(line)
	}
	return out
}

func TestWriterRotatesOnRecordBoundaries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, Options{MaxSize: 1000, MaxBackups: 1000, Now: tickingClock(time.Unix(1e9, 0), 300*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	recs := records(500, 70)
	for i := 0; i < len(recs); {
		// Writes of 1 to 7 records at a time, like the wrapper's blocks.
		n := min(len(recs)-i, 1+i%7)
		chunk := bytes.Join(recs[i:i+n], nil)
		if got, err := w.Write(chunk); err != nil || got != len(chunk) {
			t.Fatalf("Write = %d, %v", got, err)
		}
		all.Write(chunk)
		i += n
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var joined bytes.Buffer
	files := filesInAgeOrder(t, path)
	if len(files) < 30 {
		t.Fatalf("only %d files for 35000 bytes at 1000 bytes per file", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1000 {
			t.Errorf("%s has %d bytes, above MaxSize", f, len(b))
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s does not end on a record boundary", f)
		}
		joined.Write(b)
	}
	if !bytes.Equal(joined.Bytes(), all.Bytes()) {
		t.Fatalf("the files in age order do not hold exactly what was written (%d vs %d bytes)", joined.Len(), all.Len())
	}
}

func TestWriterModesIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, Options{MaxSize: 10, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.Write([]byte("0123456789\n")); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()
	for _, d := range []string{filepath.Dir(dir), dir} {
		info, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v, want 0755", d, info.Mode().Perm())
		}
	}
	files := filesInAgeOrder(t, path)
	if len(files) != 3 {
		t.Fatalf("files = %v, want two backups and the current file", files)
	}
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", f, info.Mode().Perm())
		}
	}
}

func TestWriterKeepsMaxBackupsWithKubeletNames(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "2.log")
	// Every rotation within the same second: names must still be unique.
	w, err := Open(path, Options{MaxSize: 20, MaxBackups: 3, Now: func() time.Time { return time.Unix(1.7e9, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := fmt.Fprintf(w, "line %02d of twenty\n", i); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()
	files := filesInAgeOrder(t, path)
	if len(files) != 4 {
		t.Fatalf("files = %v, want 3 backups and the current file", files)
	}
	re := regexp.MustCompile(`^2\.log\.\d{8}-\d{6}$`)
	var contents []string
	for _, f := range files {
		if f != path && !re.MatchString(filepath.Base(f)) {
			t.Errorf("backup %s is not named <n>.log.<YYYYMMDD-HHMMSS>", f)
		}
		b, _ := os.ReadFile(f)
		contents = append(contents, string(b))
	}
	want := []string{"line 06 of twenty\n", "line 07 of twenty\n", "line 08 of twenty\n", "line 09 of twenty\n"}
	if strings.Join(contents, "|") != strings.Join(want, "|") {
		t.Fatalf("contents in age order = %q, want the newest four lines %q", contents, want)
	}
}

func TestWriterSplitsARecordLargerThanMaxSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, Options{MaxSize: 100, MaxBackups: 10, Now: tickingClock(time.Unix(1e9, 0), time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	big := append(bytes.Repeat([]byte("y"), 250), '\n')
	if _, err := w.Write([]byte("small\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(big); err != nil || n != len(big) {
		t.Fatalf("Write of a 251-byte record with MaxSize 100 = %d, %v; want it accepted", n, err)
	}
	_ = w.Close()
	var joined []byte
	for _, f := range filesInAgeOrder(t, path) {
		b, _ := os.ReadFile(f)
		if len(b) > 100 {
			t.Errorf("%s has %d bytes, above MaxSize", f, len(b))
		}
		joined = append(joined, b...)
	}
	if string(joined) != "small\n"+string(big) {
		t.Fatalf("joined files = %q", joined)
	}
}

func TestWriterBudgetDeletesEarlierRestartsFirst(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	// Logs of two earlier restarts, 300 bytes each with a backup.
	for i, name := range []string{"0.log.20260101-000000", "0.log", "1.log.20260101-010000", "1.log"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte("o"), 300), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	// Not a log: never deleted, not counted.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	restartLog := regexp.MustCompile(`^\d+\.log(\.\d{8}-\d{6})?$`)
	path := filepath.Join(dir, "2.log")
	w, err := Open(path, Options{
		MaxSize: 200, MaxBackups: 5, Budget: 1000,
		Siblings: restartLog.MatchString,
		Now:      tickingClock(time.Unix(1.8e9, 0), time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	// At open: 1200 bytes of siblings + 200 reserved > 1000: the two oldest go.
	assertNames(t, dir, "0.log", false)
	assertNames(t, dir, "0.log.20260101-000000", false)
	assertNames(t, dir, "1.log", true)
	line := []byte(strings.Repeat("n", 49) + "\n")
	for i := 0; i < 100; i++ {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
		if total := logBytes(t, dir, restartLog); total > 1000 {
			t.Fatalf("after %d writes the logs hold %d bytes, above the budget of 1000", i+1, total)
		}
	}
	_ = w.Close()
	assertNames(t, dir, "1.log", false)
	assertNames(t, dir, "notes.txt", true)
	files := filesInAgeOrder(t, path)
	if len(files) < 4 {
		t.Fatalf("files = %v: the budget should leave room for several backups", files)
	}
}

func assertNames(t *testing.T, dir, name string, present bool) {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, name))
	if present && err != nil {
		t.Errorf("%s should still be there: %v", name, err)
	}
	if !present && err == nil {
		t.Errorf("%s should have been deleted", name)
	}
}

func logBytes(t *testing.T, dir string, re *regexp.Regexp) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			info, err := e.Info()
			if err == nil {
				total += info.Size()
			}
		}
	}
	return total
}

func TestNormalizeCapsMaxSizeAtTheBudget(t *testing.T) {
	o, notes := Options{MaxSize: 10 * MiB, Budget: MiB}.Normalize()
	if o.MaxSize != MiB || len(notes) != 1 || !strings.Contains(notes[0], "above the budget") {
		t.Fatalf("Normalize = %+v, %q", o, notes)
	}
	o, notes = Options{}.Normalize()
	if o.MaxSize != DefaultMaxSize || len(notes) != 0 || o.Now == nil {
		t.Fatalf("Normalize of zero options = %+v, %q", o, notes)
	}
}
