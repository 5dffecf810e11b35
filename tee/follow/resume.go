package follow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/fargate-otel/fargate-otel/logrotate"
	"github.com/fargate-otel/fargate-otel/tee"
)

// The files are the follower's only state: where a run's file ends tells
// where to resume. Reading it back needs the tail of the newest file only,
// and more when the last lines share one time.

// newestRestart is the highest restart number with a file in dir, -1 when
// there is none.
func newestRestart(dir string) (int, error) {
	n, err := tee.NextRestart(dir)
	return n - 1, err
}

// runFiles are the files of restart n in dir, newest first: <n>.log, then
// its backups <n>.log.<YYYYMMDD-HHMMSS> from the newest.
func runFiles(dir string, n int) ([]string, error) {
	name := strconv.Itoa(n) + ".log"
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var backups []string
	current := false
	for _, e := range entries {
		if e.Name() == name {
			current = true
		} else if base, _, ok := logrotate.ParseBackupName(e.Name()); ok && base == name {
			backups = append(backups, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(backups))) // the suffix sorts by time
	var out []string
	if current {
		out = append(out, filepath.Join(dir, name))
	}
	for _, b := range backups {
		out = append(out, filepath.Join(dir, b))
	}
	return out, nil
}

// repairTail cuts a torn last record (a write cut short by a kill) off the
// file we are about to append to, so that the next record starts on a line
// of its own. It returns the bytes cut.
func repairTail(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return 0, err
	}
	size := info.Size()
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return 0, nil
	}
	keep := int64(0)
	err = eachLineBackward(f, size, true, func(line []byte, off int64) bool {
		keep = off + int64(len(line)) + 1
		return false
	})
	if err != nil {
		return 0, err
	}
	if err := f.Truncate(keep); err != nil {
		return 0, fmt.Errorf("cut the torn last line of %s: %w", path, err)
	}
	return size - keep, nil
}

// maxRecord bounds a record of the file: a piece, its time and tags.
const maxRecord = tee.MaxLineSize + 256

// eachLineBackward calls fn with each complete line of the file (without its
// newline, and its offset), from the last to the first, until fn returns
// false. skipTorn skips a last line without a newline (see repairTail); else
// the file is read as if it ended on one. Memory: one block and one record.
func eachLineBackward(f *os.File, size int64, skipTorn bool, fn func(line []byte, off int64) bool) error {
	const block = 64 << 10
	pos := size
	var acc []byte // the bytes [pos, pos+len(acc)) not yet given to fn
	first := true
	for {
		// acc ends with a newline, or is the torn end of the file.
		i := -1
		if len(acc) > 1 {
			i = bytes.LastIndexByte(acc[:len(acc)-1], '\n')
		}
		if i >= 0 || (pos == 0 && len(acc) > 0) {
			line := acc[i+1:]
			torn := first && (len(line) == 0 || line[len(line)-1] != '\n')
			first = false
			if !torn || !skipTorn {
				if !fn(bytes.TrimSuffix(line, []byte{'\n'}), pos+int64(i+1)) {
					return nil
				}
			}
			acc = acc[:i+1]
			if len(acc) == 0 && pos == 0 {
				return nil
			}
			continue
		}
		if pos == 0 {
			return nil
		}
		if len(acc) > 4*maxRecord {
			return fmt.Errorf("%s: a line of more than %d bytes: not a file this program wrote", f.Name(), len(acc))
		}
		n := min(int64(block), pos)
		buf := make([]byte, n, int(n)+len(acc))
		if _, err := f.ReadAt(buf, pos-n); err != nil && err != io.EOF {
			return err
		}
		acc = append(buf, acc...)
		pos -= n
	}
}

// record is one line of a file, as far as resuming needs it.
type record struct {
	ts      int64
	stderr  bool
	partial bool
	text    int // bytes of text
}

// parseRecord reads "<time> <stream> <P|F> <text>".
func parseRecord(line []byte) (record, bool) {
	var r record
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return r, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:sp]))
	if err != nil {
		return r, false
	}
	r.ts = t.UnixNano()
	rest := line[sp+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")):
	case bytes.HasPrefix(rest, []byte("stderr ")):
		r.stderr = true
	default:
		return r, false
	}
	rest = rest[len("stdout "):]
	if len(rest) < 2 || rest[1] != ' ' || (rest[0] != 'P' && rest[0] != 'F') {
		return r, false
	}
	r.partial = rest[0] == 'P'
	r.text = len(rest) - 2
	return r, true
}

// scanPosition reads where the files of a run (newest first) end: the time
// of the last line begun, how many whole lines at that time they hold, and
// how much of an unfinished last line. Lines on stderr are the follower's
// own notices, not the kubelet's: they do not count.
func scanPosition(files []string) (position, error) {
	var p position
	const (
		looking  = iota // for the last line
		openLine        // the last line has no end: adding up its pieces
		counting        // whole lines at p.at
		done
	)
	state := looking
	for _, path := range files {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated or deleted meanwhile
		}
		if err != nil {
			return p, err
		}
		info, err := f.Stat()
		if err == nil {
			err = eachLineBackward(f, info.Size(), true, func(line []byte, _ int64) bool {
				r, ok := parseRecord(line)
				if !ok || r.stderr {
					return true
				}
				switch state {
				case looking:
					p.at = r.ts
					if r.partial {
						p.open, p.part, state = true, int64(r.text), openLine
					} else {
						p.count, state = 1, counting
					}
				case openLine:
					switch {
					case r.ts != p.at:
						state = done
					case r.partial:
						p.part += int64(r.text)
					default:
						p.count, state = 1, counting
					}
				case counting:
					switch {
					case r.ts != p.at:
						state = done
					case !r.partial:
						p.count++
					}
				}
				return state != done
			})
		}
		_ = f.Close()
		if err != nil {
			return p, err
		}
		if state == done {
			break
		}
	}
	return p, nil
}
