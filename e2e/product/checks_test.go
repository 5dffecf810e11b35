//go:build e2e

package product

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/nodeproxy/doctor"
)

// 1: the API server admitted the workloads and the controllers made pods.
func testAdmitted(ctx context.Context, t *testing.T, e *env) {
	for _, w := range []struct{ ns, name string }{{nsShop, "web"}, {nsShop, "batch"}, {nsDirect, "web-direct"}} {
		p := appPod(ctx, t, e, w.ns, w.name)
		for _, c := range p.Spec.Containers {
			if c.Name == scenario.AppName && c.Image != e.appImage {
				t.Errorf("%s/%s: image %s, want %s", w.ns, p.Name, c.Image, e.appImage)
			}
		}
	}
}

// 2: injected as the README says, and running.
func testInjected(ctx context.Context, t *testing.T, e *env) {
	cases := []struct {
		ns, name string
		mode     injector.KubeletStatsMode
		// after "--": the image's ENTRYPOINT, then the spec's args or the image's CMD
		argv []string
		job  bool
	}{
		{nsShop, "web", injector.KubeletStatsProxy, append(slices.Clone(scenario.AppEntrypoint), scenario.AppCmd...), false},
		{nsDirect, "web-direct", injector.KubeletStatsDirect, append(slices.Clone(scenario.AppEntrypoint), scenario.AppCmd...), false},
		{nsShop, "batch", injector.KubeletStatsProxy, append(slices.Clone(scenario.AppEntrypoint), jobArgs...), true},
	}
	for _, tc := range cases {
		p := appPod(ctx, t, e, tc.ns, tc.name)
		who := tc.ns + "/" + p.Name
		s, ok := status(p)
		if !ok {
			t.Errorf("%s: no %s annotation: not injected; events:%s", who, "fargate-otel.io/status", events(ctx, e, tc.ns, p.Name))
			continue
		}
		if s.Collector != "native-sidecar" || !slices.Equal(s.Containers, []string{scenario.AppName}) || s.KubeletStats != string(tc.mode) {
			t.Errorf("%s: status %+v: want the app wrapped, a native sidecar, kubelet stats %s", who, *s, tc.mode)
		}
		var names []string
		for _, c := range p.Spec.InitContainers {
			names = append(names, c.Name)
			if c.Name == injector.CollectorContainerName && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				t.Errorf("%s: the collector is not a native sidecar (restartPolicy %v)", who, c.RestartPolicy)
			}
		}
		if !slices.Equal(names, []string{injector.InitContainerName, injector.CollectorContainerName}) {
			t.Errorf("%s: init containers %v", who, names)
		}
		argv, ok := wrappedArgv(p, scenario.AppName)
		if !ok {
			t.Errorf("%s: the app's command is not wrapped: %v %v", who, p.Spec.Containers[0].Command, p.Spec.Containers[0].Args)
		} else if !slices.Equal(argv, tc.argv) {
			t.Errorf("%s: the wrapper runs %q, want %q (ENTRYPOINT and CMD of the image in the registry)", who, argv, tc.argv)
		}
		if tc.job {
			continue // it may have completed already: point 4 checks it
		}
		waitRunning(ctx, t, e, tc.ns, p.Name)
	}
}

