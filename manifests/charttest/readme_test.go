package charttest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var yamlBlockRE = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestREADMEValuesRender: every values file the README shows renders with
// the chart (the schema included), and the gateway one sends the sidecars
// to the gateway while the other keeps its own exporters.
func TestREADMEValuesRender(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlockRE.FindAllStringSubmatch(string(raw), -1)
	if len(blocks) < 2 {
		t.Fatalf("the README shows %d values files, want the two of its knobs", len(blocks))
	}
	for _, b := range blocks {
		var values map[string]any
		if err := yaml.Unmarshal([]byte(b[1]), &values); err != nil {
			t.Fatalf("a README values file does not read: %v\n%s", err, b[1])
		}
		cfg := config(t, render(t, values))
		want := "otel-gateway.observability.svc:4317"
		if _, ok := values["gateway"]; ok {
			want = "fargate-otel-gateway.fargate-otel.svc:4317"
		}
		if len(cfg.Exporters) != 1 || cfg.Exporters[0].Config["endpoint"] != want {
			t.Errorf("with the README's values\n%s\nthe sidecars export to %+v, want %s", strings.TrimSpace(b[1]), cfg.Exporters, want)
		}
	}
}
