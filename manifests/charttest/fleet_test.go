package charttest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// TestFleetChart: the fleet server is on by default, as its own Deployment
// with its own least rights; the injector sends sidecars to it; the live
// settings ConfigMap holds the values' exporters and knobs in the format
// the server reads; fleet.enabled=false (or no mode proxy, whose CA
// ConfigMap sidecars verify the server with) removes all of it.
func TestFleetChart(t *testing.T) {
	objs := render(t, nil)
	for _, want := range []string{
		"ServiceAccount/fargate-otel-fleet", "Deployment/fargate-otel-fleet", "Service/fargate-otel-fleet", "Service/fargate-otel-fleet-peers",
		"PodDisruptionBudget/fargate-otel-fleet", "ConfigMap/fargate-otel-fleet-live", "Secret/fargate-otel-fleet-tls",
		"ClusterRole/fargate-otel-fleet", "ClusterRoleBinding/fargate-otel-fleet", "Role/fargate-otel-fleet", "RoleBinding/fargate-otel-fleet",
	} {
		if !slices.Contains(objs.names(), want) {
			t.Errorf("no %s", want)
		}
	}
	cfg := config(t, objs)
	if cfg.Fleet.Endpoint != "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp" || cfg.Fleet.Audience != "fargate-otel-fleet" || cfg.Fleet.CAConfigMap != "fargate-otel-nodeproxy-ca" {
		t.Errorf("injector's fleet settings %+v", cfg.Fleet)
	}

	var d appsv1.Deployment
	objs.get(t, "Deployment", "fargate-otel-fleet", &d)
	c := d.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--listen=:4320", "--local-listen=127.0.0.1:4321", "--server-name=fargate-otel-fleet.fargate-otel.svc", "--peer-service=fargate-otel-fleet-peers", "--live-configmap=fargate-otel-fleet-live"} {
		if !strings.Contains(args, want) {
			t.Errorf("fleet args %q lack %s", args, want)
		}
	}
	// The page's port is not a container port: only a port-forward reaches it.
	for _, p := range c.Ports {
		if p.ContainerPort == 4321 {
			t.Errorf("the page's port is exposed: %+v", p)
		}
	}
	var token *corev1.ServiceAccountTokenProjection
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil && s.ServiceAccountToken.Audience == "fargate-otel-fleet" {
					token = s.ServiceAccountToken
				}
			}
		}
	}
	if token == nil {
		t.Error("the fleet server has no token of audience fargate-otel-fleet for its peers")
	}

	// The live settings, read by the server's own parser.
	var live corev1.ConfigMap
	objs.get(t, "ConfigMap", "fargate-otel-fleet-live", &live)
	l, err := desired.ParseLive(live.Data)
	if err != nil {
		t.Fatalf("the fleet server refuses the chart's live settings: %v\n%v", err, live.Data)
	}
	if len(l.Exporters) != 1 || l.Exporters[0].ID != "otlp_grpc/gateway" || l.LogLevel != "" || l.TraceSampling != nil || l.KubeletStatsInterval != nil {
		t.Errorf("default live settings %+v", l)
	}
	objs = render(t, map[string]any{"fleet": map[string]any{"live": map[string]any{"logLevel": "debug", "traceSampling": 0.5, "kubeletStatsInterval": "1m"}}, "exporters": []any{}})
	objs.get(t, "ConfigMap", "fargate-otel-fleet-live", &live)
	if l, err = desired.ParseLive(live.Data); err != nil {
		t.Fatal(err)
	}
	if l.LogLevel != "debug" || l.TraceSampling == nil || *l.TraceSampling != 0.5 || l.KubeletStatsInterval == nil || time.Duration(*l.KubeletStatsInterval) != time.Minute || len(l.Exporters) != 0 {
		t.Errorf("live settings %+v from %v", l, live.Data)
	}

	// Its rights, exactly.
	var cr rbacv1.ClusterRole
	objs.get(t, "ClusterRole", "fargate-otel-fleet", &cr)
	var role rbacv1.Role
	objs.get(t, "Role", "fargate-otel-fleet", &role)
	got := fmt.Sprint(cr.Rules, role.Rules)
	want := fmt.Sprint([]rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create"}},
	}, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"fargate-otel-fleet-live"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list"}},
	})
	if got != want {
		t.Errorf("fleet rights\n  got:  %s\n  want: %s", got, want)
	}

	for name, values := range map[string]map[string]any{
		"fleet.enabled=false": {"fleet": map[string]any{"enabled": false}},
		"no mode proxy":       {"kubeletStats": map[string]any{"mode": "off", "allowedModes": []string{"off"}}},
	} {
		objs := render(t, values)
		for _, n := range objs.names() {
			if strings.Contains(n, "fargate-otel-fleet") {
				t.Errorf("%s: the chart renders %s", name, n)
			}
		}
		if cfg := config(t, objs); cfg.Fleet.Endpoint != "" {
			t.Errorf("%s: sidecars are sent to the fleet at %s", name, cfg.Fleet.Endpoint)
		}
	}
}

// TestFleetLiveExportersAreTheInjectors: the exporters the fleet sends
// every sidecar are those the injector gives a new pod, whatever the
// values: with gateway.enabled and the default exporters both are the
// gateway's Service (the values' literal default would send every sidecar
// to a placeholder address, found by the e2e's gateway scenario).
func TestFleetLiveExportersAreTheInjectors(t *testing.T) {
	own := []any{map[string]any{"id": "otlp_http/vendor", "config": map[string]any{"endpoint": "https://otlp.vendor.example"}, "signals": []any{"logs"}}}
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string // the endpoint of the one exporter; "" for none
	}{
		{"defaults", nil, "otel-gateway.opentelemetry.svc:4317"},
		{"gateway, default exporters", withGateway(nil), "fargate-otel-gateway.fargate-otel.svc:4317"},
		{"gateway, exporters []", withGateway(map[string]any{"exporters": []any{}}), "fargate-otel-gateway.fargate-otel.svc:4317"},
		{"gateway, own exporters", withGateway(map[string]any{"exporters": own}), "https://otlp.vendor.example"},
		{"no exporters", map[string]any{"exporters": []any{}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.values)
			var live corev1.ConfigMap
			objs.get(t, "ConfigMap", "fargate-otel-fleet-live", &live)
			l, err := desired.ParseLive(live.Data)
			if err != nil {
				t.Fatalf("the fleet server refuses the chart's live settings: %v\n%v", err, live.Data)
			}
			got, err := json.Marshal(l.Exporters)
			if err != nil {
				t.Fatal(err)
			}
			var fromInjector []sidecarconfig.Exporter
			for _, e := range config(t, objs).Exporters {
				x := sidecarconfig.Exporter{ID: e.ID, Config: e.Config}
				for _, sig := range e.Signals {
					x.Signals = append(x.Signals, sidecarconfig.Signal(sig))
				}
				fromInjector = append(fromInjector, x)
			}
			want, err := json.Marshal(fromInjector)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("live exporters %s\nthe injector's     %s", got, want)
			}
			endpoint := ""
			if len(l.Exporters) == 1 {
				endpoint = fmt.Sprint(l.Exporters[0].Config["endpoint"])
			}
			if endpoint != tc.want {
				t.Errorf("live exporters %s: want one to %q", got, tc.want)
			}
		})
	}
}
