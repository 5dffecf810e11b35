package logrotate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Mode is how the sweeper rotates a file that an application holds open.
type Mode string

const (
	// CopyTruncate copies the file to its backup and empties it, so the
	// application keeps writing to the same file. Lines written between the
	// end of the copy and the truncation are lost (a window of microseconds),
	// and the application must open the file with O_APPEND or it leaves a
	// hole of zeros at the start of the emptied file.
	CopyTruncate Mode = "copytruncate"
	// Rename moves the file to its backup name. The application keeps
	// writing into the backup until it reopens its file by name, so use it
	// only for applications that do.
	Rename Mode = "rename"
)

// SweepOptions say which files in Dir are rotated and how much they may use.
type SweepOptions struct {
	Dir        string
	Pattern    string // glob on file names of active logs; "*.log" when empty
	MaxSize    int64  // rotate active files larger than this; 0: never rotate
	MaxBackups int    // backups kept per active file
	Budget     int64  // bytes for everything under Dir; 0: no budget
	Mode       Mode   // CopyTruncate when empty
	Now        func() time.Time
}

// SweepReport says what one sweep did.
type SweepReport struct {
	Rotated   []string // active files rotated
	Deleted   []string // backups removed (too many, or over budget)
	Truncated []string // active files emptied because backups alone could not bring Dir under budget
	Used      int64    // bytes under Dir after the sweep
	Errors    []error
}

type sweptFile struct {
	path string
	size int64
	at   time.Time // rotation time, for backups
}

// Sweep rotates the active logs under Dir that passed MaxSize, keeps at most
// MaxBackups backups of each, and then deletes the oldest backups (and, as a
// last resort, empties the largest active files) until everything under Dir
// fits in Budget. Files that match neither the pattern nor its backups are
// counted against the budget but never touched.
func Sweep(o SweepOptions) SweepReport {
	var r SweepReport
	if o.Pattern == "" {
		o.Pattern = "*.log"
	}
	if o.Mode == "" {
		o.Mode = CopyTruncate
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if _, err := filepath.Match(o.Pattern, ""); err != nil {
		r.Errors = append(r.Errors, fmt.Errorf("pattern %q: %w", o.Pattern, err))
		return r
	}
	active, backups, used, errs := scanForSweep(o.Dir, o.Pattern)
	r.Errors = append(r.Errors, errs...)

	// 1. Rotate what passed MaxSize.
	for i, a := range active {
		if o.MaxSize <= 0 || a.size <= o.MaxSize {
			continue
		}
		dir, name := filepath.Split(a.path)
		at := nextBackupTime(dir, name, o.Now(), backupTimes(backups[a.path]))
		dst := filepath.Join(dir, BackupName(name, at))
		n, err := rotateFile(a.path, dst, o.Mode)
		if err != nil {
			r.Errors = append(r.Errors, err)
			continue
		}
		r.Rotated = append(r.Rotated, a.path)
		backups[a.path] = append(backups[a.path], sweptFile{path: dst, size: n, at: at})
		used += n - a.size // the backup holds n bytes; the active file is now empty
		active[i].size = 0
	}

	// 2. Keep MaxBackups per file.
	var all []sweptFile
	for _, list := range backups {
		sortByAge(list)
		for len(list) > o.MaxBackups {
			if removeCounted(list[0].path, &r) {
				used -= list[0].size
			}
			list = list[1:]
		}
		all = append(all, list...)
	}

	// 3. The budget: oldest backups first, then the largest active files.
	if o.Budget > 0 && used > o.Budget {
		sortByAge(all)
		for _, b := range all {
			if used <= o.Budget {
				break
			}
			if removeCounted(b.path, &r) {
				used -= b.size
			}
		}
		sort.Slice(active, func(i, j int) bool { return active[i].size > active[j].size })
		for _, a := range active {
			if used <= o.Budget || a.size == 0 {
				break
			}
			if err := os.Truncate(a.path, 0); err != nil {
				r.Errors = append(r.Errors, fmt.Errorf("empty %s to stay under the budget: %w", a.path, err))
				continue
			}
			r.Truncated = append(r.Truncated, a.path)
			used -= a.size
		}
	}
	r.Used = used
	return r
}

func scanForSweep(root, pattern string) (active []sweptFile, backups map[string][]sweptFile, used int64, errs []error) {
	backups = map[string][]sweptFile{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			if d != nil && d.IsDir() && path != root {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		used += info.Size()
		name := d.Name()
		if ok, _ := filepath.Match(pattern, name); ok {
			active = append(active, sweptFile{path: path, size: info.Size()})
			return nil
		}
		if base, at, ok := ParseBackupName(name); ok {
			if m, _ := filepath.Match(pattern, base); m {
				owner := filepath.Join(filepath.Dir(path), base)
				backups[owner] = append(backups[owner], sweptFile{path: path, size: info.Size(), at: at})
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return active, backups, used, errs
}

func rotateFile(src, dst string, mode Mode) (int64, error) {
	switch mode {
	case Rename:
		info, err := os.Stat(src)
		if err != nil {
			return 0, fmt.Errorf("rotate %s: %w", src, err)
		}
		if err := os.Rename(src, dst); err != nil {
			return 0, fmt.Errorf("rotate %s: %w", src, err)
		}
		return info.Size(), nil
	case CopyTruncate:
		return copyTruncate(src, dst)
	default:
		return 0, fmt.Errorf("rotation mode %q: use %q or %q", mode, CopyTruncate, Rename)
	}
}

func copyTruncate(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("rotate %s: %w", src, err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err != nil {
		return 0, fmt.Errorf("rotate %s: %w", src, err)
	}
	_ = out.Chmod(FileMode)
	n, err := io.Copy(out, in)
	if err == nil {
		// Right after the copy reached the end, to keep the window in which
		// appended lines are lost as short as possible.
		err = os.Truncate(src, 0)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return 0, fmt.Errorf("rotate %s by copy and truncate: %w", src, err)
	}
	return n, nil
}

func removeCounted(path string, r *SweepReport) bool {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.Errors = append(r.Errors, fmt.Errorf("remove old backup: %w", err))
		return false
	}
	r.Deleted = append(r.Deleted, path)
	return true
}

func backupTimes(list []sweptFile) []time.Time {
	out := make([]time.Time, 0, len(list))
	for _, b := range list {
		out = append(out, b.at)
	}
	return out
}

func sortByAge(list []sweptFile) {
	sort.Slice(list, func(i, j int) bool {
		if !list[i].at.Equal(list[j].at) {
			return list[i].at.Before(list[j].at)
		}
		return list[i].path < list[j].path
	})
}
