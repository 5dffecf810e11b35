//go:build e2e

package product

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// The fleet on the cluster (docs/fleet.md): three injected pods whose
// exporters come from their namespace's ConfigMap show up in `fargate-otel
// fleet`; an edit of that ConfigMap moves their telemetry to a second sink
// live, a config that cannot start is rolled back and shown as failed, the
// agents of a deleted fleet server pod move to another, and telemetry
// flows with every fleet server down, when a new pod starts as ever. The app writes numbered lines the
// whole time; every number must arrive exactly once across both sinks.

const (
	nsFleet = "shop-fleet"     // opted in; the pods name its exporters ConfigMap
	nsSinkB = "otel-gateway-b" // the second sink
	// fleetApp is the Deployment of the three pods.
	fleetApp      = "fleet-web"
	fleetNewPod   = "fleet-new" // created while every fleet server is down
	fleetPods     = 3
	fleetCM       = "team-exporters"
	fleetSource   = "configmap:" + fleetCM + "/" + annotations.DefaultExportersKey
	sinkA, sinkB  = "a", "b"
	appearWithin  = 30 * time.Second
	badCAFile     = "/etc/fargate-otel/no-such-ca.crt"
	linesPerCheck = 10 // lines (2 s at fleetArgs' pace) that must arrive after each step
)

// Five lines a second on each stream, no traces (only the log lines count).
var fleetArgs = []string{"-interval=200ms", "-traces-every=-1"}

// The exporters ConfigMap's three contents: sink a (what the pods are
// created with), sink b, and sink b with a CA file that does not exist
// (valid, but the exporter cannot start).
var (
	exportersA = scenario.OTLPExporter("otlp_grpc/a", scenario.SinkEndpoint(nsGateway))
	exportersB = scenario.OTLPExporter("otlp_grpc/b", scenario.SinkEndpoint(nsSinkB))
	exportersX = map[string]any{"id": "otlp_grpc/b-tls", "config": map[string]any{
		"endpoint": scenario.SinkEndpoint(nsSinkB),
		"tls":      map[string]any{"ca_file": badCAFile},
	}}
)

// fleetScenario is what the fleet's subtests share, in order.
type fleetScenario struct {
	e     *env
	cli   scenario.FleetCLI
	sinkB sinkapi.Client
	// pods are the three pods as they ran before anything changed.
	pods []corev1.Pod
	// good is the config hash each sidecar (by pod uid) runs on sink b.
	good map[string]string
	// desiredB is the hash of the live settings that send to sink b.
	desiredB string
}

// startFleetScenario creates the second sink, the namespace, its exporters
// ConfigMap and the Deployment; the subtests wait for them.
func startFleetScenario(ctx context.Context, t *testing.T, e *env) *fleetScenario {
	t.Helper()
	cs := e.c.Client
	fs := &fleetScenario{e: e, cli: scenario.FleetCLI{Bin: e.cli, Kubeconfig: e.c.Kubeconfig}, good: map[string]string{}}
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsSinkB, nil)); err != nil {
		t.Fatal(err)
	}
	sinkImage := ""
	if d, err := cs.AppsV1().Deployments(nsGateway).Get(ctx, scenario.SinkName, metav1.GetOptions{}); err == nil {
		sinkImage = d.Spec.Template.Spec.Containers[0].Image
	} else {
		t.Fatal(err)
	}
	dep, svc := scenario.Sink(nsSinkB, sinkImage, corev1.PullNever)
	if err := scenario.ApplyDeployment(ctx, cs, dep); err != nil {
		t.Fatal(err)
	}
	if err := scenario.ApplyService(ctx, cs, svc); err != nil {
		t.Fatal(err)
	}
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsFleet, map[string]string{scenario.InjectLabel: "enabled"})); err != nil {
		t.Fatal(err)
	}
	fs.setExporters(ctx, t, exportersA)
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(nsFleet).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	d := scenario.AppDeployment(nsFleet, fleetApp, e.appImage, corev1.PullIfNotPresent, fleetArgs)
	d.Spec.Replicas = ptrTo[int32](fleetPods)
	d.Spec.Template.Annotations = map[string]string{annotations.Exporters: fleetCM}
	createDeployment(ctx, t, e, d)
	return fs
}

