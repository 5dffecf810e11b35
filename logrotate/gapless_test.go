package logrotate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestRotationNeverLeavesTheNameMissing: a reader that globs the folder and
// then opens the current file (as the collector's file_log does on every
// poll) must never find the name gone. A rename-then-create rotation leaves
// a moment without the file, and file_log logs an error for it ("Failed to
// open file"), which people read as lost logs.
func TestRotationNeverLeavesTheNameMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, Options{MaxSize: 64, MaxBackups: 100000, Now: tickingClock(time.Unix(1e9, 0), time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()

	var stop, missing, opens atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for stop.Load() == 0 {
			f, err := os.Open(path)
			switch {
			case err == nil:
				_ = f.Close()
				opens.Add(1)
			case errors.Is(err, fs.ErrNotExist):
				missing.Add(1)
			default:
				t.Errorf("open: %v", err)
			}
		}
	}()
	const rotations = 20000
	for i := 0; i < rotations; i++ {
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(1)
	<-done
	if n := missing.Load(); n > 0 {
		t.Errorf("the current file was missing %d times in %d opens during %d rotations", n, opens.Load()+n, rotations)
	}
	// Every rotation left exactly one backup and no temporary file.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	backups := 0
	for _, e := range entries {
		switch _, _, ok := ParseBackupName(e.Name()); {
		case ok:
			backups++
		case e.Name() != "0.log":
			t.Errorf("a stray file after rotations: %s", e.Name())
		}
	}
	if backups != rotations {
		t.Errorf("%d backups after %d rotations", backups, rotations)
	}
}
