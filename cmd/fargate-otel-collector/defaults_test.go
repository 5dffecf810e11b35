package main

import (
	"slices"
	"testing"

	"go.opentelemetry.io/collector/featuregate"
)

func TestDefaultGatesAreOn(t *testing.T) {
	on := map[string]bool{}
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) { on[g.ID()] = g.IsEnabled() })
	for _, id := range defaultGates {
		if !on[id] {
			t.Errorf("feature gate %s is off; this distribution turns it on", id)
		}
	}
}

// TestComponents pins the component set that the rendered configs use.
func TestComponents(t *testing.T) {
	f, err := components()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"receivers":  {"otlp", "file_log", "kubelet_stats"},
		"processors": {"memory_limiter", "batch", "resource"},
		"exporters":  {"otlp_grpc", "otlp_http", "debug", "file"},
		"extensions": {"health_check", "file_storage"},
	}
	got := map[string][]string{}
	for typ := range f.Receivers {
		got["receivers"] = append(got["receivers"], typ.String())
	}
	for typ := range f.Processors {
		got["processors"] = append(got["processors"], typ.String())
	}
	for typ := range f.Exporters {
		got["exporters"] = append(got["exporters"], typ.String())
	}
	for typ := range f.Extensions {
		got["extensions"] = append(got["extensions"], typ.String())
	}
	for kind, types := range want {
		for _, typ := range types {
			if !slices.Contains(got[kind], typ) {
				t.Errorf("%s: %s missing (have %v)", kind, typ, got[kind])
			}
		}
	}
	// resourcedetection pulls in every cloud SDK (~49 MB): keep it out.
	for _, typ := range got["processors"] {
		if typ == "resourcedetection" {
			t.Error("resourcedetection is built in; the Downward API gives the pod's identity")
		}
	}
}
