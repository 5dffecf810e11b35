package certs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// dataLink is the symlink that points at the current generation of files,
// as in a Secret volume: every file name is a symlink through it, so that
// readers switch from one complete set to the next at once.
const dataLink = "..data"

// WriteDir puts files (name → content) into dir the way the kubelet updates a
// Secret volume: a new hidden folder with every file, then one rename of the
// ..data symlink, so that a reader never sees a certificate with the key of
// another. Names ending in .key are written 0600, others 0644. It does
// nothing and returns false when dir already holds exactly these contents.
func WriteDir(dir string, files map[string][]byte) (bool, error) {
	if same(dir, files) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	gen := ".." + strconv.FormatInt(time.Now().UnixNano(), 10)
	genDir := filepath.Join(dir, gen)
	if err := os.Mkdir(genDir, 0o755); err != nil {
		return false, err
	}
	for name, data := range files {
		if name == "" || strings.ContainsRune(name, '/') || strings.HasPrefix(name, "..") {
			return false, fmt.Errorf("file name %q: want a plain name", name)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(genDir, name), data, mode); err != nil {
			return false, err
		}
	}
	if err := replaceSymlink(gen, filepath.Join(dir, dataLink)); err != nil {
		return false, err
	}
	for name := range files {
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(filepath.Join(dir, name)); err == nil && cur == target {
			continue
		}
		if err := replaceSymlink(target, filepath.Join(dir, name)); err != nil {
			return false, err
		}
	}
	// Older generations are unreachable now.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, err
	}
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && strings.HasPrefix(n, "..") && n != gen {
			_ = os.RemoveAll(filepath.Join(dir, n))
		}
	}
	return true, nil
}

// replaceSymlink makes link point at target in one rename.
func replaceSymlink(target, link string) error {
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

func same(dir string, files map[string][]byte) bool {
	for name, data := range files {
		cur, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(cur, data) {
			return false
		}
	}
	return true
}
