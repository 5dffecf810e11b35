package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
)

// TestComponents: the distribution has every component the chart's config
// (templates/_gateway.tpl) and docs/gateway.md name, under the names the
// config uses, and each is recorded with the release the manifest pins.
func TestComponents(t *testing.T) {
	f, err := components()
	if err != nil {
		t.Fatal(err)
	}
	has := func(kind string, got map[component.Type]string, want ...string) {
		t.Helper()
		for _, w := range want {
			mod, ok := got[component.MustNewType(w)]
			if !ok {
				var names []string
				for k := range got {
					names = append(names, k.String())
				}
				slices.Sort(names)
				t.Errorf("no %s %s among %v", kind, w, names)
				continue
			}
			if !slices.Contains([]string{"v0.159.0", "v1.65.0"}, mod[len(mod)-len("v0.159.0"):]) {
				t.Errorf("%s %s is %s: keep every component at the builder's release", kind, w, mod)
			}
		}
	}
	has("receiver", f.ReceiverModules, "otlp")
	has("processor", f.ProcessorModules, "memory_limiter", "batch", "resource", "attributes", "transform", "filter", "tail_sampling")
	has("connector", f.ConnectorModules, "span_metrics")
	has("exporter", f.ExporterModules, "load_balancing", "otlp_grpc", "otlp_http", "prometheus_remote_write", "debug")
	has("extension", f.ExtensionModules, "sigv4auth", "health_check", "file_storage")
}

// TestSameReleaseAsTheSidecar: every collector module the two
// distributions share is at one version in both go.mod files (a component
// that needs a newer release moves both).
func TestSameReleaseAsTheSidecar(t *testing.T) {
	read := func(path string) map[string]string {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(f) >= 2 && (strings.HasPrefix(f[0], "go.opentelemetry.io/collector") || strings.HasPrefix(f[0], "github.com/open-telemetry/opentelemetry-collector-contrib/")) {
				out[f[0]] = f[1]
			}
		}
		return out
	}
	gw, sc := read("go.mod"), read("../fargate-otel-collector/go.mod")
	shared := 0
	for mod, v := range gw {
		if w, ok := sc[mod]; ok {
			shared++
			if v != w {
				t.Errorf("%s: %s here, %s in the sidecar's distribution: keep both at one release", mod, v, w)
			}
		}
	}
	if shared < 20 {
		t.Errorf("only %d collector modules in common with the sidecar's go.mod: is ../fargate-otel-collector/go.mod read?", shared)
	}
}
