package main

import (
	"slices"
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
