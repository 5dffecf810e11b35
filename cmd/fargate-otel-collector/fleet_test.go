//go:build !windows && !noagent

package main

import (
	"io"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
)

// TestTheFleetKeepsTheComponents: with the agent, every receiver and
// exporter is wrapped (figures, the swap's drain) and keeps its type and
// old name, and the fleet_status extension is there.
func TestTheFleetKeepsTheComponents(t *testing.T) {
	t.Setenv("FARGATE_OTEL_FLEET_ENDPOINT", "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp")
	t.Setenv("FARGATE_OTEL_SETTINGS", "{}")
	fl := newFleet(jsonLogger(io.Discard), component.BuildInfo{Version: "0.1.0"}, []string{"--config=fargate:env:FARGATE_OTEL_SETTINGS"})
	if fl == nil {
		t.Fatal("no fleet agent with an endpoint set")
	}
	set := otelcol.CollectorSettings{Factories: withDistribution(components)}
	if opts := fl.prepare(&set); opts.Apply == nil {
		t.Fatal("the config provider does not lay the live settings over the pod's")
	}
	if n := len(set.ConfigProviderSettings.ResolverSettings.ConverterFactories); n != 1 {
		t.Fatalf("%d converters, want the fleet_status one", n)
	}
	f, err := set.Factories()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := withDistribution(components)()
	if err != nil {
		t.Fatal(err)
	}
	aliases := func(fs map[component.Type]component.Factory) map[string]string {
		out := map[string]string{}
		for k, v := range fs {
			a := ""
			if al, ok := v.(interface{ DeprecatedAlias() component.Type }); ok {
				a = al.DeprecatedAlias().String()
			}
			out[k.String()+"="+v.Type().String()] = a
		}
		return out
	}
	for kind, pair := range map[string][2]map[component.Type]component.Factory{
		"receivers": {asFactories(f.Receivers), asFactories(plain.Receivers)},
		"exporters": {asFactories(f.Exporters), asFactories(plain.Exporters)},
	} {
		got, want := aliases(pair[0]), aliases(pair[1])
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", kind, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s %s: alias %q, want %q", kind, k, got[k], v)
			}
		}
	}
	if _, ok := f.Extensions[fleetstatus.Type]; !ok {
		t.Fatal("no fleet_status extension")
	}
}

func asFactories[F component.Factory](m map[component.Type]F) map[component.Type]component.Factory {
	out := map[component.Type]component.Factory{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestNoFleetWithoutAnEndpoint(t *testing.T) {
	t.Setenv("FARGATE_OTEL_FLEET_ENDPOINT", "")
	if newFleet(jsonLogger(io.Discard), component.BuildInfo{}, nil) != nil {
		t.Fatal("a fleet agent without an endpoint")
	}
	t.Setenv("FARGATE_OTEL_FLEET_ENDPOINT", "ws://no-tls:4320/v1/opamp")
	if newFleet(jsonLogger(io.Discard), component.BuildInfo{}, nil) != nil {
		t.Fatal("a fleet agent without TLS")
	}
}
