package certs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	wrote, err := WriteDir(dir, map[string][]byte{"tls.crt": []byte("cert 1"), "tls.key": []byte("key 1")})
	if err != nil || !wrote {
		t.Fatalf("first write: wrote %v, err %v", wrote, err)
	}
	if read("tls.crt") != "cert 1" || read("tls.key") != "key 1" {
		t.Fatal("first contents not readable")
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
	if wrote, err := WriteDir(dir, map[string][]byte{"tls.crt": []byte("cert 1"), "tls.key": []byte("key 1")}); err != nil || wrote {
		t.Errorf("same contents: wrote %v, err %v; want nothing written", wrote, err)
	}

	// A reader holding the old generation open still reads the old pair;
	// a new open reads the new pair, both files from one generation.
	old, err := os.Open(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Close() }()
	if _, err := WriteDir(dir, map[string][]byte{"tls.crt": []byte("cert 2"), "tls.key": []byte("key 2")}); err != nil {
		t.Fatal(err)
	}
	if read("tls.crt") != "cert 2" || read("tls.key") != "key 2" {
		t.Fatal("second contents not readable")
	}
	buf := make([]byte, 16)
	n, _ := old.Read(buf)
	if string(buf[:n]) != "cert 1" {
		t.Errorf("an open reader saw %q", buf[:n])
	}
	// One generation folder left, and the names are symlinks through ..data.
	entries, _ := os.ReadDir(dir)
	gens := 0
	for _, e := range entries {
		if e.IsDir() {
			gens++
		}
	}
	if gens != 1 {
		t.Errorf("%d generation folders left, want 1", gens)
	}
	if target, err := os.Readlink(filepath.Join(dir, "tls.crt")); err != nil || target != "..data/tls.crt" {
		t.Errorf("tls.crt -> %q (err %v), want ..data/tls.crt", target, err)
	}
	if _, err := WriteDir(dir, map[string][]byte{"../escape": []byte("x")}); err == nil {
		t.Error("a file name with a slash was accepted")
	}
}
