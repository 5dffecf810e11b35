package charttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/internal/version"
)

// The gateway tier (gateway.enabled, destinations.*): templates/gateway-*.yaml
// and templates/_gateway.tpl. The real gateway binary validates the config
// these render in gateway/gatewaytest.

const gatewayName = "fargate-otel-gateway"

// withGateway is values with the gateway on and an OTLP destination.
func withGateway(extra map[string]any) map[string]any {
	v := map[string]any{
		"gateway":      map[string]any{"enabled": true},
		"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": "otlp.vendor.example:4317"}},
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// gatewayConfig is the gateway's collector config as rendered.
func gatewayConfig(t *testing.T, objs objects) map[string]any {
	t.Helper()
	var cm corev1.ConfigMap
	objs.get(t, "ConfigMap", gatewayName, &cm)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("the gateway's config is not YAML: %v\n%s", err, cm.Data["config.yaml"])
	}
	return cfg
}

// at walks a config by keys.
func at(cfg map[string]any, keys ...string) any {
	var cur any = cfg
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func TestGatewayOffByDefault(t *testing.T) {
	for _, n := range render(t, nil).names() {
		if strings.Contains(n, "gateway") {
			t.Errorf("the defaults render %s", n)
		}
	}
}

func TestGatewayObjects(t *testing.T) {
	objs := render(t, withGateway(nil))
	for _, want := range []string{
		"ConfigMap/" + gatewayName, "Deployment/" + gatewayName, "Service/" + gatewayName, "Service/fargate-otel-gateway-sampling",
		"HorizontalPodAutoscaler/" + gatewayName, "PodDisruptionBudget/" + gatewayName, "ServiceAccount/" + gatewayName,
	} {
		if !slices.Contains(objs.names(), want) {
			t.Errorf("no %s in %v", want, objs.names())
		}
	}
	var d appsv1.Deployment
	objs.get(t, "Deployment", gatewayName, &d)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("the gateway container's security context %+v: want non-root, read-only root, no capabilities", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the gateway's pods mount a service account token: it never calls the API server")
	}
	if d.Spec.Replicas != nil {
		t.Errorf("replicas %d set with autoscaling: every upgrade would undo the HPA", *d.Spec.Replicas)
	}
	if c.Image != version.Image(gatewayName) {
		t.Errorf("image %s, want %s", c.Image, version.Image(gatewayName))
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 5 {
		t.Errorf("preStop %+v: want a 5s sleep, so that sidecars move to other replicas before it drains", c.Lifecycle)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = e.ValueFrom.ResourceFieldRef.Resource
		}
	}
	if env["POD_IP"] != "status.podIP" || env["POD_NAME"] != "metadata.name" || env["GOMEMLIMIT"] != "limits.memory" {
		t.Errorf("env %v: want POD_IP, POD_NAME and GOMEMLIMIT from the Downward API", env)
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config: a config change would not roll the pods")
	}
	// Fargate: 1 vCPU and 1792Mi + 256 MiB is exactly the 1 vCPU / 2 GB size.
	if r := c.Resources.Requests; r.Cpu().String() != "1" || r.Memory().String() != "1792Mi" {
		t.Errorf("requests %v", r)
	}

	podLabels := labels.Set(d.Spec.Template.Labels)
	selects := func(what string, sel *metav1.LabelSelector) {
		t.Helper()
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || !s.Matches(podLabels) {
			t.Errorf("%s selects %v, not the gateway's pods %v (%v)", what, sel, podLabels, err)
		}
	}
	// Spread across zones, then nodes (on Fargate every pod is its own
	// node): one more replica in a domain than in another at most, and
	// scheduled anyway when that cannot be met; counted over the gateway's
	// pods of the same ReplicaSet only (a rollout does not skew it).
	var keys []string
	for _, tsc := range pod.TopologySpreadConstraints {
		keys = append(keys, tsc.TopologyKey)
		if tsc.MaxSkew != 1 || tsc.WhenUnsatisfiable != corev1.ScheduleAnyway || !slices.Equal(tsc.MatchLabelKeys, []string{"pod-template-hash"}) {
			t.Errorf("topology spread over %s: maxSkew %d, whenUnsatisfiable %s, matchLabelKeys %v; want 1, ScheduleAnyway, [pod-template-hash]",
				tsc.TopologyKey, tsc.MaxSkew, tsc.WhenUnsatisfiable, tsc.MatchLabelKeys)
		}
		selects("the topology spread over "+tsc.TopologyKey, tsc.LabelSelector)
		// Only the gateway's pods: a selector that also took in the
		// injector's would spread the two together.
		for _, u := range objs.of("Deployment") {
			if u.GetName() == gatewayName {
				continue
			}
			var od appsv1.Deployment
			objs.get(t, "Deployment", u.GetName(), &od)
			if s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector); err == nil && s.Matches(labels.Set(od.Spec.Template.Labels)) {
				t.Errorf("the topology spread over %s selects the pods of %s too (%v)", tsc.TopologyKey, u.GetName(), tsc.LabelSelector)
			}
		}
	}
	if !slices.Equal(keys, []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"}) {
		t.Errorf("topology spread over %v: want zones and nodes (topology.kubernetes.io/zone, kubernetes.io/hostname)", keys)
	}

	var pdb policyv1.PodDisruptionBudget
	objs.get(t, "PodDisruptionBudget", gatewayName, &pdb)
	selects("the PDB", pdb.Spec.Selector)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	objs.get(t, "HorizontalPodAutoscaler", gatewayName, &hpa)
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != gatewayName || ref.APIVersion != "apps/v1" {
		t.Errorf("the HPA scales %+v", ref)
	}
	var targets []string
	for _, m := range hpa.Spec.Metrics {
		targets = append(targets, fmt.Sprintf("%s=%d", m.Resource.Name, *m.Resource.Target.AverageUtilization))
	}
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 || !slices.Equal(targets, []string{"cpu=70", "memory=75"}) {
		t.Errorf("HPA %d-%d on %v", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, targets)
	}
	for _, name := range []string{gatewayName, "fargate-otel-gateway-sampling"} {
		var svc corev1.Service
		objs.get(t, "Service", name, &svc)
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects %v, not the gateway's pods", name, svc.Spec.Selector)
		}
	}
	var headless corev1.Service
	objs.get(t, "Service", "fargate-otel-gateway-sampling", &headless)
	if headless.Spec.ClusterIP != "None" || headless.Spec.PublishNotReadyAddresses || headless.Spec.Ports[0].Port != 4417 {
		t.Errorf("the sampling Service %+v: want headless, ready pods only, port 4417", headless.Spec)
	}

	// Without autoscaling: a fixed number of replicas and no HPA.
	objs = render(t, withGateway(map[string]any{"gateway": map[string]any{"enabled": true, "replicas": 3, "autoscaling": map[string]any{"enabled": false}}}))
	objs.get(t, "Deployment", gatewayName, &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 || objs.find("HorizontalPodAutoscaler", gatewayName) != nil {
		t.Errorf("autoscaling off: replicas %v, HPA %v", d.Spec.Replicas, objs.find("HorizontalPodAutoscaler", gatewayName) != nil)
	}
}

