// Package gatewaytest runs the real fargate-otel-gateway binary on loopback
// for the gateway's integration tests (this package's tests) and its
// benchmark (bench/gateway): it finds (or builds) the binary, renders the
// gateway's config with the chart (`helm template`, as the ConfigMap that
// `helm install` creates), and runs replicas on 127.0.0.x addresses, each as
// a pod would run it (POD_IP, POD_NAME), optionally with a DNS server of the
// test as its resolver (a private mount namespace with its own
// /etc/resolv.conf), so that the loadbalancing exporter's DNS resolver finds
// the replicas as it does through a headless Service.
//
// The functions return errors; the tests wrap them.
package gatewaytest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// BinaryEnvVar names the env var with the gateway binary's path; the
// Makefile (mk/gateway.mk) sets it.
const BinaryEnvVar = "FARGATE_OTEL_GATEWAY_BIN"

// HelmEnvVar is where the Makefile (mk/chart.mk) says helm is.
const HelmEnvVar = "FARGATE_OTEL_HELM"

// The chart's release and namespace as the README installs it; the sampling
// Service's DNS name follows from them.
const (
	Release   = "fargate-otel"
	Namespace = "fargate-otel"
	// SamplingHost is the headless Service the routing tier resolves.
	SamplingHost = "fargate-otel-gateway-sampling." + Namespace + ".svc.cluster.local"
)

// Ports of a replica (templates/_gateway.tpl).
const (
	PortGRPC     = 4317
	PortHTTP     = 4318
	PortSampling = 4417
	PortHealth   = 13133
	PortMetrics  = 8888
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	helmOnce  sync.Once
	helmPath  string
	helmErr   error
)

// BinaryPath returns the gateway binary: $FARGATE_OTEL_GATEWAY_BIN when it
// exists, else the result of `make -C <repo root> gateway` (built once per
// process).
func BinaryPath() (string, error) {
	if p := gobuild.Built(BinaryEnvVar); p != "" {
		return p, nil
	}
	buildOnce.Do(func() {
		buildPath, buildErr = makeTarget("gateway", filepath.Join("bin", "fargate-otel-gateway"))
	})
	return buildPath, buildErr
}

// HelmPath returns the helm CLI: $FARGATE_OTEL_HELM, else `make helm`.
func HelmPath() (string, error) {
	if p := gobuild.Built(HelmEnvVar); p != "" {
		return p, nil
	}
	helmOnce.Do(func() {
		helmPath, helmErr = makeTarget("helm", filepath.Join(".cache", "tools", "bin", "helm"))
	})
	return helmPath, helmErr
}

func makeTarget(target, result string) (string, error) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command("make", "-s", "-C", root, target).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("make %s failed (run it by hand to see why): %w\n%s", target, err, out)
	}
	return filepath.Join(root, result), nil
}

// RenderConfig renders the gateway's collector config with the chart and
// values (nested maps, as in a values file; gateway.enabled is set), as
// the ConfigMap fargate-otel-gateway holds it.
func RenderConfig(ctx context.Context, values map[string]any) ([]byte, error) {
	objs, err := Render(ctx, values, "templates/gateway-configmap.yaml")
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("the chart rendered %d objects from gateway-configmap.yaml, want the ConfigMap", len(objs))
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(objs[0], &cm); err != nil {
		return nil, fmt.Errorf("the gateway's ConfigMap: %w", err)
	}
	cfg, ok := cm.Data["config.yaml"]
	if !ok {
		return nil, errors.New("the gateway's ConfigMap has no config.yaml")
	}
	return []byte(cfg), nil
}

// Render runs `helm template` of the chart with values, showing only the
// given templates, and returns each rendered object's YAML.
func Render(ctx context.Context, values map[string]any, show ...string) ([][]byte, error) {
	helm, err := HelmPath()
	if err != nil {
		return nil, err
	}
	root, err := gobuild.RepoRoot()
	if err != nil {
		return nil, err
	}
	values = withGatewayEnabled(values)
	data, err := yaml.Marshal(values)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatewaytest-values-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	file := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return nil, err
	}
	args := []string{"template", Release, filepath.Join(root, "manifests", "charts", "fargate-otel"),
		"--namespace", Namespace, "--kube-version", "1.35.4", "--values", file}
	for _, s := range show {
		args = append(args, "--show-only", s)
	}
	cmd := exec.CommandContext(ctx, helm, args...)
	// No kubeconfig or helm state of this machine is read.
	cmd.Env = append(os.Environ(), "KUBECONFIG=/dev/null", "HELM_CACHE_HOME="+dir, "HELM_CONFIG_HOME="+dir, "HELM_DATA_HOME="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var objs [][]byte
	for _, doc := range strings.Split(string(out), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) != "" {
			objs = append(objs, []byte(doc))
		}
	}
	return objs, nil
}

