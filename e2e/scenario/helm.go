package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// Release and namespace the scenario installs the chart as, as the README
// tells users to.
const (
	Release          = "fargate-otel"
	ReleaseNamespace = "fargate-otel"
	// ChartDir is the chart, relative to the repository root.
	ChartDir = "manifests/charts/fargate-otel"
)

// envHelm is where the Makefile says the helm binary is.
const envHelm = "FARGATE_OTEL_HELM"

// Helm runs the helm CLI against one cluster.
type Helm struct {
	Bin        string
	Kubeconfig string
	// Log receives helm's output line by line (nil: dropped).
	Log func(format string, args ...any)
}

// FindHelm returns the helm binary: $FARGATE_OTEL_HELM (set by the
// Makefile), else the one `make helm-path` names after `make helm`, else
// helm on PATH.
func FindHelm() (string, error) {
	if p := os.Getenv(envHelm); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("$%s=%s does not exist: run `make helm`", envHelm, p)
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no helm: run the test through make (`make e2e`), or set $%s", envHelm)
}

// Install runs `helm upgrade --install` of the chart with values, and waits
// (helm --wait) for its Deployments.
func (h Helm) Install(ctx context.Context, values map[string]any, timeout time.Duration) error {
	root, err := gobuild.RepoRoot()
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "fargate-otel-values-*.yaml")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = h.run(ctx, timeout+30*time.Second, "upgrade", "--install", Release, filepath.Join(root, ChartDir),
		"--namespace", ReleaseNamespace, "--create-namespace", "--values", f.Name(),
		"--wait", "--timeout", timeout.String())
	return err
}

// Uninstall removes the release (nothing when it is not installed).
func (h Helm) Uninstall(ctx context.Context) error {
	out, err := h.run(ctx, 3*time.Minute, "uninstall", Release, "--namespace", ReleaseNamespace, "--wait")
	if err != nil && strings.Contains(out, "not found") {
		return nil
	}
	return err
}

// Template renders the chart with values (for the logs of a failed run).
func (h Helm) Template(ctx context.Context, values map[string]any) (string, error) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		return "", err
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "fargate-otel-values-*.yaml")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	quiet := h
	quiet.Log = nil
	return quiet.run(ctx, time.Minute, "template", Release, filepath.Join(root, ChartDir), "--namespace", ReleaseNamespace, "--values", f.Name())
}

func (h Helm) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, append(args, "--kubeconfig", h.Kubeconfig)...)
	out, err := cmd.CombinedOutput()
	if h.Log != nil {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" {
				h.Log("  helm: %s", line)
			}
		}
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (after %v)", err, timeout)
		}
		return string(out), fmt.Errorf("helm %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