// TestSidecarsExportToTheGateway: with the gateway on and `exporters` left
// at the chart's default (or []), the sidecars' exporter is the gateway's
// Service; exporters a user set are kept.
func TestSidecarsExportToTheGateway(t *testing.T) {
	const endpoint = "fargate-otel-gateway.fargate-otel.svc:4317"
	for name, c := range map[string]struct {
		values map[string]any
		want   string
	}{
		"gateway off, defaults":   {nil, "otel-gateway.opentelemetry.svc:4317"},
		"gateway on, defaults":    {withGateway(nil), endpoint},
		"gateway on, [] exported": {withGateway(map[string]any{"exporters": []any{}}), endpoint},
		"gateway on, user's own":  {withGateway(map[string]any{"exporters": []map[string]any{{"id": "otlp_http/vendor", "config": map[string]any{"endpoint": "https://otlp.example.com"}}}}), "https://otlp.example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config(t, render(t, c.values))
			if len(cfg.Exporters) != 1 || cfg.Exporters[0].Config["endpoint"] != c.want {
				t.Fatalf("exporters %+v, want one to %s", cfg.Exporters, c.want)
			}
			if c.want == endpoint {
				if q, _ := cfg.Exporters[0].Config["sending_queue"].(map[string]any); q["storage"] != "file_storage" {
					t.Errorf("the gateway exporter's queue %v: want it on the pod's logs volume", q)
				}
			}
		})
	}
}

