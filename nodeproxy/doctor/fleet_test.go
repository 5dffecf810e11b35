package doctor

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

func TestJudgeFleet(t *testing.T) {
	pod := func(name string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}}
	}
	ok := func(name string) api.Agent {
		return api.Agent{UID: "uid-" + name, Pod: name, Connected: true, Health: api.Health{Reported: true, Healthy: true}}
	}
	sick := ok("b")
	sick.Health = api.Health{Reported: true, Healthy: false, LastError: "exporter down"}
	old := ok("c")
	old.Stale = []string{api.StaleVersion}
	gone := ok("d")
	gone.Connected = false
	// A gateway replica of another release, whose pod has the fleet env:
	// not a stale sidecar.
	gw := ok("gw")
	gw.Kind, gw.Stale = api.KindGateway, []string{api.StaleVersion}
	for _, c := range []struct {
		name   string
		agents []api.Agent
		status Status
		detail string
	}{
		{"all good", []api.Agent{ok("a"), ok("b"), ok("c"), ok("d")}, OK, "4 sidecars connected, healthy and up to date"},
		{"a gateway is not a sidecar", []api.Agent{ok("a"), ok("b"), ok("c"), ok("d"), gw}, OK, "4 sidecars connected, healthy and up to date"},
		{"unhealthy", []api.Agent{ok("a"), sick, ok("c"), ok("d")}, Fail, "unhealthy: b (exporter down)"},
		{"stale", []api.Agent{ok("a"), ok("b"), old, ok("d")}, Warn, "stale: c (version)"},
		{"disconnected", []api.Agent{ok("a"), ok("b"), ok("c"), gone}, Warn, "not connected: d"},
		{"missing", []api.Agent{ok("a"), ok("b"), ok("c")}, Warn, "not connected: d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pods := []corev1.Pod{pod("a"), pod("b"), pod("c"), pod("d")}
			if len(c.agents) == 5 {
				pods = append(pods, pod("gw"))
			}
			detail, status, fix := judgeFleet(pods, api.Fleet{Agents: c.agents})
			if status != c.status || !strings.Contains(detail, c.detail) || (status != OK && fix == "") {
				t.Errorf("got %s %q (fix %q), want %s %q", status, detail, fix, c.status, c.detail)
			}
		})
	}
	if ns := endpointNamespace("wss://fargate-otel-fleet.observability.svc:4320/v1/opamp"); ns != "observability" {
		t.Errorf("namespace %q", ns)
	}
}
