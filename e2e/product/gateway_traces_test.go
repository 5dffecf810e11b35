//go:build e2e

package product

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
)

// The gateway's trace path (docs/gateway.md): the headless Service of the
// sampling tiers, the port they listen on, and what its DNS name is to the
// routing tiers' resolver.
const (
	gatewaySampling     = "fargate-otel-gateway-sampling"
	gatewaySamplingPort = 4417
	gatewaySelector     = "app.kubernetes.io/component=gateway"
)

// The app's -otlp-log lines about its traces.
var (
	sentTrace   = regexp.MustCompile(`^otlp: sent trace ([0-9a-f]{32}) \(line (\d+)\)$`)
	unsentTrace = regexp.MustCompile(`^otlp: trace ([0-9a-f]{32}) of line (\d+) not sent`)
)

// The demo app's trace: a root span and one child.
const (
	rootSpan  = "demo-app.work"
	childSpan = "demo-app.step"
)

// 9: the traces of the gateway scenario's app (testGateway: one every 50
// lines, across the deletion of a gateway pod) take the gateway's trace
// path on the cluster: the sidecar sends them to the gateway's Service;
// each replica's routing tier (the load_balancing exporter, whose DNS
// resolver asks for the headless Service fargate-otel-gateway-sampling)
// sends every span of a trace to one replica's sampling tier (otlp/sampling,
// tail_sampling), which exports to the sink.
//
// The app sends about a dozen traces: the chart's errors-plus-10% policy
// would keep none of them in about one run in four. The scenario's values
// keep every trace instead (always_sample, scenario.GatewayValues), which
// is checked here in the config the replicas run; then at least one of the
// traces the app says it sent must arrive, and every trace that arrived
// must have both its spans and the pod's identity. A trace lost with the
// deleted replica (its sampling tier holds traces for the decision wait)
// is counted, not a failure.
func testGatewayTraces(ctx context.Context, t *testing.T, e *env) {
	pod := e.gatewayApp
	if pod == nil {
		t.Fatal("the gateway scenario's app did not get its lines through the gateway (see the subtest before)")
	}
	if sink := scenario.SinkEndpoint(nsGateway); strings.Contains(collectorConfig(pod), sink) {
		t.Errorf("the app's sidecar exports to the sink (%s) itself, not only to the gateway:\n%s", sink, collectorConfig(pod))
	}
	checkGatewayTraceConfig(ctx, t, e)
	ips := checkSamplingService(ctx, t, e)

	// What the app sent, once it has finished.
	waitSucceeded(ctx, t, e, nsLines, pod.Name)
	out, err := e.c.Kubectl(ctx, "-n", nsLines, "logs", pod.Name, "-c", scenario.AppName)
	if err != nil {
		t.Fatal(err)
	}
	sent, unsent := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		if m := sentTrace.FindStringSubmatch(l); m != nil {
			sent[m[1]], _ = strconv.Atoi(m[2])
		} else if m := unsentTrace.FindStringSubmatch(l); m != nil {
			unsent[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	if len(sent) == 0 {
		t.Fatalf("the app says it sent no trace to its sidecar (%d not sent); its log:\n%s", len(unsent), lastLines(string(out)))
	}

	// Every trace it sent arrives whole, or the deadline passes: then what
	// arrived is judged (one may have been lost with the deleted replica).
	f := sinkapi.Filter{Namespace: nsLines, Pod: pod.Name}
	var traces map[string]*arrivedTrace
	waitErr := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		spans, err := e.sink.Spans(ctx, f)
		if err != nil {
			return err
		}
		traces = groupTraces(spans)
		var missing []string
		for id, line := range sent {
			if tr := traces[id]; tr == nil || !tr.whole() {
				missing = append(missing, fmt.Sprintf("%s (line %d): %s", id, line, tr))
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("%d of the %d traces the app sent are not whole at the sink: %s", len(missing), len(sent), strings.Join(missing, "; "))
		}
		return nil
	})
	if len(traces) == 0 {
		t.Fatalf("none of the %d traces the app sent arrived at the sink: %v", len(sent), waitErr)
	}
	kept, repeated := 0, 0
	for _, id := range slices.Sorted(maps.Keys(traces)) {
		tr := traces[id]
		line, ok := sent[id]
		if !ok {
			line, ok = unsent[id]
		}
		if !ok {
			t.Errorf("trace %s at the sink (%s) is none the app sent", id, tr)
			continue
		}
		if !tr.whole() {
			t.Errorf("trace %s of line %d arrived in part: %s", id, line, tr)
		} else if _, ok := sent[id]; ok {
			kept++
		}
		if tr.line != strconv.Itoa(line) {
			t.Errorf("trace %s: its root span says line %q, the app sent it for line %d", id, tr.line, line)
		}
		repeated += tr.repeats()
		for _, sp := range tr.spans {
			for k, v := range map[string]string{
				sinkapi.AttrService: "demo-app", "k8s.pod.name": pod.Name, "k8s.pod.uid": string(pod.UID),
				"k8s.namespace.name": nsLines, "k8s.node.name": e.c.NodeName, "k8s.cluster.name": "e2e",
			} {
				if got := fmt.Sprint(sp.Resource[k]); got != v {
					t.Errorf("trace %s, span %s: resource %s = %q, want %q", id, sp.Name, k, got, v)
				}
			}
		}
	}
	if kept == 0 {
		t.Errorf("none of the %d traces the app sent arrived whole", len(sent))
	}
	lost := ""
	if waitErr != nil {
		lost = "; not whole at the sink after the deadline: " + waitErr.Error()
	}
	t.Logf("the app sent %d traces (%d failed to send); %d arrived whole through the gateway, with the pod's identity; spans repeated: %d%s",
		len(sent), len(unsent), kept, repeated, lost)

	// The sampling tiers of the live replicas took spans and kept traces:
	// this app's (the replica that lived throughout gets about half of them
	// by their IDs) and those of the older sidecars, which the fleet's live
	// settings moved to the gateway with the upgrade.
	var spans, sampled float64
	var per []string
	for _, ip := range ips {
		s, err := gatewayMetric(ctx, ip, "otelcol_receiver_accepted_spans", `receiver="otlp/sampling"`)
		if err != nil {
			t.Fatal(err)
		}
		k, err := gatewayMetric(ctx, ip, "otelcol_processor_tail_sampling_global_count_traces_sampled", `sampled="true"`)
		if err != nil {
			t.Fatal(err)
		}
		spans, sampled = spans+s, sampled+k
		per = append(per, fmt.Sprintf("%s: %v spans, %v traces kept", ip, s, k))
	}
	if spans == 0 || sampled == 0 {
		t.Errorf("the sampling tiers of the live gateway replicas took %v spans and kept %v traces (%s)", spans, sampled, strings.Join(per, "; "))
	}
	t.Logf("sampling tiers of the live replicas: %s", strings.Join(per, "; "))
}

// checkGatewayTraceConfig: the replicas run the trace path described
// above, and keep every trace (what makes "at least one arrives" sound).
func checkGatewayTraceConfig(ctx context.Context, t *testing.T, e *env) {
	t.Helper()
	cm, err := e.c.Client.CoreV1().ConfigMaps(scenario.ReleaseNamespace).Get(ctx, scenario.GatewayDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Exporters struct {
			LB struct {
				RoutingKey string `json:"routing_key"`
				Resolver   struct {
					DNS struct {
						Hostname string `json:"hostname"`
						Port     string `json:"port"`
					} `json:"dns"`
				} `json:"resolver"`
			} `json:"load_balancing"`
		} `json:"exporters"`
		Processors struct {
			TailSampling struct {
				Policies []struct{ Name, Type string } `json:"policies"`
			} `json:"tail_sampling"`
		} `json:"processors"`
		Service struct {
			Pipelines map[string]struct{ Receivers, Processors, Exporters []string } `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("the gateway's config: %v", err)
	}
	lb := cfg.Exporters.LB
	wantHost := fmt.Sprintf("%s.%s.svc.cluster.local", gatewaySampling, scenario.ReleaseNamespace)
	if lb.RoutingKey != "traceID" || lb.Resolver.DNS.Hostname != wantHost || lb.Resolver.DNS.Port != strconv.Itoa(gatewaySamplingPort) {
		t.Errorf("the gateway's load_balancing exporter: %+v, want routing by traceID over the DNS of %s:%d", lb, wantHost, gatewaySamplingPort)
	}
	routing, sampling := cfg.Service.Pipelines["traces"], cfg.Service.Pipelines["traces/sampling"]
	if !slices.Equal(routing.Exporters, []string{"load_balancing"}) || !slices.Equal(sampling.Receivers, []string{"otlp/sampling"}) || !slices.Contains(sampling.Processors, "tail_sampling") {
		t.Errorf("the gateway's trace pipelines: traces %+v, traces/sampling %+v", routing, sampling)
	}
	pol := cfg.Processors.TailSampling.Policies
	if len(pol) == 0 || slices.ContainsFunc(pol, func(p struct{ Name, Type string }) bool { return p.Type != "always_sample" }) {
		t.Fatalf("the gateway's tail sampling policies are %+v: this test counts on always_sample (scenario.GatewayValues), with a dozen traces", pol)
	}
}

// checkSamplingService: the sampling Service is headless, its endpoints
// are the ready gateway pods, and every replica's routing tier resolved its
// name to all of them. It returns their addresses.
func checkSamplingService(ctx context.Context, t *testing.T, e *env) []string {
	t.Helper()
	cs := e.c.Client
	ns := scenario.ReleaseNamespace
	svc, err := cs.CoreV1().Services(ns).Get(ctx, gatewaySampling, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == gatewaySamplingPort }) {
		t.Fatalf("the Service %s is not headless on port %d: clusterIP %q, ports %+v", gatewaySampling, gatewaySamplingPort, svc.Spec.ClusterIP, svc.Spec.Ports)
	}
	var ips []string
	if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: gatewaySelector})
		if err != nil {
			return err
		}
		ips = ips[:0]
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.PodIP != "" && podReady(&p) == nil {
				ips = append(ips, p.Status.PodIP)
			}
		}
		slices.Sort(ips)
		eps, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + gatewaySampling})
		if err != nil {
			return err
		}
		var endpoints []string
		for _, s := range eps.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
					endpoints = append(endpoints, ep.Addresses...)
				}
			}
		}
		sort.Strings(endpoints)
		if len(ips) != scenario.GatewayReplicas || strings.Join(endpoints, ",") != strings.Join(ips, ",") {
			return fmt.Errorf("ready gateway pods %v, endpoints of %s %v, want %d", ips, gatewaySampling, endpoints, scenario.GatewayReplicas)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The routing tiers resolve the name every resolverInterval (5s).
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		for _, ip := range ips {
			n, err := gatewayMetric(ctx, ip, "otelcol_loadbalancer_num_backends")
			if err != nil {
				return err
			}
			if int(n) != len(ips) {
				return fmt.Errorf("the routing tier of the replica at %s routes over %v backends, want %d (%v)", ip, n, len(ips), ips)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s is headless; its endpoints are the %d ready replicas %v, and each replica's routing tier routes over all of them", gatewaySampling, len(ips), ips)
	return ips
}

// arrivedTrace is what the sink holds of one trace.
type arrivedTrace struct {
	spans []sinkapi.Span
	names map[string]int
	// line is the root span's demo.line ("" without a root).
	line string
}

func groupTraces(spans []sinkapi.Span) map[string]*arrivedTrace {
	out := map[string]*arrivedTrace{}
	for _, sp := range spans {
		tr := out[sp.TraceID]
		if tr == nil {
			tr = &arrivedTrace{names: map[string]int{}}
			out[sp.TraceID] = tr
		}
		tr.spans = append(tr.spans, sp)
		tr.names[sp.Name]++
		if sp.Name == rootSpan {
			tr.line = fmt.Sprint(sp.Attributes["demo.line"])
		}
	}
	return out
}

// whole: both spans of the app's trace, and no other.
func (tr *arrivedTrace) whole() bool {
	return tr != nil && len(tr.names) == 2 && tr.names[rootSpan] > 0 && tr.names[childSpan] > 0
}

// repeats are the spans that arrived more than once.
func (tr *arrivedTrace) repeats() int {
	n := 0
	for _, c := range tr.names {
		n += c - 1
	}
	return n
}

func (tr *arrivedTrace) String() string {
	if tr == nil {
		return "no span"
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(tr.names)) {
		parts = append(parts, fmt.Sprintf("%s x%d", n, tr.names[n]))
	}
	return strings.Join(parts, ", ")
}

// lastLines is the end of a long log, for a failure.
func lastLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
