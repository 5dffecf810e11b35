package cluster

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
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

// StartT starts a single-node cluster for a test (see Start): it fails the
// test when the cluster does not come up, tears it down when the test ends,
// and keeps the component and pod logs under _artifacts/e2e/<test name>/
// when the test failed.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := Start(context.Background(), opts)
	t.Cleanup(func() {
		if c == nil {
			return
		}
		if t.Failed() {
			if dir, err := SaveLogs(t.Name(), c.state.Dir); err == nil {
				t.Logf("component and pod logs kept in %s", dir)
			} else {
				t.Logf("keep logs: %v", err)
			}
		}
		if err := c.Stop(); err != nil {
			t.Errorf("tear the cluster down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	return c
}

// StartFakeKubeletT starts a fake kubelet for a test (see StartFakeKubelet):
// it fails the test when the node cannot be registered and closes it when
// the test ends.
func (cp *ControlPlane) StartFakeKubeletT(t testing.TB, name string, handler http.Handler) *FakeKubelet {
	t.Helper()
	fk, err := cp.StartFakeKubelet(context.Background(), name, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fk.Close(context.Background()) })
	return fk
}

// ServeRegistryT serves an in-memory image registry (go-containerregistry's
// pkg/registry) at RegistryHost, the node's address over plain HTTP, for the
// rest of the test: containerd pulls RegistryHost/... images from it.
func ServeRegistryT(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", RegistryHost)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// ArtifactsDir is where logs of failed runs go: $E2E_ARTIFACTS (set by the
// Makefile), else <repo root>/_artifacts/e2e.
func ArtifactsDir() string {
	if d := os.Getenv(envArtifacts); d != "" {
		return d
	}
	if root, err := gobuild.RepoRoot(); err == nil {
		return filepath.Join(root, "_artifacts", "e2e")
	}
	return filepath.Join(os.TempDir(), "fargate-otel-e2e-artifacts")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// SaveLogs copies the component logs (clusterDir/logs) and the pod logs
// (clusterDir/pod-logs) into ArtifactsDir()/<name>/ and returns that
// directory.
func SaveLogs(name, clusterDir string) (string, error) {
	dst := filepath.Join(ArtifactsDir(), unsafeName.ReplaceAllString(name, "_"))
	for _, sub := range []string{"logs", "pod-logs"} {
		src := filepath.Join(clusterDir, sub)
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(clusterDir, path)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			return copyFile(path, filepath.Join(dst, rel))
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
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
	defer func() { _ = in.Close() }()
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
