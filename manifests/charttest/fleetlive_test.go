package charttest

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/fleet/desired"
)

// TestFleetLiveExportersAreTheSidecars': the live settings the fleet sends
// every sidecar of the cluster's exporters hold the exporters the injector
// gives them. With the gateway on and `exporters` at the chart's default,
// that is the gateway's Service: live settings with the chart's default
// gateway address instead would move every running sidecar off the gateway.
func TestFleetLiveExportersAreTheSidecars(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults":                {},
		"gateway on, defaults":    withGateway(nil),
		"gateway on, [] exported": withGateway(map[string]any{"exporters": []any{}}),
		"gateway on, user's own": withGateway(map[string]any{"exporters": []map[string]any{
			{"id": "otlp_http/vendor", "config": map[string]any{"endpoint": "https://otlp.example.com"}}}}),
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, values)
			injected := config(t, objs).Exporters
			var cm corev1.ConfigMap
			objs.get(t, "ConfigMap", "fargate-otel-fleet-live", &cm)
			live, err := desired.ParseLive(cm.Data)
			if err != nil {
				t.Fatalf("the fleet server refuses the chart's live settings: %v\n%v", err, cm.Data)
			}
			if len(live.Exporters) != len(injected) {
				t.Fatalf("live exporters %+v, the injector's %+v", live.Exporters, injected)
			}
			for i, e := range live.Exporters {
				if e.ID != injected[i].ID || e.Config["endpoint"] != injected[i].Config["endpoint"] {
					t.Errorf("live exporter %d is %s to %v, the injector gives sidecars %s to %v",
						i, e.ID, e.Config["endpoint"], injected[i].ID, injected[i].Config["endpoint"])
				}
			}
		})
	}
}
