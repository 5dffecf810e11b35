//go:build e2e

package product

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/gateway/gatewaytest"
)

// nsLines is the namespace of the gateway scenario's app, opted in after
// the upgrade, so that its pod exports to the gateway.
const nsLines = "shop-gateway"

// The app writes gatewayLines numbered lines on each stream, 20 a second on
// each, while a gateway pod is deleted; it sends a trace (two spans) at
// start and every 50 lines, and says on stderr which it sent (-otlp-log:
// "otlp: sent trace <id> (line <n>)"), so that the traces at the sink can
// be told from the ones it sent.
const gatewayLines = 500

var gatewayArgs = []string{fmt.Sprintf("-lines=%d", gatewayLines), "-interval=50ms", "-traces-every=50", "-otlp-log"}

var lineNumber = regexp.MustCompile(`^demo-app (stdout|stderr) line (\d+)`)

// 9: the chart upgraded with gateway.enabled: the HPA (floor two) and the
// PDB select the gateway's pods; a new pod's sidecar exports to the
// gateway, the gateway to the sink; while the app writes numbered lines,
// the gateway pod that receives them is deleted: no line is lost (repeats
// are counted and printed).
func testGateway(ctx context.Context, t *testing.T, e *env) {
	cs := e.c.Client
	values := scenario.GatewayValues(e.values, e.product.Gateway, scenario.SinkEndpoint(nsGateway))
	start := time.Now()
	if err := e.helm.Install(ctx, values, 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	// The Deployment has no replicas of its own: the HPA raises it to its
	// floor (without metrics-server it scales no further).
	sel := "app.kubernetes.io/component=gateway"
	if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		d, err := cs.AppsV1().Deployments(scenario.ReleaseNamespace).Get(ctx, scenario.GatewayDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != scenario.GatewayReplicas || d.Status.ReadyReplicas != scenario.GatewayReplicas {
			return fmt.Errorf("gateway: %d ready of %v, want %d%s", d.Status.ReadyReplicas, deref(d.Spec.Replicas), scenario.GatewayReplicas, cluster.PodStates(ctx, cs, scenario.ReleaseNamespace, sel))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("chart upgraded with the gateway: %d replicas ready after %v", scenario.GatewayReplicas, time.Since(start).Round(time.Second))
	checkHPAAndPDB(ctx, t, e, sel)

	// The app, in a namespace opted in now: its sidecar exports to the
	// gateway's Service.
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsLines, map[string]string{scenario.InjectLabel: "enabled"})); err != nil {
		t.Fatal(err)
	}
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(nsLines).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := scenario.CreateJob(ctx, cs, scenario.AppJob(nsLines, "lines", e.appImage, corev1.PullIfNotPresent, gatewayArgs)); err != nil {
		t.Fatal(err)
	}
	pod := waitRunning(ctx, t, e, nsLines, appPod(ctx, t, e, nsLines, "lines").Name)
	gatewayEndpoint := fmt.Sprintf("%s.%s.svc:4317", scenario.GatewayDeployment, scenario.ReleaseNamespace)
	if cfg := collectorConfig(pod); !strings.Contains(cfg, gatewayEndpoint) {
		t.Fatalf("the new pod's collector does not export to %s:\n%s", gatewayEndpoint, cfg)
	}
	f := sinkapi.Filter{Namespace: nsLines, Pod: pod.Name, Container: scenario.AppName}

	// Lines flow through the gateway; then the replica that receives them
	// is deleted, as a node drain or a scale-down does.
	if err := scenario.Poll(ctx, 90*time.Second, func(ctx context.Context) error {
		logs, err := e.sink.Logs(ctx, f)
		if err != nil {
			return err
		}
		if len(logs) < 40 {
			return fmt.Errorf("%d lines at the sink from %s through the gateway", len(logs), pod.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	victim, accepted := busiestGateway(ctx, t, e, sel)
	if err := cs.CoreV1().Pods(scenario.ReleaseNamespace).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	t.Logf("deleted gateway pod %s while the app writes (log records accepted so far, per gateway pod: %s)", victim, accepted)

	// Every line of both streams arrives.
	var counts map[string]int
	if err := scenario.Poll(ctx, 3*time.Minute, func(ctx context.Context) error {
		logs, err := e.sink.Logs(ctx, f)
		if err != nil {
			return err
		}
		counts = map[string]int{}
		for _, l := range logs {
			if m := lineNumber.FindStringSubmatch(l.Body); m != nil {
				counts[m[1]+" "+m[2]]++
			}
		}
		if missing := missingLines(counts); len(missing) > 0 {
			return fmt.Errorf("%d of %d lines missing at the sink, e.g. %v", len(missing), 2*gatewayLines, missing[:min(5, len(missing))])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	repeats := 0
	for _, n := range counts {
		repeats += n - 1
	}
	t.Logf("all %d lines arrived through the gateway, %v after the deletion; repeated: %d", 2*gatewayLines, time.Since(deleted).Round(time.Second), repeats)
	e.gatewayApp = pod

	// The Deployment replaced the pod.
	if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		return cluster.DeploymentAvailable(ctx, cs, scenario.ReleaseNamespace, scenario.GatewayDeployment)
	}); err != nil {
		t.Error(err)
	}
	checkGatewaysInTheFleet(ctx, t, e, sel)
}

// checkGatewaysInTheFleet: every running gateway pod (the replacement
// included) is listed by `fargate-otel fleet --kind gateway` as a connected,
// healthy gateway that is sent no settings, and the replicas that carried
// the app's lines say when they exported last.
func checkGatewaysInTheFleet(ctx context.Context, t *testing.T, e *env, sel string) {
	t.Helper()
	cli := scenario.FleetCLI{Bin: e.cli, Kubeconfig: e.c.Kubeconfig}
	var f api.Fleet
	err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		pods, err := e.c.Client.CoreV1().Pods(scenario.ReleaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		if f, err = cli.Fleet(ctx, "--kind", "gateway"); err != nil {
			return err
		}
		byUID := map[string]api.Agent{}
		for _, a := range f.Agents {
			byUID[a.UID] = a
		}
		running, exported := 0, 0
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			running++
			a, ok := byUID[string(p.UID)]
			switch {
			case !ok:
				return fmt.Errorf("gateway pod %s is not in the fleet (%d gateways listed)", p.Name, len(f.Agents))
			case !a.Connected || !a.Health.Reported || !a.Health.Healthy:
				return fmt.Errorf("gateway pod %s: connected %v, health %+v", p.Name, a.Connected, a.Health)
			case a.Kind != api.KindGateway || a.Pod != p.Name || a.Node != p.Spec.NodeName || a.RemoteConfig.Desired != "" || a.ConfigHash == "":
				return fmt.Errorf("gateway pod %s listed as %+v", p.Name, a)
			}
			if !a.Figures.LastExport["logs"].IsZero() {
				exported++
			}
		}
		if running < scenario.GatewayReplicas || exported == 0 {
			return fmt.Errorf("%d running gateway pods, %d with a log export in their figures", running, exported)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the gateway's replicas in the fleet: %v", err)
	}
	t.Logf("the fleet lists %d gateway replicas, healthy, sent no settings", len(f.Agents))
}

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// missingLines lists the lines of the app not at the sink.
func missingLines(counts map[string]int) []string {
	var out []string
	for _, s := range []string{"stdout", "stderr"} {
		for n := 1; n <= gatewayLines; n++ {
			if counts[s+" "+strconv.Itoa(n)] == 0 {
				out = append(out, s+" "+strconv.Itoa(n))
			}
		}
	}
	sort.Strings(out)
	return out
}

// checkHPAAndPDB: the API server took both, they act on the gateway's
// Deployment and pods (the HPA through the Deployment's scale selector, the
// PDB as the disruption controller counts it).
func checkHPAAndPDB(ctx context.Context, t *testing.T, e *env, sel string) {
	cs := e.c.Client
	ns := scenario.ReleaseNamespace
	hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, scenario.GatewayDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != scenario.GatewayDeployment {
		t.Errorf("the HPA scales %s/%s", ref.Kind, ref.Name)
	}
	scale, err := cs.AppsV1().Deployments(ns).GetScale(ctx, scenario.GatewayDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hpaPods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: scale.Status.Selector})
	if err != nil {
		t.Fatal(err)
	}
	gwPods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	if len(hpaPods.Items) != len(gwPods.Items) || len(gwPods.Items) < scenario.GatewayReplicas {
		t.Errorf("the HPA's selector %q finds %d pods, the gateway has %d", scale.Status.Selector, len(hpaPods.Items), len(gwPods.Items))
	}
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, scenario.GatewayDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pdb.Status.ExpectedPods != scenario.GatewayReplicas || pdb.Status.CurrentHealthy != scenario.GatewayReplicas || pdb.Status.DisruptionsAllowed != 1 {
			return fmt.Errorf("PDB: expected pods %d, healthy %d, disruptions allowed %d; want %d, %d, 1",
				pdb.Status.ExpectedPods, pdb.Status.CurrentHealthy, pdb.Status.DisruptionsAllowed, scenario.GatewayReplicas, scenario.GatewayReplicas)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	var conds []string
	for _, c := range hpa.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s (%s)", c.Type, c.Status, c.Reason))
	}
	t.Logf("HPA %d-%d on cpu and memory, current %d; conditions %s; the PDB covers the %d gateway pods",
		*hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, hpa.Status.CurrentReplicas, strings.Join(conds, ", "), len(gwPods.Items))
}

// busiestGateway is the ready gateway pod that accepted the most log
// records (its own metric, on the pod's address): the one the app's
// sidecar is connected to.
func busiestGateway(ctx context.Context, t *testing.T, e *env, sel string) (string, string) {
	pods, err := e.c.Client.CoreV1().Pods(scenario.ReleaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	best, most := "", -1.0
	var seen []string
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		n, err := acceptedLogs(ctx, p.Status.PodIP)
		if err != nil {
			t.Fatalf("gateway pod %s's metrics: %v", p.Name, err)
		}
		seen = append(seen, fmt.Sprintf("%s %v", p.Name, n))
		if n > most {
			best, most = p.Name, n
		}
	}
	if best == "" {
		t.Fatal("no gateway pod to delete")
	}
	return best, strings.Join(seen, ", ")
}

// acceptedLogs reads otelcol_receiver_accepted_log_records from a gateway
// pod's own metrics.
func acceptedLogs(ctx context.Context, ip string) (float64, error) {
	return gatewayMetric(ctx, ip, "otelcol_receiver_accepted_log_records")
}

// gatewayMetric sums a metric of a gateway pod's own (port 8888) over the
// samples whose labels contain every label given ("name=\"value\"").
func gatewayMetric(ctx context.Context, ip, name string, labels ...string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":8888/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("gateway metrics at %s: %s", ip, resp.Status)
	}
	return gatewaytest.SumMetric(bufio.NewScanner(resp.Body), name, labels...)
}