// 2: `kubectl logs` of an injected pod is byte for byte that of the same
// app in a namespace that is not opted in.
func testLogsUnchanged(ctx context.Context, t *testing.T, e *env) {
	injected := waitSucceeded(ctx, t, e, nsShop, "compare")
	if _, ok := status(injected); !ok {
		t.Fatalf("%s/compare was not injected", nsShop)
	}
	if _, ok := wrappedArgv(injected, scenario.AppName); !ok {
		t.Fatalf("%s/compare: the app is not wrapped", nsShop)
	}
	waitSucceeded(ctx, t, e, nsPlain, "compare")
	with, err := e.c.Kubectl(ctx, "-n", nsShop, "logs", "compare", "-c", scenario.AppName)
	if err != nil {
		t.Fatal(err)
	}
	without, err := e.c.Kubectl(ctx, "-n", nsPlain, "logs", "compare")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 1; i <= 8; i++ {
		last := ""
		if i == 8 {
			last = " (last)"
		}
		fmt.Fprintf(&want, "demo-app stdout line %d%s\ndemo-app stderr line %d%s\n", i, last, i, last)
	}
	if string(without) != want.String() {
		t.Errorf("without injection, kubectl logs shows:\n%s\nwant:\n%s", without, want.String())
	}
	if string(with) != string(without) {
		t.Errorf("kubectl logs differs with injection:\n%s\nwithout:\n%s", with, without)
	}
	// The Deployment's pod too, while it runs: both streams, in order (the
	// app's own "otlp: ..." lines on stderr come when its exports end).
	web := appPod(ctx, t, e, nsShop, "web")
	var wantWeb strings.Builder
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&wantWeb, "demo-app stdout line %d\ndemo-app stderr line %d\n", i, i)
	}
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		out, err := e.c.Kubectl(ctx, "-n", nsShop, "logs", web.Name, "-c", scenario.AppName)
		if err != nil {
			return err
		}
		var app strings.Builder
		for _, l := range strings.SplitAfter(string(out), "\n") {
			if !strings.HasPrefix(l, "otlp: ") {
				app.WriteString(l)
			}
		}
		if !strings.HasPrefix(app.String(), wantWeb.String()) {
			return fmt.Errorf("kubectl logs %s does not start with\n%s\nit shows:\n%s", web.Name, wantWeb.String(), out)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// 3: lines from both streams, with the container's identity.
func testLogsArrive(ctx context.Context, t *testing.T, e *env) {
	web := appPod(ctx, t, e, nsShop, "web")
	f := sinkapi.Filter{Namespace: nsShop, Pod: web.Name, Container: scenario.AppName}
	want := []string{"demo-app stdout line 1", "demo-app stderr line 1", "demo-app stdout line 2", "demo-app stderr line 2"}
	var got []sinkapi.Log
	err := scenario.Poll(ctx, 90*time.Second, func(ctx context.Context) error {
		var err error
		if got, err = e.sink.Logs(ctx, f); err != nil {
			return err
		}
		bodies := map[string]sinkapi.Log{}
		for _, l := range got {
			bodies[l.Body] = l
		}
		for _, w := range want {
			if _, ok := bodies[w]; !ok {
				return fmt.Errorf("%d lines from %s/%s, not yet %q", len(got), nsShop, web.Name, w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range got {
		if !slices.Contains(want, l.Body) {
			continue
		}
		wantStream := "stdout"
		if strings.Contains(l.Body, "stderr") {
			wantStream = "stderr"
		}
		if l.Stream() != wantStream {
			t.Errorf("%q: log.iostream %q", l.Body, l.Stream())
		}
		for k, v := range map[string]string{
			"k8s.pod.name": web.Name, "k8s.namespace.name": nsShop, "k8s.container.name": scenario.AppName,
			"k8s.container.restart_count": "0", "k8s.pod.uid": string(web.UID), "k8s.node.name": e.c.NodeName,
			"k8s.cluster.name": "e2e",
		} {
			if got := fmt.Sprint(l.Resource[k]); got != v {
				t.Errorf("%q: resource %s = %q, want %q", l.Body, k, got, v)
			}
		}
	}
}

// 3: kubelet stats for the pod, in the mode its namespace uses.
func testKubeletStats(ctx context.Context, t *testing.T, e *env, ns, name string, mode injector.KubeletStatsMode) {
	p := appPod(ctx, t, e, ns, name)
	cfg := collectorConfig(p)
	wantEndpoint := map[injector.KubeletStatsMode]string{
		injector.KubeletStatsProxy:  "https://fargate-otel-nodeproxy." + scenario.ReleaseNamespace + ".svc",
		injector.KubeletStatsDirect: "https://kubernetes.default.svc",
	}[mode]
	if !strings.Contains(cfg, wantEndpoint+"/api/v1/nodes/${env:NODE_NAME}/proxy") {
		t.Errorf("%s/%s: the collector's kubelet_stats endpoint is not %s:\n%s", ns, p.Name, wantEndpoint, cfg)
	}
	if s, ok := status(p); !ok || s.KubeletStats != string(mode) {
		t.Errorf("%s/%s: injected with kubelet stats %v, want %s", ns, p.Name, s, mode)
	}
	if mode == injector.KubeletStatsDirect {
		// What mode direct costs, as the README says: the pod's service
		// account may get nodes/proxy (the injector bound it).
		if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
			if !canGetNodesProxy(ctx, t, e, ns, serviceAccount(p)) {
				return fmt.Errorf("service account %s/%s may not get nodes/proxy in mode direct", ns, serviceAccount(p))
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	var series []sinkapi.MetricSeries
	err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		var err error
		if series, err = e.sink.Metrics(ctx, sinkapi.Filter{Namespace: ns, Pod: p.Name}); err != nil {
			return err
		}
		var pod, container bool
		for _, m := range series {
			pod = pod || strings.HasPrefix(m.Name, "k8s.pod.")
			container = container || strings.HasPrefix(m.Name, "container.") && m.Resource["k8s.container.name"] == scenario.AppName
		}
		if !pod || !container {
			return fmt.Errorf("no pod and app container kubelet stats for %s/%s yet (metrics: %s)", ns, p.Name, metricNames(series))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s/%s: %s", ns, p.Name, metricNames(series))
}

func metricNames(series []sinkapi.MetricSeries) string {
	seen := map[string]bool{}
	for _, m := range series {
		seen[m.Name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// 3: a trace the app sends to localhost:4317, with the pod's identity added.
func testTrace(ctx context.Context, t *testing.T, e *env) {
	web := appPod(ctx, t, e, nsShop, "web")
	err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		spans, err := e.sink.Spans(ctx, sinkapi.Filter{Namespace: nsShop, Pod: web.Name})
		if err != nil {
			return err
		}
		for _, s := range spans {
			if s.Name == "demo-app.work" && s.Resource["service.name"] == "demo-app" && s.TraceID != "" {
				return nil
			}
		}
		return fmt.Errorf("no demo-app.work span from %s/%s yet (%d spans)", nsShop, web.Name, len(spans))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// 4: the Job ends (its sidecar does not keep it alive) and every line,
// the last ones included, arrives exactly once.
func testJob(ctx context.Context, t *testing.T, e *env) {
	var job *batchv1.Job
	err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		var err error
		if job, err = e.c.Client.BatchV1().Jobs(nsShop).Get(ctx, "batch", metav1.GetOptions{}); err != nil {
			return err
		}
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return nil
			case batchv1.JobFailed:
				return errors.New("the Job failed: " + c.Message)
			}
		}
		return fmt.Errorf("the Job has not completed:%s", cluster.PodStates(ctx, e.c.Client, nsShop, "app.kubernetes.io/name=batch"))
	})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := e.c.Client.CoreV1().Pods(nsShop).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=batch"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("the Job's pods: %v (%d)", err, len(pods.Items))
	}
	pod := pods.Items[0]
	if _, ok := status(&pod); !ok {
		t.Fatal("the Job's pod was not injected")
	}
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Errorf("the Job's pod: %s", cluster.DescribePod(&pod))
	}
	// The app's end, and the sidecar's: it stops after the app has, once
	// its drain has sent the last lines, and cleanly.
	var appEnd time.Time
	for _, c := range pod.Status.ContainerStatuses {
		if c.Name == scenario.AppName && c.State.Terminated != nil {
			appEnd = c.State.Terminated.FinishedAt.Time
		}
	}
	for _, c := range pod.Status.InitContainerStatuses {
		if c.Name != injector.CollectorContainerName {
			continue
		}
		switch term := c.State.Terminated; {
		case term == nil:
			t.Errorf("the Job completed but its collector is not terminated: %+v", c.State)
		case term.ExitCode != 0:
			t.Errorf("the collector of the Job's pod exited with %d (%s): %s", term.ExitCode, term.Reason, term.Message)
		default:
			t.Logf("the collector stopped %v after the app", term.FinishedAt.Sub(appEnd))
		}
	}
	var want []string
	for i := 1; i <= jobLines; i++ {
		last := ""
		if i == jobLines {
			last = " (last)"
		}
		want = append(want, fmt.Sprintf("demo-app stdout line %d%s", i, last), fmt.Sprintf("demo-app stderr line %d%s", i, last))
	}
	var counts map[string]int
	err = scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		logs, err := e.sink.Logs(ctx, sinkapi.Filter{Namespace: nsShop, Pod: pod.Name, Container: scenario.AppName})
		if err != nil {
			return err
		}
		counts = map[string]int{}
		for _, l := range logs {
			counts[l.Body]++
		}
		var missing []string
		for _, w := range want {
			if counts[w] == 0 {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d lines of the Job's pod %s arrived; missing: %q", len(want)-len(missing), len(want), pod.Name, missing)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nthe collector's log:\n%s", err, containerLog(ctx, e, nsShop, pod.Name, injector.CollectorContainerName))
	}
	for _, w := range want {
		if counts[w] != 1 {
			t.Errorf("%q arrived %d times", w, counts[w])
		}
	}
}

// 5: the webhook left these pods exactly as they were created.
func testUntouched(ctx context.Context, t *testing.T, e *env) {
	for _, tc := range []struct{ ns, name string }{{nsShop, "opted-out"}, {nsPlain, "compare"}} {
		p, err := e.c.Client.CoreV1().Pods(tc.ns).Get(ctx, tc.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertUntouched(t, p)
	}
	waitRunning(ctx, t, e, nsShop, "opted-out")
}

func assertUntouched(t *testing.T, p *corev1.Pod) {
	t.Helper()
	who := p.Namespace + "/" + p.Name
	if _, ok := status(p); ok {
		t.Errorf("%s was injected", who)
	}
	if len(p.Spec.InitContainers) != 0 || len(p.Spec.Containers) != 1 {
		t.Errorf("%s: init containers %d, containers %d", who, len(p.Spec.InitContainers), len(p.Spec.Containers))
	}
	c := p.Spec.Containers[0]
	if len(c.Command) != 0 || len(c.Env) != 0 {
		t.Errorf("%s: command %q, env %v added", who, c.Command, c.Env)
	}
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, "fargate-otel") {
			t.Errorf("%s: volume %s added", who, v.Name)
		}
	}
	for k := range p.Annotations {
		if strings.HasPrefix(k, "fargate-otel.io/") {
			t.Errorf("%s: annotation %s added", who, k)
		}
	}
}

// 7: the API server itself says no, for the app's service account; the
// proxy's may (it is the only one that can).
func testNoNodesProxy(ctx context.Context, t *testing.T, e *env) {
	web := appPod(ctx, t, e, nsShop, "web")
	if canGetNodesProxy(ctx, t, e, nsShop, serviceAccount(web)) {
		t.Errorf("service account %s/%s may get nodes/proxy in mode proxy", nsShop, serviceAccount(web))
	}
	if !canGetNodesProxy(ctx, t, e, scenario.ReleaseNamespace, scenario.NodeProxyServiceAccount) {
		t.Errorf("the node proxy's service account may not get nodes/proxy: the proxy cannot work")
	}
}

func serviceAccount(p *corev1.Pod) string {
	if p.Spec.ServiceAccountName == "" {
		return "default"
	}
	return p.Spec.ServiceAccountName
}

// canGetNodesProxy asks the API server (SubjectAccessReview) whether a
// service account may get nodes/proxy on the node.
func canGetNodesProxy(ctx context.Context, t *testing.T, e *env, ns, sa string) bool {
	t.Helper()
	r, err := e.c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authzv1.ResourceAttributes{
			Verb: "get", Resource: "nodes", Subresource: "proxy", Name: e.c.NodeName,
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

// 8: the real CLI, as an administrator runs it, against the cluster.
func testDoctorHealthy(ctx context.Context, t *testing.T, e *env) {
	web := appPod(ctx, t, e, nsShop, "web")
	fleet := fleetOn(e.values)
	if fleet {
		// What doctor is to confirm, as the fleet's CLI sees it: the pod's
		// agent is back after the fleet outage of the subtest before.
		cli := scenario.FleetCLI{Bin: e.cli, Kubeconfig: e.c.Kubeconfig}
		if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
			f, err := cli.Fleet(ctx, "-n", nsShop)
			if err != nil {
				return err
			}
			for _, a := range f.Agents {
				if a.UID == string(web.UID) {
					if !a.Connected || !a.Health.Healthy {
						return fmt.Errorf("%s/%s in the fleet: connected %v, health %+v", nsShop, web.Name, a.Connected, a.Health)
					}
					return nil
				}
			}
			return fmt.Errorf("%s/%s is not in the fleet (%d agents in %s)", nsShop, web.Name, len(f.Agents), nsShop)
		}); err != nil {
			t.Fatalf("the fleet is on, but: %v", err)
		}
	}
	// Each step gets the node proxy's own upstream limit (30s), not the
	// default 10s: on this one busy node, a kubelet that has just started
	// fifteen pods once took 11s to answer /stats/summary.
	out, err := runDoctor(ctx, e, "-n", nsShop, "--pod", web.Name, "--timeout=30s")
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	want := []string{doctor.CheckWebhook, doctor.CheckSelected, doctor.CheckCertificate, doctor.CheckReachable,
		doctor.CheckInjected, doctor.CheckMode, doctor.CheckProxyService, doctor.CheckProxyCA, doctor.CheckProxyRBAC,
		doctor.CheckWorkloadAccess, doctor.CheckStatsRequest}
	if fleet {
		// The stale-sidecar check: the pod's agent is connected, healthy,
		// of this release and on its live settings.
		want = append(want, doctor.CheckFleet)
		if line := checkLine(doctor.OK, doctor.CheckFleet) + "1 sidecars connected"; !strings.Contains(out, line) {
			t.Errorf("doctor's %q check does not say %q of the one pod asked about:\n%s", doctor.CheckFleet, line, out)
		}
	} else if !strings.Contains(out, checkLine(doctor.Skip, doctor.CheckFleet)) {
		t.Errorf("with the fleet off, doctor did not skip %q:\n%s", doctor.CheckFleet, out)
	}
	for _, name := range want {
		if !strings.Contains(out, checkLine(doctor.OK, name)) {
			t.Errorf("doctor did not report %q ok:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "all checks passed.") {
		t.Errorf("doctor:\n%s", out)
	}
	t.Logf("doctor:\n%s", out)
}

// fleetOn says whether the scenario's chart values run the fleet server
// (fleet.enabled, true in the chart's values.yaml).
func fleetOn(values map[string]any) bool {
	f, ok := values["fleet"].(map[string]any)
	if !ok {
		return true
	}
	on, ok := f["enabled"].(bool)
	return !ok || on
}

// checkLine is how doctor prints a check's status and name.
func checkLine(s doctor.Status, name string) string {
	return fmt.Sprintf("  %-4s  %-22s ", s, name)
}

func runDoctor(ctx context.Context, e *env, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, append([]string{"doctor", "--kubeconfig", e.c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// 6: with no injector pod, the API server ignores the webhook (failurePolicy
// Ignore) and creates pods as they are.
func testFailOpen(ctx context.Context, t *testing.T, e *env) {
	cs := e.c.Client
	dep := injectorDeployment(ctx, t, e)
	scale(ctx, t, e, dep, 0)
	p := scenario.AppPod(nsShop, "while-down", e.appImage, corev1.PullIfNotPresent, nil, nil)
	p.Spec.RestartPolicy = corev1.RestartPolicyAlways
	start := time.Now()
	created, err := cs.CoreV1().Pods(nsShop).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("with the injector down, creating a pod failed: %v", err)
	}
	t.Logf("pod created in %v with the injector down", time.Since(start).Round(time.Millisecond))
	assertUntouched(t, created)
	waitRunning(ctx, t, e, nsShop, "while-down")
}

// 8: doctor names the fault while the webhook is down.
func testDoctorWebhookDown(ctx context.Context, t *testing.T, e *env) {
	dep := injectorDeployment(ctx, t, e)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 0 {
		scale(ctx, t, e, dep, 0)
	}
	out, err := runDoctor(ctx, e, "-n", nsShop)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("doctor with the webhook down: %v, want exit status 1", err)
	}
	if !strings.Contains(out, checkLine(doctor.Fail, doctor.CheckReachable)) {
		t.Errorf("doctor did not report %q failing:\n%s", doctor.CheckReachable, out)
	}
	t.Logf("doctor with the webhook down:\n%s", out)
	// Back up, for whatever runs next.
	scale(ctx, t, e, dep, e.injectorReplicas)
}

func injectorDeployment(ctx context.Context, t *testing.T, e *env) *appsv1.Deployment {
	t.Helper()
	d, err := e.c.Client.AppsV1().Deployments(scenario.ReleaseNamespace).Get(ctx, scenario.InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.injectorReplicas == 0 && d.Spec.Replicas != nil {
		e.injectorReplicas = *d.Spec.Replicas
	}
	return d
}

// scale sets the injector's replicas and waits until exactly that many of
// its pods exist and are ready (and its Service has that many endpoints).
func scale(ctx context.Context, t *testing.T, e *env, d *appsv1.Deployment, replicas int32) {
	t.Helper()
	cs := e.c.Client
	s, err := cs.AppsV1().Deployments(d.Namespace).GetScale(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := cs.AppsV1().Deployments(d.Namespace).UpdateScale(ctx, d.Name, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	err = scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		if int32(len(pods.Items)) != replicas {
			return fmt.Errorf("%d injector pods, want %d", len(pods.Items), replicas)
		}
		if replicas == 0 {
			return nil
		}
		return cluster.DeploymentAvailable(ctx, cs, d.Namespace, d.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func events(ctx context.Context, e *env, ns, name string) string {
	list, err := e.c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return " " + err.Error()
	}
	var b strings.Builder
	for _, ev := range list.Items {
		fmt.Fprintf(&b, "\n  %s %s: %s", ev.Type, ev.Reason, ev.Message)
	}
	return b.String()
}

func containerLog(ctx context.Context, e *env, ns, pod, container string) string {
	out, err := e.c.Kubectl(ctx, "-n", ns, "logs", pod, "-c", container, "--tail=40")
	if err != nil {
		return err.Error()
	}
	return string(out)
}
