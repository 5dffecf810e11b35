package logrotate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of the given size on a new folder (root only).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test mounts a tmpfs and needs root; CI runs as root")
		}
		t.Skip("needs root to mount a tmpfs (CI runs it)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestWriterLeavesNoTornRecordWhenTheDiskIsFull(t *testing.T) {
	dir := mountTmpfs(t, "64k")
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, Options{MaxSize: MiB})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	rec := bytes.Repeat([]byte("z"), 99)
	rec = append(rec, '\n')
	block := bytes.Repeat(rec, 7) // 700 bytes: full pages are crossed mid-block
	var kept bytes.Buffer
	var failed error
	for i := 0; i < 1000 && failed == nil; i++ {
		n, err := w.Write(block)
		if n%len(rec) != 0 {
			t.Fatalf("Write returned %d: not on a record boundary", n)
		}
		kept.Write(block[:n])
		failed = err
	}
	if !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("writing 700 KB into a 64 KB tmpfs: got %v, want ENOSPC", failed)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, kept.Bytes()) {
		t.Fatalf("the file holds %d bytes, the writes reported %d: a torn record was left behind", len(got), kept.Len())
	}
	// Free space: writing works again and continues on a record boundary.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(block); err != nil || n != len(block) {
		t.Fatalf("after freeing space: Write = %d, %v", n, err)
	}
	got, _ = os.ReadFile(path)
	if !bytes.Equal(got, block) {
		t.Fatalf("after freeing space the file holds %d bytes, want the %d just written", len(got), len(block))
	}
}