// TestGatewayPipelines: traces go through the routing tier (trace-ID
// load balancing over the headless Service) to tail sampling; span metrics
// come from every span; logs and metrics go straight to the destinations.
func TestGatewayPipelines(t *testing.T) {
	cfg := gatewayConfig(t, render(t, withGateway(nil)))
	pipes, _ := at(cfg, "service", "pipelines").(map[string]any)
	strs := func(v any) []string {
		var out []string
		l, _ := v.([]any)
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	for name, want := range map[string][3][]string{
		"logs":                {{"otlp"}, {"memory_limiter", "batch"}, {"otlp_grpc/destination"}},
		"metrics":             {{"otlp"}, {"memory_limiter", "batch"}, {"otlp_grpc/destination"}},
		"traces":              {{"otlp"}, {"memory_limiter"}, {"load_balancing"}},
		"traces/sampling":     {{"otlp/sampling"}, {"memory_limiter", "tail_sampling", "batch"}, {"otlp_grpc/destination"}},
		"traces/spanmetrics":  {{"otlp/sampling"}, nil, {"span_metrics"}},
		"metrics/spanmetrics": {{"span_metrics"}, {"memory_limiter", "resource/replica", "batch"}, {"otlp_grpc/destination"}},
	} {
		p, _ := pipes[name].(map[string]any)
		got := [3][]string{strs(p["receivers"]), strs(p["processors"]), strs(p["exporters"])}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pipeline %s: %v, want %v", name, got, want)
		}
	}
	if len(pipes) != 6 {
		t.Errorf("%d pipelines: %v", len(pipes), pipes)
	}
	lb := at(cfg, "exporters", "load_balancing")
	if at(lb.(map[string]any), "routing_key") != "traceID" || at(lb.(map[string]any), "resolver", "dns", "hostname") != "fargate-otel-gateway-sampling.fargate-otel.svc.cluster.local" ||
		at(lb.(map[string]any), "resolver", "dns", "port") != "4417" {
		t.Errorf("load_balancing %v", lb)
	}
	policies, _ := at(cfg, "processors", "tail_sampling", "policies").([]any)
	if len(policies) != 2 || at(policies[0].(map[string]any), "type") != "status_code" || at(policies[1].(map[string]any), "probabilistic", "sampling_percentage") != 10.0 {
		t.Errorf("default policies %v: want errors plus 10 %%", policies)
	}

	// Tail sampling off: one traces pipeline, no routing tier.
	cfg = gatewayConfig(t, render(t, withGateway(map[string]any{"gateway": map[string]any{"enabled": true, "tailSampling": map[string]any{"enabled": false}}})))
	if at(cfg, "exporters", "load_balancing") != nil || at(cfg, "service", "pipelines", "traces/sampling") != nil || at(cfg, "receivers", "otlp/sampling") != nil {
		t.Error("tail sampling off still renders the routing tier")
	}
	// The user's processors, in order, after memory_limiter, per signal.
	cfg = gatewayConfig(t, render(t, withGateway(map[string]any{"gateway": map[string]any{"enabled": true, "processors": []map[string]any{
		{"id": "filter/health", "config": map[string]any{"traces": map[string]any{"span": []string{`attributes["http.route"] == "/healthz"`}}}, "signals": []string{"traces"}},
		{"id": "attributes/env", "config": map[string]any{"actions": []map[string]any{{"key": "env", "value": "prod", "action": "upsert"}}}},
	}}})))
	if got := strs(at(cfg, "service", "pipelines", "traces", "processors")); !slices.Equal(got, []string{"memory_limiter", "filter/health", "attributes/env"}) {
		t.Errorf("traces processors %v", got)
	}
	if got := strs(at(cfg, "service", "pipelines", "logs", "processors")); !slices.Equal(got, []string{"memory_limiter", "attributes/env", "batch"}) {
		t.Errorf("logs processors %v", got)
	}
	if at(cfg, "processors", "filter/health", "traces") == nil {
		t.Error("the user's processor config is not rendered")
	}
}

