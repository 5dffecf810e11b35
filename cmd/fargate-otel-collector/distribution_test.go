package main

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	filestorage "github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
)

// TestTheDistributionAddsTheDrain: the drain extension is built in, and
// file_storage is still a storage extension of the same type and config.
func TestTheDistributionAddsTheDrain(t *testing.T) {
	f, err := withDistribution(components)()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Extensions[drain.Type]; !ok {
		t.Fatalf("no %s extension among %v", drain.Type, f.Extensions)
	}
	if f.ExtensionModules[drain.Type] == "" {
		t.Errorf("no module for %s (the components command lists it)", drain.Type)
	}
	st := f.Extensions[fileStorageType]
	cfg, ok := st.CreateDefaultConfig().(*filestorage.Config)
	if !ok {
		t.Fatalf("file_storage's config is a %T", st.CreateDefaultConfig())
	}
	cfg.Directory = t.TempDir()
	cfg.Compaction.Directory = cfg.Directory
	ext, err := st.Create(context.Background(), extension.Settings{ID: component.NewID(fileStorageType), TelemetrySettings: component.TelemetrySettings{Logger: nopLogger()}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ext.(storage.Extension); !ok {
		t.Fatalf("file_storage builds a %T, not a storage extension", ext)
	}
}

// TestKubeletStatsKeepsItsNames: the wrapped kubelet_stats (a bounded
// shutdown) keeps its type and its old name.
func TestKubeletStatsKeepsItsNames(t *testing.T) {
	f, err := withDistribution(components)()
	if err != nil {
		t.Fatal(err)
	}
	ks, ok := f.Receivers[kubeletStatsType]
	if !ok || ks.Type() != kubeletStatsType {
		t.Fatalf("kubelet_stats: %v", ks)
	}
	if a, ok := ks.(interface{ DeprecatedAlias() component.Type }); !ok || a.DeprecatedAlias().String() != "kubeletstats" {
		t.Fatalf("kubelet_stats lost its old name kubeletstats")
	}
}
