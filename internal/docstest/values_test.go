package docstest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var resourceKeys = map[string]bool{"resources": true, "minRequests": true, "initResources": true}

// valueKeys returns the keys of a values tree down to depth levels, as
// dotted paths (gateway, gateway.tailSampling, ...).
func valueKeys(tree map[string]any, prefix string, depth int) []string {
	var out []string
	for k, v := range tree {
		path := prefix + k
		out = append(out, path)
		// Below a ResourceRequirements the keys are Kubernetes' own.
		if sub, ok := v.(map[string]any); ok && depth > 1 && !resourceKeys[k] {
			out = append(out, valueKeys(sub, path+".", depth-1)...)
		}
	}
	sort.Strings(out)
	return out
}

// TestChartPageNamesEveryValue fails when docs/chart.md leaves out a key of
// the chart's values.yaml (three levels deep: gateway.tailSampling.policies,
// destinations.aws.region): each top-level key must be in a code span that
// starts with it, and every deeper key's name must be on the page.
// Resources are Kubernetes' own, and not gone into.
func TestChartPageNamesEveryValue(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "manifests", "charts", "fargate-otel", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(root, "docs", "chart.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(page)
	keys := valueKeys(values, "", 3)
	if len(keys) < 80 {
		t.Fatalf("only %d keys read from values.yaml", len(keys))
	}
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) == 1 {
			if !strings.Contains(text, "`"+k) {
				t.Errorf("docs/chart.md does not name the value `%s` (a row of the Values table)", k)
			}
			continue
		}
		if name := parts[len(parts)-1]; !strings.Contains(text, name) {
			t.Errorf("docs/chart.md does not name the value %s (%q appears nowhere on the page)", k, name)
		}
	}
}
