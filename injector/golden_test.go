package injector

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase is one pod of testdata/mutate and how it is injected.
type goldenCase struct {
	name   string
	cfg    func(*Config)
	images Images
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "deployment-pod", cfg: func(c *Config) { c.ClusterName = "prod-eu" }},
		{name: "deployment-pod", cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsDirect }},
		{name: "deployment-pod", cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsOff }},
		{name: "deployment-pod", cfg: func(c *Config) { c.NativeSidecars = false }},
		{name: "job-pod"},
		{name: "job-pod", cfg: func(c *Config) { c.NativeSidecars = false }},
		{name: "native-sidecars"},
		{name: "no-command-resolved", images: Images{
			"registry.example.com/app:1": {Config: &ImageConfig{
				Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"serve", "--home=$HOME"}, Digest: "sha256:1111"}},
			"registry.example.com/worker:1": {Config: &ImageConfig{
				Entrypoint: []string{"/worker"}, Cmd: []string{"--queue=default"}, Digest: "sha256:2222"}},
		}},
		{name: "no-command-unresolved", images: unresolved},
		{name: "several-containers"},
		{name: "security-contexts"},
		{name: "recent-fields"},
		{name: "kubelet-direct-automount-off", cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsDirect }},
		{name: "exporters-configmap", cfg: func(c *Config) {
			c.ReferencedExporters = &ReferencedExporters{
				Ref:  annotations.ConfigMapRef{Name: "team-exporters", Key: annotations.DefaultExportersKey},
				Data: "- id: otlp_http/vendor\n  config:\n    endpoint: https://otlp.vendor.example.com\n  signals: [traces, logs]\n",
			}
		}},
		{name: "not-fargate"},
		{name: "not-fargate", cfg: func(c *Config) { c.Scope = ScopeAll }},
		{name: "crosses-step"},
		{name: "crosses-step", cfg: func(c *Config) { c.FargateSizing = "fixed" }},
		{name: "conflict"},
		{name: "deployment-pod", cfg: withFleet},
		{name: "exporters-configmap", cfg: func(c *Config) {
			withFleet(c)
			c.ReferencedExporters = &ReferencedExporters{
				Ref:  annotations.ConfigMapRef{Name: "team-exporters", Key: annotations.DefaultExportersKey},
				Data: "- id: otlp_http/vendor\n  config:\n    endpoint: https://otlp.vendor.example.com\n  signals: [traces, logs]\n",
			}
		}},
		{name: "log-parsing"},
		{name: "no-command-unresolved", cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsDirect }, images: unresolved},
		{name: "no-command-unresolved", cfg: func(c *Config) { c.NativeSidecars = false }, images: unresolved},
		{name: "log-source", cfg: func(c *Config) { c.Namespace.NodeProxyCA = Present }},
		{name: "log-source-job"},
	}
}

var unresolved = Images{
	"registry.example.com/broken:1": {Err: errors.New("GET https://registry.example.com/v2/broken/manifests/1: UNAUTHORIZED; add an imagePullSecret")},
}

// variant names a case's golden file: the pod's name plus what the config changed.
var variantNames = map[int]string{1: "direct", 2: "kubelet-off", 3: "no-native-sidecars", 5: "no-native-sidecars", 15: "scope-all", 17: "fixed", 19: "fleet", 20: "fleet",
	22: "direct", 23: "no-native-sidecars"}

// TestMutateGolden injects each pod of testdata/mutate and compares the
// result (pod, warnings, skip) with its golden file. The collector config
// is summarised in the goldens (TestCollectorConfigIsRendered checks the
// full text), so that a change of the renderer does not churn every golden.
func TestMutateGolden(t *testing.T) {
	for i, gc := range goldenCases() {
		golden := gc.name
		if v, ok := variantNames[i]; ok {
			golden += "." + v
		}
		t.Run(golden, func(t *testing.T) {
			pod := readPod(t, filepath.Join("testdata", "mutate", gc.name+".yaml"))
			cfg := DefaultConfig()
			if gc.cfg != nil {
				gc.cfg(&cfg)
			}
			res := Mutate(pod, cfg, gc.images)
			checkInvariants(t, pod, res, cfg, gc.images)
			got := renderResult(t, res)
			compareGolden(t, filepath.Join("testdata", "mutate", golden+".golden.yaml"), got)
		})
	}
}

func withFleet(c *Config) {
	c.Fleet.Endpoint = "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp"
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &pod
}

// renderResult prints a result for a golden file; the collector's settings
// appear as they are in the pod spec.
func renderResult(t *testing.T, res Result) []byte {
	t.Helper()
	pod := res.Pod.DeepCopy()
	out := struct {
		Injected bool        `json:"injected"`
		Skip     SkipReason  `json:"skip,omitempty"`
		Warnings []string    `json:"warnings,omitempty"`
		Pod      *corev1.Pod `json:"pod"`
	}{res.Injected, res.Skip, res.Warnings, pod}
	b, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("# Generated by TestMutateGolden (go test ./injector -run TestMutateGolden -update).\n"), b...)
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (run go test ./injector -update and review the diff):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return ""
}

// TestCollectorConfigIsRendered checks that the env var holds exactly what
// sidecarconfig.Render gives for the config Mutate derives.
func TestCollectorConfigIsRendered(t *testing.T) {
	pod := readPod(t, filepath.Join("testdata", "mutate", "deployment-pod.yaml"))
	cfg := DefaultConfig()
	cfg.ClusterName = "prod-eu"
	res := Mutate(pod, cfg, nil)
	rendered, err := CollectorConfigOf(res.Pod)
	if err != nil {
		t.Fatal(err)
	}
	got := string(rendered)
	cc, _, err := CollectorConfig(pod, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cc.MemoryLimitMiB = 256
	want, err := sidecarconfig.Render(cc)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the pod's settings render differently from sidecarconfig.Render:\n%s", lineDiff(string(want), got))
	}
	if !regexp.MustCompile(`(?m)^\s+value: prod-eu$`).MatchString(got) {
		t.Errorf("cluster name missing from the rendered config")
	}
}
