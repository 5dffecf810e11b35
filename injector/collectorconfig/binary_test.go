package collectorconfig_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/pki"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

var testPodEnv = append(collectortest.PodEnv("fargate-ip-10-0-1-2.eu-west-1.compute.internal", "shop", "web-7d9f", "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e"),
	"VENDOR_API_KEY=not-a-secret")

// runFiles are the files the variants refer to under /var/run: the service
// account (token and CA) and the nodeproxy's CA.
func runFiles(t *testing.T) map[string][]byte {
	ca := selfSignedPEM(t)
	files := collectortest.ServiceAccount("test-token", ca)
	files["/var/run/fargate-otel/nodeproxy/ca.crt"] = ca
	return files
}

// TestCollectorValidatesEveryVariant runs the real binary's `validate`, which
// builds every pipeline, on each of sidecarconfig's golden configs.
func TestCollectorValidatesEveryVariant(t *testing.T) {
	files := runFiles(t)
	golden, err := filepath.Glob("../../sidecarconfig/testdata/*.yaml")
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden configs under sidecarconfig/testdata (%v)", err)
	}
	for _, path := range golden {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			out, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := collectortest.Validate(t, out, testPodEnv, files); err != nil {
				t.Fatalf("the collector rejects the %s config: %v\n%s", name, err, out)
			}
		})
	}
}

// TestCollectorRunsTheSettingsOfInjectedPods runs the real binary's
// `validate` with the args and settings env of the collector that Mutate
// puts into pods: the distribution's fargate config provider renders them.
func TestCollectorRunsTheSettingsOfInjectedPods(t *testing.T) {
	files := runFiles(t)
	golden, err := filepath.Glob("../testdata/mutate/*.golden.yaml")
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden pods under injector/testdata/mutate (%v)", err)
	}
	checked := 0
	for _, path := range golden {
		var out struct {
			Pod *corev1.Pod `json:"pod"`
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := sigsyaml.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, c := range append(out.Pod.Spec.InitContainers, out.Pod.Spec.Containers...) {
			if c.Name != injector.CollectorContainerName {
				continue
			}
			env := slices.Clone(testPodEnv)
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					env = append(env, e.Name+"="+e.Value)
				}
			}
			if err := collectortest.ValidateArgs(t, c.Args, env, files); err != nil {
				t.Errorf("%s: the collector rejects the injected sidecar's settings: %v", filepath.Base(path), err)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Fatalf("only %d injected collectors found in the golden pods", checked)
	}
}

// TestCollectorRejectsBrokenConfig shows that the validation above can fail.
func TestCollectorRejectsBrokenConfig(t *testing.T) {
	out, err := sidecarconfig.Render(sidecarconfig.Default())
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(out), "start_at: beginning", "start_at: middle", 1)
	err = collectortest.Validate(t, []byte(broken), testPodEnv, runFiles(t))
	if err == nil || !strings.Contains(err.Error(), "middle") {
		t.Fatalf("validate of a broken config: %v, want an error about start_at", err)
	}
	// A pod env var the config needs is missing: the collector must refuse.
	err = collectortest.Validate(t, out, testPodEnv[1:], runFiles(t))
	if err == nil {
		t.Fatal("validate passed without NODE_NAME")
	}
}

// TestExporterTypesMatchTheBinary keeps sidecarconfig.ExporterTypes in step with the
// distribution: every listed type is accepted, every built exporter listed.
func TestExporterTypesMatchTheBinary(t *testing.T) {
	out, err := exec.Command(collectortest.Binary(t), "components").Output()
	if err != nil {
		t.Fatalf("components: %v", err)
	}
	var comps struct {
		Exporters []struct{ Name string } `yaml:"exporters"`
	}
	if err := yaml.Unmarshal(out, &comps); err != nil {
		t.Fatal(err)
	}
	if len(comps.Exporters) == 0 {
		t.Fatalf("no exporters in:\n%s", out)
	}
	for _, e := range comps.Exporters {
		if !slices.Contains(sidecarconfig.ExporterTypes, e.Name) {
			t.Errorf("the binary has exporter %q, sidecarconfig.ExporterTypes does not list it", e.Name)
		}
	}

	minimal := map[string]map[string]any{
		"otlp_grpc": {"endpoint": "127.0.0.1:4317"},
		"otlp":      {"endpoint": "127.0.0.1:4317"},
		"otlp_http": {"endpoint": "http://127.0.0.1:4318"},
		"otlphttp":  {"endpoint": "http://127.0.0.1:4318"},
		"debug":     {},
		"file":      {"path": "/tmp/fargate-otel-test.json"},
	}
	for _, typ := range sidecarconfig.ExporterTypes {
		settings, ok := minimal[typ]
		if !ok {
			t.Errorf("no minimal settings for exporter type %q in this test", typ)
			continue
		}
		cfg := sidecarconfig.Default()
		cfg.Signals = []sidecarconfig.Signal{sidecarconfig.Traces}
		cfg.Exporters = []sidecarconfig.Exporter{{ID: typ + "/x", Config: settings}}
		rendered, err := sidecarconfig.Render(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := collectortest.Validate(t, rendered, testPodEnv, nil); err != nil {
			t.Errorf("exporter type %q is listed but the binary rejects it: %v", typ, err)
		}
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	ca, err := pki.NewCA(pki.Spec{CommonName: "fargate-otel test CA", NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM
}
