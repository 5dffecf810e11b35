//go:build !windows

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fargate-otel/fargate-otel/fleetagent/agent"
)

func TestConfigURIs(t *testing.T) {
	got := configURIs([]string{"--config=/etc/a.yaml", "--feature-gates=x", "--config", "yaml:b: 1", "-config=c.yaml", "validate"})
	want := []string{"/etc/a.yaml", "yaml:b: 1", "c.yaml"}
	if !slices.Equal(got, want) {
		t.Fatalf("configURIs = %q, want %q", got, want)
	}
}

func TestNoFleetEnvNoAgent(t *testing.T) {
	t.Setenv(agent.EndpointEnv, "")
	if f := newFleet(jsonLogger(os.Stderr), build(), nil); f != nil {
		t.Fatal("an agent without the fleet env")
	}
	// A wrong endpoint: no agent either, and the gateway runs.
	t.Setenv(agent.EndpointEnv, "http://fleet:4320")
	if f := newFleet(jsonLogger(os.Stderr), build(), nil); f != nil {
		t.Fatal("an agent with a wrong endpoint")
	}
}

// The effective config is the --config file as written (env references
// intact, so every replica reports the same hash), merged in order, and
// without the fleet_status extension the converter after it adds.
func TestEffectiveConfigIsTheChartsUnexpanded(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${env:POD_IP}:4317\nexporters:\n  otlp_grpc:\n    headers:\n      x-api-key: ${env:FARGATE_OTEL_OTLP_HEADER_0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POD_IP", "10.0.0.7")
	t.Setenv("FARGATE_OTEL_OTLP_HEADER_0", "s3cret")
	t.Setenv(agent.EndpointEnv, "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp")
	args := []string{"--config=" + file, "--config=yaml:processors::batch: {}"}
	changes := 0
	f := newFleet(jsonLogger(os.Stderr), build(), args)
	if f == nil {
		t.Fatal("no agent with the fleet env")
	}
	f.config.onChange = func() { changes++ }
	set := settings()
	f.prepare(&set)
	rs := set.ConfigProviderSettings.ResolverSettings
	rs.URIs = configURIs(args)
	rs.DefaultScheme = "env"
	resolve := func() *confmap.Conf {
		t.Helper()
		r, err := confmap.NewResolver(rs)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := r.Resolve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return conf
	}
	conf := resolve()
	if got := conf.Get("receivers::otlp::protocols::grpc::endpoint"); got != "10.0.0.7:4317" {
		t.Fatalf("the collector runs endpoint %v: the capture must not change what it runs", got)
	}
	if got, _ := conf.Get("service::extensions").([]any); !slices.Contains(got, any("fleet_status")) {
		t.Fatalf("no fleet_status extension in the running config: %v", got)
	}
	eff := f.config.effective()
	y := string(eff.YAML)
	for _, want := range []string{"${env:POD_IP}:4317", "${env:FARGATE_OTEL_OTLP_HEADER_0}", "batch: {}"} {
		if !strings.Contains(y, want) {
			t.Errorf("effective config lacks %q:\n%s", want, y)
		}
	}
	for _, not := range []string{"10.0.0.7", "s3cret", "fleet_status"} {
		if strings.Contains(y, not) {
			t.Errorf("effective config has %q:\n%s", not, y)
		}
	}
	if eff.Hash == "" || changes != 1 {
		t.Fatalf("hash %q after %d changes", eff.Hash, changes)
	}
	// Another replica (another pod IP) reports the same config.
	t.Setenv("POD_IP", "10.0.0.8")
	resolve()
	if got := f.config.effective().Hash; got != eff.Hash || changes != 1 {
		t.Fatalf("hash %q (was %q) after %d changes: the pod's IP is not the config", got, eff.Hash, changes)
	}
	// The file changes: another hash.
	if err := os.WriteFile(file, []byte("receivers:\n  otlp: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resolve()
	if got := f.config.effective().Hash; got == eff.Hash || changes != 2 {
		t.Fatalf("hash %q (was %q) after %d changes: a new config is a new hash", got, eff.Hash, changes)
	}
}

func TestExportersAreCounted(t *testing.T) {
	t.Setenv(agent.EndpointEnv, "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp")
	f := newFleet(jsonLogger(os.Stderr), build(), nil)
	set := settings()
	f.prepare(&set)
	fs, err := set.Factories()
	if err != nil {
		t.Fatal(err)
	}
	orig, err := components()
	if err != nil {
		t.Fatal(err)
	}
	for typ, e := range fs.Exporters {
		if fmt.Sprintf("%p", e) == fmt.Sprintf("%p", orig.Exporters[typ]) {
			t.Errorf("exporter %s is not counted", typ)
		}
		if e.Type() != orig.Exporters[typ].Type() || e.TracesStability() != orig.Exporters[typ].TracesStability() {
			t.Errorf("exporter %s changed type or stability", typ)
		}
	}
	if _, ok := fs.Extensions[component.MustNewType("fleet_status")]; !ok {
		t.Error("no fleet_status extension")
	}
}

func build() component.BuildInfo {
	return component.BuildInfo{Command: "fargate-otel-gateway", Version: "0.1.0"}
}

// settings are main.go's.
func settings() otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: build(),
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			ProviderFactories: []confmap.ProviderFactory{envprovider.NewFactory(), fileprovider.NewFactory(), yamlprovider.NewFactory()},
		}},
	}
}
