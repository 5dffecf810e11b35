package collectorconfig

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/pki"
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
// builds every pipeline, on each rendered variant.
func TestCollectorValidatesEveryVariant(t *testing.T) {
	files := runFiles(t)
	for name, cfg := range variants() {
		t.Run(name, func(t *testing.T) {
			out, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := collectortest.Validate(t, out, testPodEnv, files); err != nil {
				t.Fatalf("the collector rejects the %s config: %v\n%s", name, err, out)
			}
		})
	}
}

// TestCollectorRejectsBrokenConfig shows that the validation above can fail.
func TestCollectorRejectsBrokenConfig(t *testing.T) {
	out, err := Render(Default())
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

// TestExporterTypesMatchTheBinary keeps ExporterTypes in step with the
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
		if !slices.Contains(ExporterTypes, e.Name) {
			t.Errorf("the binary has exporter %q, ExporterTypes does not list it", e.Name)
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
	for _, typ := range ExporterTypes {
		settings, ok := minimal[typ]
		if !ok {
			t.Errorf("no minimal settings for exporter type %q in this test", typ)
			continue
		}
		cfg := Default()
		cfg.Signals = []Signal{Traces}
		cfg.Exporters = []Exporter{{ID: typ + "/x", Config: settings}}
		rendered, err := Render(cfg)
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