func withGatewayEnabled(values map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range values {
		out[k] = v
	}
	g := map[string]any{}
	if in, ok := out["gateway"].(map[string]any); ok {
		for k, v := range in {
			g[k] = v
		}
	}
	g["enabled"] = true
	out["gateway"] = g
	return out
}

// Options says how to run one replica.
type Options struct {
	// Config is the collector YAML (RenderConfig).
	Config []byte
	// IP is the replica's address (127.0.0.x), its POD_IP.
	IP string
	// Name is its POD_NAME.
	Name string
	// Nameserver, when set (an address on 127.0.0.1 port 53), is the only
	// resolver of the replica: it runs in a private mount namespace with an
	// /etc/resolv.conf naming it. Needs root.
	Nameserver string
	// Env is added to the environment (AWS_*, ...).
	Env []string
	// Cores, when set, pins the replica to these CPUs (taskset -c) with
	// GOMAXPROCS the number of them.
	Cores string
}

// Replica is a running gateway.
type Replica struct {
	IP, Name string
	cmd      *exec.Cmd
	logPath  string
	done     chan struct{}
	waitErr  error
}

// Start runs a replica with its files (config, log, resolv.conf) in dir.
func Start(opts Options, dir string) (*Replica, error) {
	bin, err := BinaryPath()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, opts.Config, 0o600); err != nil {
		return nil, err
	}
	args := []string{bin, "--config=" + cfgPath}
	var env []string
	if opts.Cores != "" {
		n := len(strings.Split(opts.Cores, ","))
		args = append([]string{"taskset", "-c", opts.Cores}, args...)
		env = append(env, "GOMAXPROCS="+strconv.Itoa(n))
	}
	if opts.Nameserver != "" {
		resolv := filepath.Join(dir, "resolv.conf")
		// ndots:1: the Service name is tried as it is, as in a pod.
		conf := "nameserver " + opts.Nameserver + "\noptions ndots:1 timeout:1 attempts:2\n"
		if err := os.WriteFile(resolv, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		const script = `set -e
mount --bind "$FARGATE_OTEL_TEST_RESOLV" /etc/resolv.conf
exec "$@"`
		args = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"}, args...)
		env = append(env, "FARGATE_OTEL_TEST_RESOLV="+resolv)
	}
	logPath := filepath.Join(dir, "gateway.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(append(os.Environ(), "POD_IP="+opts.IP, "POD_NAME="+opts.Name), env...), opts.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start gateway %s: %w", opts.Name, err)
	}
	r := &Replica{IP: opts.IP, Name: opts.Name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		r.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(r.done)
	}()
	return r, nil
}

// Pid is the gateway's process id (the wrappers exec it).
func (r *Replica) Pid() int { return r.cmd.Process.Pid }

// OTLP is the replica's OTLP/gRPC address (what sidecars send to).
func (r *Replica) OTLP() string { return fmt.Sprintf("%s:%d", r.IP, PortGRPC) }

// Logs is what the replica wrote so far.
func (r *Replica) Logs() string {
	b, _ := os.ReadFile(r.logPath)
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

func (r *Replica) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (r *Replica) Kill() {
	if !r.exited() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.done
}

// Stop sends SIGTERM, as the kubelet does, and waits up to timeout.
func (r *Replica) Stop(timeout time.Duration) error {
	if r.exited() {
		return fmt.Errorf("gateway %s had already exited: %v", r.Name, r.waitErr) //nolint:errorlint // the status may be nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return r.waitErr
	case <-time.After(timeout):
		r.Kill()
		return fmt.Errorf("gateway %s did not stop within %s of SIGTERM", r.Name, timeout)
	}
}

// WaitHealthy polls the health_check endpoint until it answers 200, failing
// early if the process exits.
func (r *Replica) WaitHealthy(ctx context.Context) error {
	url := fmt.Sprintf("http://%s:%d/", r.IP, PortHealth)
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
			return fmt.Errorf("gateway %s not healthy at %s: %w\n%s", r.Name, url, ctx.Err(), Tail(r.Logs(), 40))
		case <-r.done:
			return fmt.Errorf("gateway %s exited before it was healthy (%v):\n%s", r.Name, r.waitErr, Tail(r.Logs(), 40)) //nolint:errorlint // the status may be nil
		case <-tick.C:
		}
	}
}

// Metric sums every sample of the replica's own metric name (the
// Prometheus names of its telemetry, e.g.
// otelcol_loadbalancer_num_backends; a counter's _total suffix is
// optional) whose labels contain every label given ("name=\"value\"").
func (r *Replica) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	url := fmt.Sprintf("http://%s:%d/metrics", r.IP, PortMetrics)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return SumMetric(bufio.NewScanner(resp.Body), name, labels...)
}

// SumMetric sums the samples of name in Prometheus text exposition.
func SumMetric(sc *bufio.Scanner, name string, labels ...string) (float64, error) {
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "_total")
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labelText := ""
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labelText, rest = rest[1:end], rest[end+1:]
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(labelText, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}