// TestGatewayDestinations: the AWS preset (SigV4 per service, the region's
// endpoints, the log group) and the OTLP preset's headers from a Secret.
func TestGatewayDestinations(t *testing.T) {
	objs := render(t, map[string]any{
		"gateway": map[string]any{"enabled": true, "serviceAccountAnnotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/gw"}},
		"destinations": map[string]any{"aws": map[string]any{"enabled": true, "region": "eu-west-1",
			"logs":    map[string]any{"logGroup": "/eks/prod"},
			"metrics": map[string]any{"enabled": true, "workspaceId": "ws-1234"}}},
	})
	cfg := gatewayConfig(t, objs)
	for id, want := range map[string]map[string]string{
		"otlp_http/cloudwatch_logs":   {"logs_endpoint": "https://logs.eu-west-1.amazonaws.com/v1/logs", "auth": "sigv4auth/logs"},
		"otlp_http/xray":              {"traces_endpoint": "https://xray.eu-west-1.amazonaws.com/v1/traces", "auth": "sigv4auth/xray"},
		"prometheus_remote_write/amp": {"endpoint": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write", "auth": "sigv4auth/aps"},
	} {
		exp, _ := at(cfg, "exporters", id).(map[string]any)
		for k, v := range want {
			got := exp[k]
			if k == "auth" {
				got = at(exp, "auth", "authenticator")
			}
			if got != v {
				t.Errorf("%s %s = %v, want %s", id, k, got, v)
			}
		}
	}
	if h := at(cfg, "exporters", "otlp_http/cloudwatch_logs", "headers"); fmt.Sprint(h) != "map[x-aws-log-group:/eks/prod x-aws-log-stream:fargate-otel]" {
		t.Errorf("CloudWatch Logs headers %v", h)
	}
	for ext, service := range map[string]string{"sigv4auth/logs": "logs", "sigv4auth/xray": "xray", "sigv4auth/aps": "aps"} {
		if at(cfg, "extensions", ext, "service") != service || at(cfg, "extensions", ext, "region") != "eu-west-1" {
			t.Errorf("%s: %v", ext, at(cfg, "extensions", ext))
		}
	}
	var sa corev1.ServiceAccount
	objs.get(t, "ServiceAccount", gatewayName, &sa)
	if sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Error("serviceAccountAnnotations (IRSA) not on the gateway's ServiceAccount")
	}

	// OTLP with headers from a Secret: env vars from its keys, the headers
	// refer to them; no secret in the ConfigMap.
	objs = render(t, map[string]any{
		"gateway": map[string]any{"enabled": true},
		"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "protocol": "http", "endpoint": "https://otlp.vendor.example",
			"headersFrom": map[string]any{"secretName": "vendor", "headers": map[string]any{"x-api-key": "api-key", "x-team": "team"}}}},
	})
	cfg = gatewayConfig(t, objs)
	if h := at(cfg, "exporters", "otlp_http/destination", "headers"); fmt.Sprint(h) != "map[x-api-key:${env:FARGATE_OTEL_OTLP_HEADER_0} x-team:${env:FARGATE_OTEL_OTLP_HEADER_1}]" {
		t.Errorf("headers %v", h)
	}
	var d appsv1.Deployment
	objs.get(t, "Deployment", gatewayName, &d)
	refs := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	if fmt.Sprint(refs) != "map[FARGATE_OTEL_OTLP_HEADER_0:vendor/api-key FARGATE_OTEL_OTLP_HEADER_1:vendor/team]" {
		t.Errorf("secret env %v", refs)
	}

	// The persistent queue: file_storage on an emptyDir, named by every
	// destination's sending_queue.
	objs = render(t, withGateway(map[string]any{"gateway": map[string]any{"enabled": true, "sendingQueue": "file"}}))
	cfg = gatewayConfig(t, objs)
	if at(cfg, "exporters", "otlp_grpc/destination", "sending_queue", "storage") != "file_storage/queue" || at(cfg, "extensions", "file_storage/queue", "directory") == nil {
		t.Errorf("sendingQueue file: %v", at(cfg, "exporters"))
	}
	objs.get(t, "Deployment", gatewayName, &d)
	// (The fleet's volume is there too: TestGatewayIsAFleetAgent.)
	if v := d.Spec.Template.Spec.Volumes; !slices.ContainsFunc(v, func(v corev1.Volume) bool { return v.Name == "queue" && v.EmptyDir != nil }) {
		t.Errorf("volumes %+v: want the queue's emptyDir", v)
	}
}

