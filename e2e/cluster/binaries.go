package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// Binaries are the programs a cluster runs. The Kubernetes ones come from
// `make k8s-bins` (pinned in e2e/k8sbin/go.mod), the others from Debian
// packages that the same target installs.
type Binaries struct {
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kubelet               string
	Kubectl               string
	KubeProxy             string
	Etcd                  string
	Containerd            string
	ContainerdShimDir     string // where containerd-shim-runc-v2 lives
	Ctr                   string
	Runc                  string
	CNIBinDir             string
}

// Environment variables the Makefile (mk/e2e.mk) exports.
const (
	envK8sBinDir = "E2E_K8S_BIN_DIR"
	envEtcd      = "E2E_ETCD"
)

var (
	findOnce sync.Once
	found    Binaries
	findErr  error
)

// FindBinaries locates every binary. When the Makefile's variables are missing
// (a plain `go test`), or point at nothing yet, it builds them with
// `make -C <repo root> k8s-bins` (minutes when cold, once), under a file lock
// so that test packages running in parallel build only once.
func FindBinaries() (Binaries, error) {
	findOnce.Do(func() { found, findErr = findBinaries() })
	return found, findErr
}

func findBinaries() (Binaries, error) {
	dir := os.Getenv(envK8sBinDir)
	if dir == "" || !k8sBinsPresent(dir) {
		var err error
		if dir, err = buildK8sBins(); err != nil {
			return Binaries{}, err
		}
	}
	b := Binaries{
		KubeAPIServer:         filepath.Join(dir, "kube-apiserver"),
		KubeControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeScheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubelet:               filepath.Join(dir, "kubelet"),
		Kubectl:               filepath.Join(dir, "kubectl"),
		KubeProxy:             filepath.Join(dir, "kube-proxy"),
		Etcd:                  os.Getenv(envEtcd),
		Containerd:            "/usr/bin/containerd",
		ContainerdShimDir:     "/usr/bin",
		Ctr:                   "/usr/bin/ctr",
		Runc:                  "/usr/sbin/runc",
		CNIBinDir:             "/usr/lib/cni",
	}
	if b.Etcd == "" {
		b.Etcd = "/usr/bin/etcd"
	}
	return b, nil
}

var k8sCommands = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "kube-proxy"}

func k8sBinsPresent(dir string) bool {
	for _, c := range k8sCommands {
		if fi, err := os.Stat(filepath.Join(dir, c)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

func buildK8sBins() (string, error) {
	dir, err := makeAndAsk("k8s-bins", "k8s-bin-dir", envK8sBinDir)
	if err != nil {
		return "", err
	}
	if !k8sBinsPresent(dir) {
		return "", fmt.Errorf("make k8s-bins succeeded but %s lacks %s", dir, strings.Join(k8sCommands, ", "))
	}
	return dir, nil
}

// makeAndAsk runs `make -C <root> target` (under a file lock, so that test
// packages running in parallel build once), then `make -s ask`, which prints
// the path of what was built.
func makeAndAsk(target, ask, envName string) (string, error) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%s is unset and the repository root is unknown: %w; run `make %s`", envName, err, target)
	}
	lockDir := filepath.Join(root, ".cache")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(lockDir, ".e2e-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	fmt.Fprintf(os.Stderr, "e2e/cluster: %s is unset; running `make -C %s %s` (minutes when cold)\n", envName, root, target)
	build := exec.Command("make", "-C", root, "--no-print-directory", target)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("make -C %s %s: %w", root, target, err)
	}
	var out bytes.Buffer
	askCmd := exec.Command("make", "-s", "-C", root, "--no-print-directory", ask)
	askCmd.Stdout, askCmd.Stderr = &out, os.Stderr
	if err := askCmd.Run(); err != nil {
		return "", fmt.Errorf("make %s: %w", ask, err)
	}
	return strings.TrimSpace(out.String()), nil
}
