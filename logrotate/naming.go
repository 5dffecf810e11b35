package logrotate

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// backupTimeLayout is the kubelet's rotation suffix (UTC).
const backupTimeLayout = "20060102-150405"

// BackupName is the name of a backup of name rotated at t: name.<YYYYMMDD-HHMMSS> (UTC).
func BackupName(name string, t time.Time) string {
	return name + "." + t.UTC().Format(backupTimeLayout)
}

// ParseBackupName splits a backup name into the name of the file it was
// rotated from and the rotation time. ok is false for any other name.
func ParseBackupName(backup string) (name string, t time.Time, ok bool) {
	n := len(backupTimeLayout)
	if len(backup) < n+2 || backup[len(backup)-n-1] != '.' {
		return "", time.Time{}, false
	}
	suffix := backup[len(backup)-n:]
	for i, c := range suffix {
		if i == 8 {
			if c != '-' {
				return "", time.Time{}, false
			}
		} else if c < '0' || c > '9' {
			return "", time.Time{}, false
		}
	}
	t, err := time.ParseInLocation(backupTimeLayout, suffix, time.UTC)
	if err != nil {
		return "", time.Time{}, false
	}
	return backup[:len(backup)-n-1], t, true
}

// nextBackupTime picks the rotation time for a new backup: now, truncated to
// the second, or one second after the newest existing backup if that is not
// earlier, so that names stay unique and sorted by age even when several
// rotations happen within one second; then the next second whose name is free.
func nextBackupTime(dir, name string, now time.Time, existing []time.Time) time.Time {
	t := now.UTC().Truncate(time.Second)
	for _, e := range existing {
		if !e.Before(t) {
			t = e.Add(time.Second)
		}
	}
	for {
		if _, err := os.Lstat(filepath.Join(dir, BackupName(name, t))); os.IsNotExist(err) {
			return t
		}
		t = t.Add(time.Second)
	}
}

// backup is one rotated file of a name found in a folder.
type backup struct {
	file string // base name
	at   time.Time
	size int64
}

// listBackups returns the backups of name in dir, oldest first.
func listBackups(entries []os.DirEntry, name string) []backup {
	var out []backup
	for _, e := range entries {
		base, at, ok := ParseBackupName(e.Name())
		if !ok || base != name || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, backup{file: e.Name(), at: at, size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].file < out[j].file
	})
	return out
}
