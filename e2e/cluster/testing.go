package cluster

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// envArtifacts is where the Makefile wants logs of failed runs.
const envArtifacts = "E2E_ARTIFACTS"

// StartControlPlaneT starts a control plane for a test (see
// StartControlPlane): it fails the test when the control plane does not come
// up, stops it when the test ends, and keeps the component logs under
// _artifacts/e2e/<test name>/ when the test failed.
func StartControlPlaneT(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	cp, err := StartControlPlane(context.Background(), opts)
	t.Cleanup(func() {
		if cp == nil {
			return
		}
		if t.Failed() {
			if dir, err := SaveLogs(t.Name(), cp.Dir); err == nil {
				t.Logf("component logs kept in %s", dir)
			} else {
				t.Logf("keep component logs: %v", err)
			}
		}
		cp.Stop()
	})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	return cp
}

// ArtifactsDir is where logs of failed runs go: $E2E_ARTIFACTS (set by the
// Makefile), else <repo root>/_artifacts/e2e.
func ArtifactsDir() string {
	if d := os.Getenv(envArtifacts); d != "" {
		return d
	}
	if root, err := RepoRoot(); err == nil {
		return filepath.Join(root, "_artifacts", "e2e")
	}
	return filepath.Join(os.TempDir(), "fargate-otel-e2e-artifacts")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// SaveLogs copies clusterDir/logs/* into ArtifactsDir()/<name>/ and returns
// that directory.
func SaveLogs(name, clusterDir string) (string, error) {
	dst := filepath.Join(ArtifactsDir(), unsafeName.ReplaceAllString(name, "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(clusterDir, "logs")
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
