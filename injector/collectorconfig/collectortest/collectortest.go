// Package collectortest runs the real fargate-otel-collector binary in tests
// and benchmarks: it finds (or builds) the binary, starts it with a rendered
// config the way the sidecar runs (--config=env:FARGATE_OTEL_CONFIG),
// optionally with files under /run (a service account) in a private mount
// namespace, and kills it.
//
// The functions taking a testing.TB fail the test; the others return errors
// (the benchmark programs use those).
package collectortest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// BinaryEnvVar names the env var with the collector binary's path; the
// Makefile sets it.
const BinaryEnvVar = "FARGATE_OTEL_COLLECTOR_BIN"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BinaryPath returns the collector binary: $FARGATE_OTEL_COLLECTOR_BIN when
// it exists, else the result of `make -C <repo root> collector` (built once
// per process).
func BinaryPath() (string, error) {
	if p := os.Getenv(BinaryEnvVar); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	buildOnce.Do(func() {
		root, err := gobuild.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		out, err := exec.Command("make", "-s", "-C", root, "collector").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make collector failed (run it by hand to see why): %w\n%s", err, out)
			return
		}
		buildPath = filepath.Join(root, "bin", "fargate-otel-collector")
	})
	return buildPath, buildErr
}

// Binary is BinaryPath for tests.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := BinaryPath()
	if err != nil {
		t.Fatalf("collector binary: %v", err)
	}
	return p
}

// ServiceAccountDir is where the kubelet mounts a pod's service account
// token; kubelet_stats reads its token there (a fixed path).
const ServiceAccountDir = "/run/secrets/kubernetes.io/serviceaccount"

// ServiceAccount returns the RunFiles of a service account mount.
func ServiceAccount(token string, caCert []byte) map[string][]byte {
	return map[string][]byte{
		ServiceAccountDir + "/token":  []byte(token),
		ServiceAccountDir + "/ca.crt": caCert,
	}
}

// Options says how to run the collector.
type Options struct {
	// Config is the collector YAML, passed in FARGATE_OTEL_CONFIG
	// (--config=env:FARGATE_OTEL_CONFIG).
	Config []byte
	// Settings, when set instead of Config, are the pod's compact settings
	// (sidecarconfig.Encode), passed as the injector passes them, in
	// FARGATE_OTEL_SETTINGS (--config=fargate:env:FARGATE_OTEL_SETTINGS).
	Settings []byte
	// Env is added to the environment (NODE_NAME=..., POD_NAME=..., ...).
	Env []string
	// RunFiles, when set, runs the collector in its own mount namespace with
	// a tmpfs over /run (= /var/run) holding these files (absolute paths
	// under /run), e.g. ServiceAccount(...): nothing on the machine changes.
	// Needs root.
	RunFiles map[string][]byte
	// Args are extra command-line arguments.
	Args []string
	// Binary, when set, runs this collector binary instead of BinaryPath's
	// (e.g. a reference build to compare with).
	Binary string
}

// Process is a running collector.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// StartProcess runs the collector with its files (log, staged /run files)
// under dir.
func StartProcess(opts Options, dir string) (*Process, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = BinaryPath(); err != nil {
			return nil, err
		}
	}
	configArg, configEnv := "--config=env:FARGATE_OTEL_CONFIG", "FARGATE_OTEL_CONFIG="+string(opts.Config)
	if opts.Settings != nil {
		configArg, configEnv = "--config=fargate:env:FARGATE_OTEL_SETTINGS", "FARGATE_OTEL_SETTINGS="+string(opts.Settings)
	}
	args, env, err := inRunNamespace(dir, opts.RunFiles, append([]string{bin, configArg}, opts.Args...))
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "collector.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(append(os.Environ(), opts.Env...), env...), configEnv)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start collector: %w", err)
	}
	p := &Process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Start runs the collector for a test; it is killed when the test ends, and
// its last log lines are shown if the test failed.
func Start(t testing.TB, opts Options) *Process {
	t.Helper()
	p, err := StartProcess(opts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("collector log, last lines:\n%s", Tail(p.Logs(), 40))
		}
	})
	return p
}

// Logs is what the collector wrote so far.
func (p *Process) Logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Wait waits for the process to end and returns its exit status.
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// Stop sends SIGTERM and waits up to timeout for a clean exit.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		if p.waitErr == nil {
			return errors.New("collector had already exited (status 0)")
		}
		return fmt.Errorf("collector had already exited: %w", p.waitErr)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("collector did not stop within %s after SIGTERM", timeout)
	}
}

// Pid is the collector's process id (the mount-namespace wrapper execs it,
// so this is the collector itself).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// WaitHealthy polls the health_check endpoint (e.g. http://127.0.0.1:13133/)
// until it answers 200, failing early if the collector exits.
func (p *Process) WaitHealthy(ctx context.Context, url string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("collector not healthy at %s: %w\n%s", url, ctx.Err(), Tail(p.Logs(), 40))
		case <-p.done:
			return fmt.Errorf("collector exited before it was healthy (%v):\n%s", p.waitErr, Tail(p.Logs(), 40)) //nolint:errorlint // the exit status may be nil
		case <-tick.C:
		}
	}
}

// inRunNamespace wraps args so that they run in a private mount namespace
// with a tmpfs over /run holding files (staged under dir), and returns the
// env the wrapper needs. The command keeps the process id (sh execs it).
func inRunNamespace(dir string, files map[string][]byte, args []string) ([]string, []string, error) {
	if len(files) == 0 {
		return args, nil, nil
	}
	stage := filepath.Join(dir, "run")
	for name, content := range files {
		rel, ok := strings.CutPrefix(filepath.Clean(name), "/run/")
		if !ok {
			rel, ok = strings.CutPrefix(filepath.Clean(name), "/var/run/")
		}
		if !ok {
			return nil, nil, fmt.Errorf("run file %s: must be under /run or /var/run", name)
		}
		p := filepath.Join(stage, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return nil, nil, err
		}
	}
	const script = `set -e
mount -t tmpfs -o size=4m,mode=0755 fargate-otel-test /run
cp -R "$FARGATE_OTEL_TEST_RUN"/. /run/
exec "$@"`
	wrapped := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"}, args...)
	return wrapped, []string{"FARGATE_OTEL_TEST_RUN=" + stage}, nil
}

// Validate runs `fargate-otel-collector validate` on config with env set and
// runFiles in place, returning the collector's output when it rejects the
// config.
func Validate(t testing.TB, config []byte, env []string, runFiles map[string][]byte) error {
	t.Helper()
	return ValidateArgs(t, []string{"--config=env:FARGATE_OTEL_CONFIG"}, append(env, "FARGATE_OTEL_CONFIG="+string(config)), runFiles)
}

// ValidateArgs runs the binary's `validate` with a container's args (its
// --config flags) and env, as Validate does.
func ValidateArgs(t testing.TB, containerArgs, env []string, runFiles map[string][]byte) error {
	t.Helper()
	args, nsEnv, err := inRunNamespace(t.TempDir(), runFiles, append([]string{Binary(t), "validate"}, containerArgs...))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), env...), nsEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// PodEnv is the Downward API environment of a test pod.
func PodEnv(node, namespace, pod, uid string) []string {
	return []string{"NODE_NAME=" + node, "POD_NAMESPACE=" + namespace, "POD_NAME=" + pod, "POD_UID=" + uid}
}
