package scenario

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSplitRef(t *testing.T) {
	for _, tc := range []struct{ ref, repo, tag string }{
		{"ghcr.io/fargate-otel/fargate-otel-tee:0.1.0", "ghcr.io/fargate-otel/fargate-otel-tee", "0.1.0"},
		{"10.200.0.1:5000/demo/app:3ad366a11cdd", "10.200.0.1:5000/demo/app", "3ad366a11cdd"},
		{"10.200.0.1:5000/demo/app", "10.200.0.1:5000/demo/app", "latest"},
		{"app", "app", "latest"},
	} {
		if repo, tag := splitRef(tc.ref); repo != tc.repo || tag != tc.tag {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", tc.ref, repo, tag, tc.repo, tc.tag)
		}
	}
}

// The values the e2e test and make demo install must stay valid for the
// chart (its values.schema.json is strict) and reach the injector: checked
// here with `helm template`, long before an e2e run would say so.
func TestChartValuesRender(t *testing.T) {
	helmBin, err := FindHelm()
	if err != nil {
		t.Fatal(err)
	}
	values := ChartValues(ValuesOptions{
		Images: ProductImages{
			Tee: "reg.example:5000/x/fargate-otel-tee:1", Collector: "reg.example:5000/x/fargate-otel-collector:2",
			Injector: "reg.example:5000/x/fargate-otel-injector:3", NodeProxy: "reg.example:5000/x/fargate-otel-nodeproxy:4",
			Fleet: "reg.example:5000/x/fargate-otel-fleet:5",
		},
		ClusterName:        "e2e",
		SinkEndpoint:       SinkEndpoint("otel-gateway"),
		InsecureRegistries: []string{"10.200.0.1:5000"},
		AllowDirect:        true,
		KubeletStatsEvery:  5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := Helm{Bin: helmBin, Kubeconfig: "/dev/null"}.Template(ctx, values)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`scope: "all"`,
		"otlp-sink.otel-gateway.svc:4317",
		"--insecure-registries=10.200.0.1:5000",
		`tee: "reg.example:5000/x/fargate-otel-tee:1"`,
		`collector: "reg.example:5000/x/fargate-otel-collector:2"`,
		`image: "reg.example:5000/x/fargate-otel-injector:3"`,
		`image: "reg.example:5000/x/fargate-otel-nodeproxy:4"`,
		`image: "reg.example:5000/x/fargate-otel-fleet:5"`,
		"interval: 5s",
		"direct",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the rendered chart lacks %q", want)
		}
	}
}

// The gateway variant: the sidecars' exporter becomes the gateway's
// Service, the gateway sends to the sink.
func TestGatewayValuesRender(t *testing.T) {
	helmBin, err := FindHelm()
	if err != nil {
		t.Fatal(err)
	}
	values := ChartValues(ValuesOptions{
		Images: ProductImages{
			Tee: "reg.example:5000/x/fargate-otel-tee:1", Collector: "reg.example:5000/x/fargate-otel-collector:2",
			Injector: "reg.example:5000/x/fargate-otel-injector:3", NodeProxy: "reg.example:5000/x/fargate-otel-nodeproxy:4",
			Gateway: "reg.example:5000/x/fargate-otel-gateway:5", Fleet: "reg.example:5000/x/fargate-otel-fleet:6",
		},
		SinkEndpoint: SinkEndpoint("otel-gateway"),
		Gateway:      true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := Helm{Bin: helmBin, Kubeconfig: "/dev/null"}.Template(ctx, values)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"endpoint: fargate-otel-gateway.fargate-otel.svc:4317",
		"endpoint: otlp-sink.otel-gateway.svc:4317",
		`image: "reg.example:5000/x/fargate-otel-gateway:5"`,
		"kind: HorizontalPodAutoscaler",
		"type: always_sample",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the rendered chart lacks %q", want)
		}
	}
}
