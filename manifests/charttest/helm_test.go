package charttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// The chart as the README installs it.
const (
	release   = "fargate-otel"
	namespace = "fargate-otel"
	// kubeVersion is what `helm template` assumes (a helm built with go
	// install would otherwise assume v1.20).
	kubeVersion = "1.35.4"
)

// envHelm is where the Makefile (mk/chart.mk) says helm is.
const envHelm = "FARGATE_OTEL_HELM"

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// helm returns the helm CLI: $FARGATE_OTEL_HELM, else `make helm` builds it.
func helm(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() {
		if p := os.Getenv(envHelm); p != "" {
			if _, err := os.Stat(p); err != nil {
				helmErr = fmt.Errorf("$%s=%s: %w (run `make helm`)", envHelm, p, err)
			}
			helmBin = p
			return
		}
		root, err := gobuild.RepoRoot()
		if err != nil {
			helmErr = err
			return
		}
		cmd := exec.Command("make", "-C", root, "--no-print-directory", "helm")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = fmt.Errorf("make helm: %w\n%s", err, out)
			return
		}
		helmBin = filepath.Join(root, ".cache", "tools", "bin", "helm")
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmBin
}

func chartDir(t testing.TB) string {
	t.Helper()
	root, err := gobuild.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "manifests", "charts", "fargate-otel")
}

// runHelm runs helm with args and returns its standard output.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helm(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// No kubeconfig of this machine is ever read.
	cmd.Env = append(os.Environ(), "KUBECONFIG=/dev/null", "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values (nested maps, as in values.yaml) to a file.
func valuesFile(t testing.TB, values map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not under t.TempDir(): helm splits --values at commas, which test
	// names may hold.
	dir, err := os.MkdirTemp("", "charttest-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// templateRaw renders the chart with values, or returns helm's error.
func templateRaw(t testing.TB, values map[string]any) (string, error) {
	t.Helper()
	return runHelm(t, "template", release, chartDir(t), "--namespace", namespace,
		"--kube-version", kubeVersion, "--values", valuesFile(t, values))
}

// objects is a rendered chart.
type objects []*unstructured.Unstructured

// render renders the chart with values and parses every object.
func render(t testing.TB, values map[string]any) objects {
	t.Helper()
	out, err := templateRaw(t, values)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return objs
}

func parse(manifest string) (objects, error) {
	var objs objects
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("parse the rendered chart: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of kind and name, or nil.
func (o objects) find(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

// of returns every object of kind.
func (o objects) of(kind string) objects {
	var out objects
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// get decodes the object of kind and name into out (a typed API object),
// failing the test when it is missing.
func (o objects) get(t testing.TB, kind, name string, out any) {
	t.Helper()
	u := o.find(kind, name)
	if u == nil {
		t.Fatalf("the chart renders no %s %s", kind, name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s does not decode strictly: %v", kind, name, err)
	}
}

// names lists "Kind/name" of every object.
func (o objects) names() []string {
	var out []string
	for _, u := range o {
		out = append(out, u.GetKind()+"/"+u.GetName())
	}
	return out
}
