package tee

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fargate-otel/fargate-otel/logrotate"
)

func TestResolveIdentityPrecedenceFlagEnvPodinfo(t *testing.T) {
	podinfo := t.TempDir()
	for name, v := range map[string]string{"namespace": "ns-file\n", "name": "pod-file", "uid": "0000-file"} {
		if err := os.WriteFile(filepath.Join(podinfo, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{EnvPod: "pod-env", EnvPodUID: "uid-env", EnvContainer: "c-env"}
	id, err := ResolveIdentity(Identity{PodUID: "uid-flag"}, func(k string) string { return env[k] }, podinfo)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Namespace: "ns-file", Pod: "pod-env", PodUID: "uid-flag", Container: "c-env"}
	if id != want {
		t.Fatalf("identity = %+v, want %+v", id, want)
	}
}

func TestResolveIdentityReportsAMissingPodinfo(t *testing.T) {
	id, err := ResolveIdentity(Identity{Container: "c"}, func(string) string { return "" }, filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("err = %v, want the unreadable files named", err)
	}
	if got := strings.Join(id.Missing(), " "); got != "--namespace --pod --pod-uid" {
		t.Fatalf("missing = %q", got)
	}
}

func TestIdentityCheckRefusesWhatTheCollectorCannotReadBack(t *testing.T) {
	good := Identity{Namespace: "default", Pod: "web-7d4b9c-x2k", PodUID: "1f2e3d4c-0000-4a5b-8c9d-0123456789ab", Container: "app"}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Identity{
		{Namespace: "a_b"}, {Pod: "../x"}, {Pod: ".."}, {PodUID: "ABC"}, {Container: "a.b"}, {Container: "a/b"},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestNextRestart(t *testing.T) {
	dir := t.TempDir()
	if n, err := NextRestart(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Fatalf("missing folder: %d, %v", n, err)
	}
	for _, name := range []string{"0.log", "3.log.20260101-000000", "2.log", "10.txt", "x.log"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := NextRestart(dir); err != nil || n != 4 {
		t.Fatalf("NextRestart = %d, %v; want 4 (after the backup of restart 3)", n, err)
	}
}

func TestOpenContainerLogLayoutAndModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	id := Identity{Namespace: "ns", Pod: "p", PodUID: "ab-12", Container: "c"}
	for want := 0; want < 3; want++ {
		w, err := OpenContainerLog(root, id, logrotate.Options{MaxSize: logrotate.MiB})
		if err != nil {
			t.Fatal(err)
		}
		wantPath := filepath.Join(root, "ns_p_ab-12", "c", strconv.Itoa(want)+".log")
		if w.Path() != wantPath {
			t.Fatalf("restart %d: path %s, want %s", want, w.Path(), wantPath)
		}
		_ = w.Close()
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(root, "ns_p_ab-12"):               0o777 | os.ModeSticky,
		filepath.Join(root, "ns_p_ab-12", "c"):          0o755,
		filepath.Join(root, "ns_p_ab-12", "c", "0.log"): 0o644,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeSticky); got != mode {
			t.Errorf("%s: mode %v, want %v", path, got, mode)
		}
	}
	if _, err := OpenContainerLog(filepath.Join(root, "absent"), id, logrotate.Options{}); err == nil || !strings.Contains(err.Error(), "volume mounted") {
		t.Fatalf("a missing log folder: %v", err)
	}
}
