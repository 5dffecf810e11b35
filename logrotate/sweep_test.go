package logrotate

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Repeat([]byte("a"), size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tree(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out[rel] = info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]int64) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+strings.TrimSpace(FormatSize(v)))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestSweepCopyTruncateKeepsTheAppsFileOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app", "app.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// The app holds its file open with O_APPEND, as it should.
	app, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Close() }()
	first := bytes.Repeat([]byte("first\n"), 200)
	if _, err := app.Write(first); err != nil {
		t.Fatal(err)
	}
	r := Sweep(SweepOptions{Dir: dir, MaxSize: 1000, MaxBackups: 2, Now: func() time.Time { return time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC) }})
	if len(r.Errors) != 0 || len(r.Rotated) != 1 {
		t.Fatalf("sweep: %+v", r)
	}
	backup := path + ".20260506-070809"
	got, err := os.ReadFile(backup)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("backup %s: %d bytes, %v; want the %d bytes written so far", backup, len(got), err, len(first))
	}
	if info, _ := os.Stat(backup); info.Mode().Perm() != 0o644 {
		t.Errorf("backup mode %v, want 0644 so that the collector can read it", info.Mode().Perm())
	}
	if _, err := app.Write([]byte("second\n")); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if string(got) != "second\n" {
		t.Fatalf("after copytruncate the app's next line landed as %q, want it alone at the start", got)
	}
}

func TestSweepRenameAndMaxBackups(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.log")
	clock := tickingClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
	for i := 0; i < 4; i++ {
		writeFile(t, path, 2000)
		r := Sweep(SweepOptions{Dir: dir, MaxSize: 1000, MaxBackups: 2, Mode: Rename, Now: clock})
		if len(r.Errors) != 0 || len(r.Rotated) != 1 {
			t.Fatalf("sweep %d: %+v", i, r)
		}
	}
	want := "worker.log.20260101-000002=2000 worker.log.20260101-000003=2000"
	if got := keys(tree(t, dir)); got != want {
		t.Fatalf("files = %s\nwant %s", got, want)
	}
}

func TestSweepBudgetDeletesOldestBackupsThenEmptiesTheLargestLog(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.log"), 300)
	writeFile(t, filepath.Join(dir, "a.log.20260101-000000"), 400)
	writeFile(t, filepath.Join(dir, "sub", "b.log"), 500)
	writeFile(t, filepath.Join(dir, "sub", "b.log.20250101-000000"), 400)
	writeFile(t, filepath.Join(dir, "data.bin"), 100) // not a log: counted, never touched
	r := Sweep(SweepOptions{Dir: dir, MaxSize: 10000, MaxBackups: 5, Budget: 1000})
	if len(r.Errors) != 0 {
		t.Fatal(r.Errors)
	}
	// 1700 bytes: both backups go (b's is older), then 900 <= 1000.
	if got, want := keys(tree(t, dir)), "a.log=300 data.bin=100 sub/b.log=500"; got != want {
		t.Fatalf("files = %s\nwant %s", got, want)
	}
	if r.Used != 900 || len(r.Deleted) != 2 || len(r.Truncated) != 0 {
		t.Fatalf("report %+v", r)
	}
	// Backups alone cannot help now: the largest log is emptied.
	r = Sweep(SweepOptions{Dir: dir, MaxSize: 10000, Budget: 500})
	if got, want := keys(tree(t, dir)), "a.log=300 data.bin=100 sub/b.log=0"; got != want {
		t.Fatalf("files = %s\nwant %s", got, want)
	}
	if r.Used != 400 || len(r.Truncated) != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestSweepRejectsABadPattern(t *testing.T) {
	r := Sweep(SweepOptions{Dir: t.TempDir(), Pattern: "["})
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Error(), "pattern") {
		t.Fatalf("errors = %v", r.Errors)
	}
}
