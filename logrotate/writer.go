package logrotate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Modes of what this package creates. They are set with chmod after creation,
// so the umask of the process does not matter: the collector that reads the
// files runs as another user.
const (
	FileMode os.FileMode = 0o644
	DirMode  os.FileMode = 0o755
)

// Defaults follow the kubelet (containerLogMaxSize 10Mi, containerLogMaxFiles 5).
const (
	DefaultMaxSize    = 10 * MiB
	DefaultMaxBackups = 4
)

// Options of a Writer.
type Options struct {
	// MaxSize is the size at which the file is rotated. A write that would
	// take the file past it goes to a new file, split between records.
	MaxSize int64
	// MaxBackups is how many rotated files of this name are kept.
	MaxBackups int
	// Budget bounds the bytes of the current file, its backups and the
	// Siblings: the oldest are deleted so that these files plus a full
	// current file fit. 0 means no budget beyond MaxBackups.
	Budget int64
	// Siblings selects other files of the folder that count against the
	// budget and are deleted before this file's own backups, oldest
	// (by modification time) first: the wrapper passes the logs of earlier
	// container restarts.
	Siblings func(name string) bool
	// Now is the clock used to name backups; time.Now when nil.
	Now func() time.Time
}

// Normalize fills defaults and resolves contradictions, and says what it changed.
func (o Options) Normalize() (Options, []string) {
	var notes []string
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxBackups < 0 {
		o.MaxBackups = 0
	}
	if o.Budget < 0 {
		o.Budget = 0
	}
	if o.Budget > 0 && o.MaxSize > o.Budget {
		notes = append(notes, fmt.Sprintf("max size %s is above the budget %s: rotating at %s", FormatSize(o.MaxSize), FormatSize(o.Budget), FormatSize(o.Budget)))
		o.MaxSize = o.Budget
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, notes
}

// Writer appends records to a file and rotates it by size. Records are the
// bytes up to and including a '\n'; a Write may hold many. A record never
// straddles two files unless it is larger than MaxSize on its own, in which
// case it is cut at MaxSize so that the budget still holds.
//
// A failed write leaves no torn record behind: the file is truncated back to
// where the write began, and the returned count ends on a record boundary, so
// the caller knows exactly which records are lost.
type Writer struct {
	mu     sync.Mutex
	path   string
	dir    string
	name   string
	opts   Options
	f      *os.File
	size   int64
	broken bool // the file may end in a torn record: continue in a new file

	// The folder is read once, at Open; then the writer keeps track of
	// what it rotates and deletes, so that a rotation costs a rename and
	// a create, not a listing of the folder.
	backups  []backup // this file's, oldest first
	siblings []backup // other files counted in the budget, oldest first (at: modification time)
}

// Open opens (or creates) path for appending, creating missing folders, and
// applies the backup limits and the budget once.
func Open(path string, opts Options) (*Writer, error) {
	opts, _ = opts.Normalize()
	w := &Writer{
		path: path,
		dir:  filepath.Dir(path),
		name: filepath.Base(path),
		opts: opts,
	}
	// A temporary file left by a rotation cut short (the process killed
	// between its create and its rename) is empty: nothing to keep.
	_ = os.Remove(w.tempPath())
	if err := w.openCurrent(); err != nil {
		return nil, err
	}
	w.scan()
	w.enforce()
	return w, nil
}

// scan lists this file's backups and the siblings.
func (w *Writer) scan() {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	w.backups = listBackups(entries, w.name)
	w.siblings = nil
	for _, e := range entries {
		name := e.Name()
		if name == w.name || !e.Type().IsRegular() || w.opts.Siblings == nil || !w.opts.Siblings(name) {
			continue
		}
		if base, _, ok := ParseBackupName(name); ok && base == w.name {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		w.siblings = append(w.siblings, backup{file: name, at: info.ModTime(), size: info.Size()})
	}
	sort.Slice(w.siblings, func(i, j int) bool {
		if !w.siblings[i].at.Equal(w.siblings[j].at) {
			return w.siblings[i].at.Before(w.siblings[j].at)
		}
		return w.siblings[i].file < w.siblings[j].file
	})
}

// Path is the file being written.
func (w *Writer) Path() string { return w.path }

// Options are the normalized options in use.
func (w *Writer) Options() Options { return w.opts }

func (w *Writer) openCurrent() error {
	if err := MkdirAll(w.dir, DirMode); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, FileMode)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	// Best effort: a file created by another user keeps its mode.
	_ = f.Chmod(FileMode)
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	w.f = f
	w.size = info.Size()
	return nil
}

// Write appends p, rotating between records when the file would pass MaxSize.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	written := 0
	for len(p) > 0 {
		if w.broken {
			if err := w.rotate(); err != nil {
				return written, err
			}
		}
		if w.f == nil {
			if err := w.openCurrent(); err != nil {
				return written, err
			}
		}
		chunk := p
		if room := w.opts.MaxSize - w.size; int64(len(p)) > room {
			cut := -1
			if room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n')
			}
			switch {
			case cut >= 0:
				chunk = p[:cut+1]
			case w.size > 0:
				if err := w.rotate(); err != nil {
					return written, err
				}
				continue
			default:
				// One record larger than MaxSize in an empty file.
				chunk = p[:room]
			}
		}
		n, err := w.f.Write(chunk)
		if err != nil {
			if n > 0 {
				if terr := w.f.Truncate(w.size); terr != nil {
					w.broken = true
				}
			}
			return written, fmt.Errorf("write %s: %w", w.path, err)
		}
		w.size += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// Rotate starts a new file now, whatever the size of the current one.
func (w *Writer) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rotate()
}