func (fs *fleetScenario) setExporters(ctx context.Context, t *testing.T, exporters ...map[string]any) {
	t.Helper()
	cm, err := scenario.ExportersConfigMap(nsFleet, fleetCM, exporters...)
	if err != nil {
		t.Fatal(err)
	}
	if err := scenario.ApplyConfigMap(ctx, fs.e.c.Client, cm); err != nil {
		t.Fatal(err)
	}
}

// 10: the three pods are in `fargate-otel fleet` within 30 s of running,
// as themselves, healthy, on the live settings of their ConfigMap.
func (fs *fleetScenario) testAppear(ctx context.Context, t *testing.T) {
	e := fs.e
	if err := scenario.WaitDeployment(ctx, e.c.Client, nsFleet, fleetApp, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	pods := fs.listPods(ctx, t)
	// Each pod within 30 s of its collector's start: what is left of that
	// for the last one to start (at least a few seconds, to read the
	// fleet at all), and each agent's connection time checked after.
	var lastStart time.Time
	for _, p := range pods {
		if s, ok := status(&p); !ok || s.ConfigHash == "" {
			t.Fatalf("%s was not injected with a config hash: %v", p.Name, s)
		}
		if st := collectorStarted(&p); st.After(lastStart) {
			lastStart = st
		}
	}
	var f api.Fleet
	err := scenario.Poll(ctx, max(appearWithin-time.Since(lastStart), 5*time.Second), func(ctx context.Context) error {
		var err error
		if f, err = fs.cli.Fleet(ctx, "-n", nsFleet); err != nil {
			return err
		}
		return checkIdentities(e, f, pods, fs.fleetPodNames(ctx, t), bootstrapHash)
	})
	if err != nil {
		t.Fatalf("the pods are not all in fargate-otel fleet, healthy, within %v of their start: %v", appearWithin, err)
	}
	var took []string
	for _, p := range pods {
		for _, a := range f.Agents {
			if a.UID != string(p.UID) {
				continue
			}
			// The kubelet's start time has whole seconds.
			d := a.ConnectedAt.Sub(collectorStarted(&p))
			if d > appearWithin {
				t.Errorf("%s connected to the fleet %v after its collector started, want within %v", p.Name, d, appearWithin)
			}
			took = append(took, fmt.Sprintf("%s %v", p.Name, d.Round(100*time.Millisecond)))
		}
	}
	t.Logf("the %d pods are in fargate-otel fleet, connected and healthy; connected after their collector started (to the second): %s",
		fleetPods, strings.Join(took, ", "))
	table, err := fs.cli.Table(ctx, "-n", nsFleet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if row := rowOf(table, p.Name); !strings.Contains(row, " healthy ") || !strings.Contains(row, " applied ") {
			t.Errorf("fargate-otel fleet shows %s as %q, want healthy and applied:\n%s", p.Name, row, table)
		}
	}
	t.Logf("fargate-otel fleet -n %s:\n%s", nsFleet, table)
	fs.pods = pods
	// The second sink, for the next step.
	if err := scenario.WaitDeployment(ctx, e.c.Client, nsSinkB, scenario.SinkName, time.Minute); err != nil {
		t.Fatal(err)
	}
	svc, err := e.c.Client.CoreV1().Services(nsSinkB).Get(ctx, scenario.SinkName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs.sinkB = sinkapi.Client{Get: sinkapi.HTTPGetter(fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, sinkapi.HTTPPort))}
}

// checkIdentities is nil when every pod is in f as itself: its uid, node,
// cluster, this release's versions, its exporters source and bootstrap
// hash, running config, connected to a fleet server pod, healthy, its live
// settings applied.
func checkIdentities(e *env, f api.Fleet, pods []corev1.Pod, replicas []string, config func(*corev1.Pod) string) error {
	byUID := map[string]api.Agent{}
	for _, a := range f.Agents {
		byUID[a.UID] = a
	}
	var errs []error
	for _, p := range pods {
		a, ok := byUID[string(p.UID)]
		if !ok {
			errs = append(errs, fmt.Errorf("%s (uid %s) is not in the fleet (%d agents)", p.Name, p.UID, len(f.Agents)))
			continue
		}
		var wrong []string
		for _, c := range []struct {
			what      string
			got, want any
		}{
			{"namespace", a.Namespace, nsFleet}, {"pod", a.Pod, p.Name}, {"node", a.Node, e.c.NodeName}, {"cluster", a.Cluster, "e2e"},
			{"collector version", a.CollectorVersion, f.Version}, {"injector version", a.InjectorVersion, f.Version},
			{"exporters source", a.ExportersSource, fleetSource},
			{"bootstrap hash", a.BootstrapHash, bootstrapHash(&p)}, {"config hash", a.ConfigHash, config(&p)},
			{"connected", a.Connected, true}, {"connected to a fleet server pod", slices.Contains(replicas, a.Replica), true},
			{"health reported", a.Health.Reported, true}, {"healthy", a.Health.Healthy, true}, {"health status", a.Health.Status, "Running"},
			{"live settings sent", a.RemoteConfig.Desired != "", true}, {"live settings status", a.RemoteConfig.Status, "APPLIED"},
			{"live settings applied are the desired", a.RemoteConfig.Last == a.RemoteConfig.Desired, true},
			{"stale", len(a.Stale), 0},
		} {
			if c.got != c.want {
				wrong = append(wrong, fmt.Sprintf("%s %v, want %v", c.what, c.got, c.want))
			}
		}
		if len(wrong) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s", p.Name, strings.Join(wrong, "; ")))
		}
	}
	if f.Version == "" {
		errs = append(errs, errors.New("the fleet's view has no version"))
	}
	return errors.Join(errs...)
}