// TestGatewayRefusesWhatCannotWork: clear errors that say what to set.
func TestGatewayRefusesWhatCannotWork(t *testing.T) {
	for name, c := range map[string]struct {
		values map[string]any
		want   string
	}{
		"no destination": {map[string]any{"gateway": map[string]any{"enabled": true}}, "gateway.enabled needs a destination"},
		"aws without region": {map[string]any{"gateway": map[string]any{"enabled": true}, "destinations": map[string]any{"aws": map[string]any{"enabled": true}}},
			"destinations.aws.enabled needs destinations.aws.region"},
		"aws logs without a log group": {map[string]any{"gateway": map[string]any{"enabled": true}, "destinations": map[string]any{"aws": map[string]any{"enabled": true, "region": "us-east-1"}}},
			"destinations.aws.logs.logGroup"},
		"aws metrics without a workspace": {map[string]any{"gateway": map[string]any{"enabled": true}, "destinations": map[string]any{"aws": map[string]any{"enabled": true, "region": "us-east-1",
			"logs": map[string]any{"enabled": false}, "metrics": map[string]any{"enabled": true}}}}, "destinations.aws.metrics.workspaceId"},
		"otlp without endpoint": {map[string]any{"gateway": map[string]any{"enabled": true}, "destinations": map[string]any{"otlp": map[string]any{"enabled": true}}},
			"destinations.otlp.endpoint"},
		"headers without a Secret": {withGateway(map[string]any{"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": "x:4317", "headersFrom": map[string]any{"headers": map[string]any{"a": "b"}}}}}),
			"destinations.otlp.headersFrom.secretName"},
		"min above max":  {withGateway(map[string]any{"gateway": map[string]any{"enabled": true, "autoscaling": map[string]any{"minReplicas": 5, "maxReplicas": 3}}}), "minReplicas (5) is above maxReplicas (3)"},
		"schema: queue":  {withGateway(map[string]any{"gateway": map[string]any{"enabled": true, "sendingQueue": "disk"}}), "/gateway/sendingQueue"},
		"schema: region": {map[string]any{"destinations": map[string]any{"aws": map[string]any{"region": "Ireland"}}}, "/destinations/aws/region"},
		"schema: typo":   {map[string]any{"gateway": map[string]any{"enable": true}}, "enable"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := templateRaw(t, c.values)
			if err == nil {
				t.Fatalf("accepted:\n%s", firstLines(out, 5))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("the error does not say %q:\n%v", c.want, err)
			}
		})
	}
}

// TestGatewayDefaultExportersMatchValues: the helper that recognises the
// chart's default `exporters` holds what values.yaml holds.
func TestGatewayDefaultExportersMatchValues(t *testing.T) {
	def := config(t, render(t, nil)).Exporters
	got := config(t, render(t, map[string]any{"exporters": []map[string]any{{"id": def[0].ID, "config": def[0].Config}}, "gateway": map[string]any{"enabled": true},
		"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": "x:4317"}}})).Exporters
	if got[0].Config["endpoint"] != "fargate-otel-gateway.fargate-otel.svc:4317" {
		t.Errorf("values.yaml's default exporters %+v are not recognised by fargate-otel.defaultExporters (templates/_gateway.tpl): keep them equal", def)
	}
}

func TestGatewayLint(t *testing.T) {
	if out, err := runHelm(t, "lint", "--strict", chartDir(t), "--values", valuesFile(t, withGateway(map[string]any{
		"destinations": map[string]any{
			"otlp": map[string]any{"enabled": true, "endpoint": "otlp.vendor.example:4317"},
			"aws":  map[string]any{"enabled": true, "region": "eu-west-1", "logs": map[string]any{"logGroup": "/eks/prod"}},
		},
	}))); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