func (w *Writer) rotate() error {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	var newest []time.Time
	if len(w.backups) > 0 {
		newest = append(newest, w.backups[len(w.backups)-1].at)
	}
	at := nextBackupTime(w.dir, w.name, w.opts.Now(), newest)
	name := BackupName(w.name, at)
	switch err := w.moveToBackup(filepath.Join(w.dir, name)); {
	case err == nil:
		w.backups = append(w.backups, backup{file: name, at: at, size: w.size})
	case !errors.Is(err, os.ErrNotExist): // a vanished file needs no backup
		return fmt.Errorf("rotate %s: %w", w.path, err)
	}
	w.broken = false
	if err := w.openCurrent(); err != nil {
		return err
	}
	w.enforce()
	return nil
}

// moveToBackup gives the current file its backup name and puts an empty
// file in its place without a moment in which the name is missing: the
// backup is a hard link, and the empty file, created under a temporary
// name, replaces the current name in one rename. A reader that lists the
// folder and then opens the current file (file_log on every poll) would
// otherwise find it gone now and then and log "Failed to open file". Where
// the file system has no hard links, it falls back to rename then create.
func (w *Writer) moveToBackup(backupPath string) error {
	if err := os.Link(w.path, backupPath); err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrExist) {
			return err
		}
		return os.Rename(w.path, backupPath)
	}
	tmp := w.tempPath()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, FileMode)
	if err == nil {
		_ = f.Chmod(FileMode)
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err != nil {
		// The backup holds the content; drop the current name so that the
		// next open starts an empty file, as a rename would have.
		_ = os.Remove(tmp)
		if rerr := os.Remove(w.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			_ = os.Remove(backupPath)
			return fmt.Errorf("replace %s after linking its backup: %w", w.path, err)
		}
	}
	return nil
}

// tempPath is where the next current file is created. It does not end in
// the current name or hold ".log", so that the collector's include globs
// (*.log, *.log.*) and the backup listing never see it.
func (w *Writer) tempPath() string {
	return filepath.Join(w.dir, "."+strings.TrimSuffix(w.name, filepath.Ext(w.name))+".next")
}

// enforce deletes backups beyond MaxBackups, then the oldest siblings and
// backups until the budget leaves room for a full current file. A file that
// cannot be removed is dropped from the lists but still counted, so that the
// next one goes too.
func (w *Writer) enforce() {
	for len(w.backups) > w.opts.MaxBackups {
		_ = os.Remove(filepath.Join(w.dir, w.backups[0].file))
		w.backups = w.backups[1:]
	}
	if w.opts.Budget <= 0 {
		return
	}
	var total int64
	for _, b := range w.siblings {
		total += b.size
	}
	for _, b := range w.backups {
		total += b.size
	}
	reserve := max(w.opts.MaxSize, w.size)
	for total+reserve > w.opts.Budget && len(w.siblings)+len(w.backups) > 0 {
		var victim backup
		if len(w.siblings) > 0 {
			victim, w.siblings = w.siblings[0], w.siblings[1:]
		} else {
			victim, w.backups = w.backups[0], w.backups[1:]
		}
		if err := os.Remove(filepath.Join(w.dir, victim.file)); err == nil || errors.Is(err, os.ErrNotExist) {
			total -= victim.size
		}
	}
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// MkdirAll creates path and its missing parents with exactly mode (the umask
// does not apply). Folders that already exist are left as they are.
func MkdirAll(path string, mode os.FileMode) error {
	info, err := os.Stat(path)
	if err == nil {
		if !info.IsDir() {
			return fmt.Errorf("create folder %s: a file of that name is in the way", path)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create folder %s: %w", path, err)
	}
	if parent := filepath.Dir(path); parent != path {
		if err := MkdirAll(parent, mode); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create folder %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("create folder %s: %w", path, err)
	}
	return nil
}