// 10: an edit of the exporters ConfigMap moves the pods' telemetry to the
// second sink, live: no pod re-created or restarted, no line lost or
// repeated, the switch a clean cut.
func (fs *fleetScenario) testSwitch(ctx context.Context, t *testing.T) {
	fs.need(t)
	// Lines flow to sink a first.
	if _, err := fs.waitLines(ctx, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	before := fs.agents(ctx, t)
	fs.setExporters(ctx, t, exportersB)
	edited := time.Now()
	// Every pod's lines reach sink b, and the fleet says it applied them.
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		accs, err := fs.accounts(ctx, nil)
		if err != nil {
			return err
		}
		for _, p := range fs.pods {
			if accs[p.Name].Run("stdout", sinkB).Count == 0 {
				return fmt.Errorf("no line of %s at sink b yet: %s", p.Name, accs[p.Name])
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, fs.collectorLogs(ctx))
	}
	atB := time.Since(edited)
	var agents map[string]api.Agent
	if err := scenario.Poll(ctx, 30*time.Second, func(ctx context.Context) error {
		var err error
		agents, err = fs.agentsErr(ctx)
		if err != nil {
			return err
		}
		for _, p := range fs.pods {
			a, old := agents[string(p.UID)], before[string(p.UID)]
			rc := a.RemoteConfig
			if rc.Desired == old.RemoteConfig.Desired || rc.Last != rc.Desired || rc.Status != "APPLIED" || a.ConfigHash == a.BootstrapHash || !a.Health.Healthy {
				return fmt.Errorf("%s: live settings %+v, config hash %s (bootstrap %s), healthy %v: not yet on the new settings", p.Name, rc, a.ConfigHash, a.BootstrapHash, a.Health.Healthy)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range fs.pods {
		a := agents[string(p.UID)]
		fs.good[string(p.UID)] = a.ConfigHash
		fs.desiredB = a.RemoteConfig.Desired
	}
	t.Logf("the edit reached sink b from every pod in %v; the fleet shows them APPLIED (config %s)", atB.Round(100*time.Millisecond), short(fs.desiredB))
	accs, err := fs.waitLines(ctx, linesPerCheck, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fs.logAccounts(t, "across the switch", accs)
	fs.checkPodsUnchanged(ctx, t)
}

// 10: a config that validates but cannot start is rolled back: the fleet
// shows it FAILED with the collector's error, the sidecars unhealthy by
// the CLI's filter, and the lines keep reaching sink b, none lost; the
// ConfigMap put right again is applied at once.
func (fs *fleetScenario) testFailed(ctx context.Context, t *testing.T) {
	fs.need(t)
	if fs.desiredB == "" {
		t.Fatal("the switch to sink b did not happen")
	}
	fs.setExporters(ctx, t, exportersX)
	edited := time.Now()
	var agents map[string]api.Agent
	err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		var err error
		if agents, err = fs.agentsErr(ctx); err != nil {
			return err
		}
		for _, p := range fs.pods {
			a := agents[string(p.UID)]
			rc := a.RemoteConfig
			if rc.Desired == fs.desiredB || rc.Last != rc.Desired || rc.Status != "FAILED" {
				return fmt.Errorf("%s: live settings %+v: not FAILED on the new settings yet", p.Name, rc)
			}
			if !strings.Contains(rc.Error, badCAFile) {
				return fmt.Errorf("%s: FAILED with %q, which does not name the CA file %s", p.Name, rc.Error, badCAFile)
			}
			// Rolled back: running the last good config, healthy.
			if !a.Connected || a.ConfigHash != fs.good[string(p.UID)] || !a.Health.Healthy || !a.Unhealthy() {
				return fmt.Errorf("%s: config hash %s (last good %s), healthy %v, connected %v: not rolled back yet", p.Name, a.ConfigHash, fs.good[string(p.UID)], a.Health.Healthy, a.Connected)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, fs.collectorLogs(ctx))
	}
	a0 := agents[string(fs.pods[0].UID)]
	t.Logf("%v after the edit, every sidecar is FAILED and rolled back: %s", time.Since(edited).Round(100*time.Millisecond), a0.RemoteConfig.Error)
	// What a user runs to find them.
	unhealthy, err := fs.cli.Fleet(ctx, "-n", nsFleet, "--unhealthy")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range unhealthy.Agents {
		names = append(names, a.Pod)
	}
	slices.Sort(names)
	if want := fs.podNames(); !slices.Equal(names, want) {
		t.Errorf("fargate-otel fleet --unhealthy lists %v, want %v", names, want)
	}
	table, err := fs.cli.Table(ctx, "-n", nsFleet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range fs.pods {
		if row := rowOf(table, p.Name); !strings.Contains(row, " failed ") {
			t.Errorf("fargate-otel fleet shows %s as %q, want failed", p.Name, row)
		}
	}
	t.Logf("fargate-otel fleet -n %s:\n%s", nsFleet, table)
	// The telemetry goes on to sink b, with the last good config.
	accs, err := fs.waitLines(ctx, linesPerCheck, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fs.logAccounts(t, "across the failed config and its rollback", accs)
	fs.checkPodsUnchanged(ctx, t)

	// Put right (sink b again): the settings that run already, applied
	// without a swap.
	fs.setExporters(ctx, t, exportersB)
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		agents, err := fs.agentsErr(ctx)
		if err != nil {
			return err
		}
		for _, p := range fs.pods {
			a := agents[string(p.UID)]
			if rc := a.RemoteConfig; rc.Desired != fs.desiredB || rc.Last != rc.Desired || rc.Status != "APPLIED" || a.Unhealthy() || a.ConfigHash != fs.good[string(p.UID)] {
				return fmt.Errorf("%s: live settings %+v, config hash %s: not back on sink b's settings", p.Name, rc, a.ConfigHash)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// 10: the agents of a deleted fleet server pod reconnect to the other
// replica (or its replacement), within seconds.
func (fs *fleetScenario) testReplicaDeleted(ctx context.Context, t *testing.T) {
	fs.need(t)
	f, err := fs.cli.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, a := range f.Agents {
		if a.UID == string(fs.pods[0].UID) {
			victim = a.Replica
		}
	}
	if victim == "" {
		t.Fatalf("%s is not in the fleet", fs.pods[0].Name)
	}
	var moving []api.Agent
	perReplica := map[string]int{}
	for _, a := range f.Agents {
		if a.Connected {
			perReplica[a.Replica]++
			if a.Replica == victim {
				moving = append(moving, a)
			}
		}
	}
	if err := fs.e.c.Client.CoreV1().Pods(scenario.ReleaseNamespace).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	t.Logf("deleted fleet server pod %s; connected agents per replica: %v", victim, perReplica)
	moved := map[string]string{}
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		f, err := fs.cli.Fleet(ctx)
		if err != nil {
			return err
		}
		for _, m := range moving {
			for _, a := range f.Agents {
				if a.UID == m.UID && a.Connected && a.Replica != victim {
					moved[m.Namespace+"/"+m.Pod] = a.Replica
				}
			}
		}
		if len(moved) < len(moving) {
			return fmt.Errorf("%d of the %d agents of %s connected to another replica: %v", len(moved), len(moving), victim, moved)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the %d agents of %s are connected to another replica %v after its deletion: %v", len(moving), victim, time.Since(deleted).Round(100*time.Millisecond), moved)
	if err := scenario.WaitDeployment(ctx, fs.e.c.Client, scenario.ReleaseNamespace, scenario.FleetDeployment, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	fs.checkPodsUnchanged(ctx, t)
}

// 10: with every fleet server down the lines keep arriving, none lost, and
// a pod created then starts and sends its lines (newPodWhileDown);
// restored, every sidecar of the cluster, that pod's too, is back in the
// fleet.
func (fs *fleetScenario) testAllDown(ctx context.Context, t *testing.T) {
	fs.need(t)
	cs := fs.e.c.Client
	dep, err := cs.AppsV1().Deployments(scenario.ReleaseNamespace).Get(ctx, scenario.FleetDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := *dep.Spec.Replicas
	restored := false
	restore := func() {
		if !restored {
			restored = true
			scale(ctx, t, fs.e, dep, replicas)
		}
	}
	defer restore() // whatever happens: doctor and the rest run after
	scale(ctx, t, fs.e, dep, 0)
	down := time.Now()
	accs, err := fs.waitLines(ctx, 4*linesPerCheck, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fs.logAccounts(t, fmt.Sprintf("with no fleet server (down for %v)", time.Since(down).Round(100*time.Millisecond)), accs)
	fs.checkPodsUnchanged(ctx, t)
	newPod := fs.newPodWhileDown(ctx, t)

	restore()
	up := time.Now()
	want := fs.agentPods(ctx, t)
	if !slices.ContainsFunc(want, func(p corev1.Pod) bool { return p.UID == newPod.UID }) {
		t.Errorf("%s, created while the fleet was down, is not among the running pods with a fleet agent", newPod.Name)
	}
	var missing []string
	if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		f, err := fs.cli.Fleet(ctx)
		if err != nil {
			return err
		}
		connected := map[string]bool{}
		for _, a := range f.Agents {
			connected[a.UID] = a.Connected
		}
		missing = missing[:0]
		for _, p := range want {
			if !connected[string(p.UID)] {
				missing = append(missing, p.Namespace+"/"+p.Name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d sidecars not connected again: %v", len(missing), len(want), missing)
		}
		if err := checkIdentities(fs.e, f, fs.pods, fs.fleetPodNames(ctx, t), func(p *corev1.Pod) string { return fs.good[string(p.UID)] }); err != nil {
			return err
		}
		// Their figures (sent on every connect): the lines their
		// collectors read since they started.
		for _, a := range f.Agents {
			if a.Namespace == nsFleet && a.Figures.LinesRead == 0 {
				return fmt.Errorf("%s: no lines read in its figures yet (%+v)", a.Pod, a.Figures)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet servers back: all %d sidecars of the cluster connected again %v after they were ready", len(want), time.Since(up).Round(100*time.Millisecond))
	if !t.Failed() {
		// The pods write on: the gateway scenario after this needs the node.
		if err := cs.AppsV1().Deployments(nsFleet).Delete(ctx, fleetApp, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
		if err := cs.CoreV1().Pods(nsFleet).Delete(ctx, newPod.Name, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	}
}

// newPodWhileDown: a pod created while no fleet server runs is injected
// as ever (its sidecar has a fleet agent, which cannot connect), becomes
// Ready, restarts no container, and its numbered lines arrive exactly once:
// a fleet outage never holds an app back.
func (fs *fleetScenario) newPodWhileDown(ctx context.Context, t *testing.T) *corev1.Pod {
	t.Helper()
	e := fs.e
	p := scenario.AppPod(nsFleet, fleetNewPod, e.appImage, corev1.PullIfNotPresent, fleetArgs, nil)
	// Always: a container that exits is restarted, and counted, not left
	// terminated.
	p.Spec.RestartPolicy = corev1.RestartPolicyAlways
	p.Annotations = map[string]string{annotations.Exporters: fleetCM}
	created := time.Now()
	p, err := e.c.Client.CoreV1().Pods(nsFleet).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("with every fleet server down, creating a pod failed: %v", err)
	}
	if s, ok := status(p); !ok || s.ConfigHash == "" {
		t.Fatalf("%s, created with every fleet server down, was not injected (status %v); events:%s", p.Name, s, events(ctx, e, nsFleet, p.Name))
	}
	if !hasFleetAgent(p) {
		t.Fatalf("%s was injected without a fleet agent (no %s in its collector): the outage would prove nothing", p.Name, injector.FleetEndpointEnv)
	}
	p = waitPod(ctx, t, e, nsFleet, p.Name, podReady)
	ready := time.Since(created)
	f := sinkapi.Filter{Namespace: nsFleet, Pod: p.Name, Container: scenario.AppName}
	const upTo = 2 * linesPerCheck
	var acc scenario.LineAccount
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		var err error
		if acc, err = fs.account(ctx, f, upTo); err != nil {
			return err
		}
		return acc.Gaps()
	}); err != nil {
		t.Fatalf("%s, created with the fleet down: %v (%s)\nits collector:\n%s", p.Name, err, acc, containerLog(ctx, e, nsFleet, p.Name, injector.CollectorContainerName))
	}
	if err := acc.Faults(); err != nil {
		t.Errorf("%s, created with the fleet down: %v (%s)", p.Name, err, acc)
	}
	// Still ready, nothing restarted, now that it has run for a while.
	now, err := e.c.Client.CoreV1().Pods(nsFleet).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := podReady(now); err != nil {
		t.Errorf("%s, created with the fleet down: %v", p.Name, err)
	}
	rs := restarts(now)
	if _, ok := rs[injector.CollectorContainerName]; !ok {
		t.Errorf("%s: no status of its collector: %v", p.Name, rs)
	}
	for c, n := range rs {
		if n != 0 {
			t.Errorf("%s, created with the fleet down: container %s restarted %d times\nits collector:\n%s", p.Name, c, n, containerLog(ctx, e, nsFleet, p.Name, injector.CollectorContainerName))
		}
	}
	t.Logf("with every fleet server down, %s was created injected, Ready after %v, no restart; every line up to %d exactly once: %s",
		p.Name, ready.Round(100*time.Millisecond), upTo, acc)
	return now
}

// podReady is nil when the pod runs (scenario.PodRunning) and is Ready.
func podReady(p *corev1.Pod) error {
	if err := scenario.PodRunning(p); err != nil {
		return err
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("running, not Ready: %s", cluster.DescribePod(p))
}

// hasFleetAgent says whether the pod's collector sidecar runs a fleet agent.
func hasFleetAgent(p *corev1.Pod) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == injector.CollectorContainerName && slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == injector.FleetEndpointEnv && v.Value != "" }) {
			return true
		}
	}
	return false
}

func (fs *fleetScenario) need(t *testing.T) {
	t.Helper()
	if len(fs.pods) == 0 {
		t.Fatal("the fleet's pods did not come up (see the first fleet subtest)")
	}
}

// listPods lists the Deployment's pods, waiting for exactly fleetPods.
func (fs *fleetScenario) listPods(ctx context.Context, t *testing.T) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		list, err := fs.e.c.Client.CoreV1().Pods(nsFleet).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + fleetApp})
		if err != nil {
			return err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				if err := scenario.PodRunning(&p); err != nil {
					return err
				}
				pods = append(pods, p)
			}
		}
		if len(pods) != fleetPods {
			return fmt.Errorf("%d pods of %s, want %d", len(pods), fleetApp, fleetPods)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods
}

func (fs *fleetScenario) podNames() []string {
	var out []string
	for _, p := range fs.pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

// checkPodsUnchanged: the same pods (uids), no container restarted.
func (fs *fleetScenario) checkPodsUnchanged(ctx context.Context, t *testing.T) {
	t.Helper()
	now := fs.listPods(ctx, t)
	for i, p := range fs.pods {
		q := now[i]
		if q.UID != p.UID {
			t.Errorf("pod %s (uid %s) was replaced by %s (uid %s)", p.Name, p.UID, q.Name, q.UID)
			continue
		}
		if a, b := restarts(&p), restarts(&q); !maps.Equal(a, b) {
			t.Errorf("pod %s: restart counts %v, were %v", p.Name, b, a)
		}
	}
}

func restarts(p *corev1.Pod) map[string]int32 {
	out := map[string]int32{}
	for _, c := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		out[c.Name] = c.RestartCount
	}
	return out
}

// bootstrapHash names the config the pod was injected with.
func bootstrapHash(p *corev1.Pod) string {
	if s, ok := status(p); ok {
		return s.ConfigHash
	}
	return ""
}

// collectorStarted is when the pod's collector sidecar started.
func collectorStarted(p *corev1.Pod) time.Time {
	for _, c := range p.Status.InitContainerStatuses {
		if c.Name == injector.CollectorContainerName && c.State.Running != nil {
			return c.State.Running.StartedAt.Time
		}
	}
	return p.CreationTimestamp.Time
}

// fleetPodNames are the fleet server's pods now.
func (fs *fleetScenario) fleetPodNames(ctx context.Context, t *testing.T) []string {
	t.Helper()
	pods, err := fs.e.c.Client.CoreV1().Pods(scenario.ReleaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: api.PodSelector})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	return out
}

// agentPods are the running pods of the cluster whose sidecar has a fleet
// agent: what must be back in the fleet.
func (fs *fleetScenario) agentPods(ctx context.Context, t *testing.T) []corev1.Pod {
	t.Helper()
	pods, err := fs.e.c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if hasFleetAgent(&p) {
			out = append(out, p)
		}
	}
	return out
}

func (fs *fleetScenario) agents(ctx context.Context, t *testing.T) map[string]api.Agent {
	t.Helper()
	out, err := fs.agentsErr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// agentsErr are the namespace's agents by uid, as the CLI shows them.
func (fs *fleetScenario) agentsErr(ctx context.Context) (map[string]api.Agent, error) {
	f, err := fs.cli.Fleet(ctx, "-n", nsFleet)
	if err != nil {
		return nil, err
	}
	out := map[string]api.Agent{}
	for _, a := range f.Agents {
		out[a.UID] = a
	}
	for _, p := range fs.pods {
		if _, ok := out[string(p.UID)]; !ok {
			return nil, fmt.Errorf("%s is not in the fleet", p.Name)
		}
	}
	return out, nil
}

// accounts are each pod's numbered lines at sink a then sink b, numbers
// checked for gaps up to upTo(pod) (0: none checked).
func (fs *fleetScenario) accounts(ctx context.Context, upTo map[string]int) (map[string]scenario.LineAccount, error) {
	out := map[string]scenario.LineAccount{}
	for _, p := range fs.pods {
		acc, err := fs.account(ctx, sinkapi.Filter{Namespace: nsFleet, Pod: p.Name, Container: scenario.AppName}, upTo[p.Name])
		if err != nil {
			return nil, err
		}
		out[p.Name] = acc
	}
	return out, nil
}

// account is one container's numbered lines at sink a then sink b.
func (fs *fleetScenario) account(ctx context.Context, f sinkapi.Filter, upTo int) (scenario.LineAccount, error) {
	var sinks []scenario.SinkLines
	for _, s := range []struct {
		name string
		c    sinkapi.Client
	}{{sinkA, fs.e.sink}, {sinkB, fs.sinkB}} {
		logs, err := s.c.Logs(ctx, f)
		if err != nil {
			return scenario.LineAccount{}, fmt.Errorf("sink %s: %w", s.name, err)
		}
		bodies := make([]string, 0, len(logs))
		for _, l := range logs {
			bodies = append(bodies, l.Body)
		}
		sinks = append(sinks, scenario.SinkLines{Sink: s.name, Bodies: bodies})
	}
	return scenario.AccountLines(upTo, sinks), nil
}

// waitLines waits until, for every pod, each line up to `more` past the
// highest that had arrived when called is at a sink, then fails on a line
// that arrived twice or at the old sink after the new one.
func (fs *fleetScenario) waitLines(ctx context.Context, more int, timeout time.Duration) (map[string]scenario.LineAccount, error) {
	now, err := fs.accounts(ctx, nil)
	if err != nil {
		return nil, err
	}
	upTo := map[string]int{}
	for name, acc := range now {
		upTo[name] = max(acc.MinMax()+more, 1)
	}
	var accs map[string]scenario.LineAccount
	err = scenario.Poll(ctx, timeout, func(ctx context.Context) error {
		var err error
		if accs, err = fs.accounts(ctx, upTo); err != nil {
			return err
		}
		var errs []error
		for _, p := range fs.pods {
			if err := accs[p.Name].Gaps(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w (%s)", p.Name, err, accs[p.Name]))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return accs, fmt.Errorf("%w\n%s", err, fs.collectorLogs(ctx))
	}
	var errs []error
	for _, p := range fs.pods {
		if err := accs[p.Name].Faults(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (%s)", p.Name, err, accs[p.Name]))
		}
	}
	return accs, errors.Join(errs...)
}

func (fs *fleetScenario) logAccounts(t *testing.T, when string, accs map[string]scenario.LineAccount) {
	t.Helper()
	for _, p := range fs.pods {
		t.Logf("%s, %s: every line up to %d exactly once: %s", when, p.Name, accs[p.Name].UpTo, accs[p.Name])
	}
}

// collectorLogs are the last lines of the pods' collectors, for a failure.
func (fs *fleetScenario) collectorLogs(ctx context.Context) string {
	var b strings.Builder
	for _, p := range fs.pods {
		fmt.Fprintf(&b, "the collector of %s:\n%s\n", p.Name, containerLog(ctx, fs.e, nsFleet, p.Name, injector.CollectorContainerName))
	}
	return b.String()
}

// rowOf is the table line of pod.
func rowOf(table, pod string) string {
	for _, l := range strings.Split(table, "\n") {
		if strings.Contains(l, " "+pod+" ") {
			return l
		}
	}
	return ""
}

func short(h string) string { return h[:min(len(h), 12)] }

func ptrTo[T any](v T) *T { return &v }
