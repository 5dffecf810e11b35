//go:build e2e

package product

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/images"
)

// Namespaces of the test.
const (
	nsGateway = "otel-gateway" // the OTLP sink
	nsShop    = "shop"         // opted in, kubelet stats through the node proxy
	nsDirect  = "shop-direct"  // opted in, kubelet stats mode direct
	nsPlain   = "plain"        // not opted in
)

// The Job's and the comparison pods' arguments (no command in any spec).
// The comparison writes its two streams 100 ms apart: containerd reads
// stdout and stderr in two goroutines, so two lines that reach it together
// (the wrapper, stalled on a busy node, passes on at once what waited) can
// swap in kubectl logs; with 30 ms, one run in about ten saw that swap.
var (
	jobLines    = 20
	jobArgs     = []string{fmt.Sprintf("-lines=%d", jobLines), "-interval=100ms"}
	compareArgs = []string{"-lines=8", "-interval=200ms", "-traces-every=-1"}
)

// env is what the subtests share.
type env struct {
	c        *cluster.Cluster
	appImage string
	sink     sinkapi.Client
	product  scenario.ProductImages
	helm     scenario.Helm
	values   map[string]any
	cli      string
	// injectorReplicas is the chart's, restored after the fail-open test.
	injectorReplicas int32
	// registry answers 500 for scenario.UnreadableRepository.
	registry *scenario.TestRegistry
	// gatewayApp is the gateway scenario's app pod, once its lines arrived.
	gatewayApp *corev1.Pod
}

func TestProduct(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	t0 := time.Now()
	step := func(format string, args ...any) {
		t.Logf("[%5.1fs] %s", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}
	e := &env{}
	// Only this run's logs and findings under _artifacts/e2e/TestProduct.
	_ = os.RemoveAll(filepath.Join(cluster.ArtifactsDir(), t.Name()))

	// Before the cluster: what a user has on their machine.
	product, err := scenario.FindProductImages()
	if err != nil {
		t.Fatal(err)
	}
	e.product = product
	helmBin, err := scenario.FindHelm()
	if err != nil {
		t.Fatal(err)
	}
	e.cli = gobuild.Binary(t, "FARGATE_OTEL_CLI", "./cmd/fargate-otel")
	bins, err := scenario.BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	step("project images, helm, CLI and the scenario's binaries ready")

	e.c = cluster.StartT(t, cluster.Options{})
	c := e.c
	cs := c.Client
	t.Cleanup(func() { keepDiagnostics(t, e) })
	step("cluster up")
	e.helm = scenario.Helm{Bin: helmBin, Kubeconfig: c.Kubeconfig, Log: t.Logf}

	// Images: the project's, as `make images` wrote them, imported into
	// containerd; the sink's imported too; the app's pushed to a registry
	// served at the node's address, from which the kubelet pulls it and the
	// injector reads its ENTRYPOINT and CMD.
	for _, archive := range product.Archives {
		if err := c.ImportImage(ctx, archive); err != nil {
			t.Fatal(err)
		}
	}
	sinkImg, sinkRef, err := bins.SinkImage(scenario.SinkRepository)
	if err != nil {
		t.Fatal(err)
	}
	sinkArchive, err := scenario.WriteArchive(t.TempDir(), sinkRef, sinkImg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(ctx, sinkArchive); err != nil {
		t.Fatal(err)
	}
	e.registry = scenario.ServeRegistryT(t, scenario.UnreadableRepository)
	appImg, appRef, err := bins.AppImage(cluster.RegistryHost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.Push(ctx, appRef, appImg); err != nil {
		t.Fatal(err)
	}
	e.appImage = appRef
	step("images imported; demo app pushed as %s", appRef)

	// The gateway: the OTLP sink, in a namespace of its own.
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsGateway, nil)); err != nil {
		t.Fatal(err)
	}
	dep, svc := scenario.Sink(nsGateway, sinkRef, corev1.PullNever)
	if err := scenario.ApplyDeployment(ctx, cs, dep); err != nil {
		t.Fatal(err)
	}
	if err := scenario.ApplyService(ctx, cs, svc); err != nil {
		t.Fatal(err)
	}

	// The chart, as the README says, with this cluster's values.
	e.values = scenario.ChartValues(scenario.ValuesOptions{
		Images:             product,
		ClusterName:        "e2e",
		SinkEndpoint:       scenario.SinkEndpoint(nsGateway),
		InsecureRegistries: []string{cluster.RegistryHost},
		AllowDirect:        true,
		KubeletStatsEvery:  5 * time.Second,
	})
	if err := e.helm.Install(ctx, e.values, 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	step("chart installed")
	if err := scenario.WaitDeployment(ctx, cs, nsGateway, scenario.SinkName, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	sinkSvc, err := cs.CoreV1().Services(nsGateway).Get(ctx, scenario.SinkName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The test runs in the cluster's network namespace: Services answer.
	e.sink = sinkapi.Client{Get: sinkapi.HTTPGetter(fmt.Sprintf("http://%s:%d", sinkSvc.Spec.ClusterIP, sinkapi.HTTPPort))}
	step("sink ready")

	// Every workload starts now; each subtest waits for its own.
	createWorkloads(ctx, t, e)
	fleet := startFleetScenario(ctx, t, e)
	step("workloads created")

	t.Run("1 an opted-in namespace admits a Deployment without command and a Job", func(t *testing.T) {
		testAdmitted(ctx, t, e)
	})
	t.Run("2 the pods are injected (native sidecar, wrapped command) and Running", func(t *testing.T) {
		testInjected(ctx, t, e)
	})
	t.Run("2 kubectl logs shows stdout and stderr exactly as without injection", func(t *testing.T) {
		testLogsUnchanged(ctx, t, e)
	})
	t.Run("3 the sink gets the app's lines from both streams with k8s attributes", func(t *testing.T) {
		testLogsArrive(ctx, t, e)
	})
	t.Run("3 kubelet stats arrive through the node proxy (mode proxy)", func(t *testing.T) {
		testKubeletStats(ctx, t, e, nsShop, "web", injector.KubeletStatsProxy)
	})
	t.Run("3 kubelet stats arrive in mode direct in a namespace labelled for it", func(t *testing.T) {
		testKubeletStats(ctx, t, e, nsDirect, "web-direct", injector.KubeletStatsDirect)
	})
	t.Run("3 the trace the app sends to localhost:4317 arrives", func(t *testing.T) {
		testTrace(ctx, t, e)
	})
	t.Run("4 the Job completes and its last lines arrive", func(t *testing.T) {
		testJob(ctx, t, e)
	})
	t.Run("5 opted-out pods and pods of other namespaces are untouched", func(t *testing.T) {
		testUntouched(ctx, t, e)
	})
	t.Run("10 the api log source: an entrypoint the registry cannot give (500), both streams once across collector, follower and app restarts", func(t *testing.T) {
		testLogSourceAPI(ctx, t, e)
	})
	t.Run("10 no workload service account may get pods/log, nor nodes/proxy outside mode direct", func(t *testing.T) {
		testNoLogAccess(ctx, t, e)
	})
	t.Run("7 the app's service account cannot get nodes/proxy in mode proxy", func(t *testing.T) {
		testNoNodesProxy(ctx, t, e)
	})
	t.Run("10 fleet: three injected pods appear in fargate-otel fleet within 30s with their identity and health", func(t *testing.T) {
		fleet.testAppear(ctx, t)
	})
	t.Run("10 fleet: an edit of the exporters ConfigMap moves the lines to a second sink live, none lost or repeated", func(t *testing.T) {
		fleet.testSwitch(ctx, t)
	})
	t.Run("10 fleet: a config that cannot start is rolled back and shown as failed", func(t *testing.T) {
		fleet.testFailed(ctx, t)
	})
	t.Run("10 fleet: deleting a fleet server pod moves its agents to another", func(t *testing.T) {
		fleet.testReplicaDeleted(ctx, t)
	})
	t.Run("10 fleet: with every fleet server down, telemetry keeps flowing and a new pod starts, its lines once", func(t *testing.T) {
		fleet.testAllDown(ctx, t)
	})
	t.Run("8 fargate-otel doctor reports the cluster healthy", func(t *testing.T) {
		testDoctorHealthy(ctx, t, e)
	})
	t.Run("6 with the injector scaled to zero, pods are still created", func(t *testing.T) {
		testFailOpen(ctx, t, e)
	})
	t.Run("8 fargate-otel doctor reports the fault when the webhook is down", func(t *testing.T) {
		testDoctorWebhookDown(ctx, t, e)
	})
	t.Run("9 the gateway tier: HPA and PDB on its pods, a gateway pod deleted while an app writes, no line lost", func(t *testing.T) { testGateway(ctx, t, e) })
	t.Run("9 the gateway tier: the app's traces reach the sink through the headless sampling Service, every trace whole", func(t *testing.T) {
		testGatewayTraces(ctx, t, e)
	})
	step("done")
}

// createWorkloads creates the namespaces and every workload of the test.
func createWorkloads(ctx context.Context, t *testing.T, e *env) {
	t.Helper()
	cs := e.c.Client
	enabled := map[string]string{scenario.InjectLabel: "enabled"}
	pull := corev1.PullIfNotPresent
	// The shop namespace and its Deployment in one step, as one apply of a
	// GitOps repository does: the Deployment's pod comes before or after
	// the injector's CA publisher got to the namespace (the webhook then
	// publishes the CA itself), and must get kubelet stats in mode proxy
	// either way (step 3).
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsShop, enabled)); err != nil {
		t.Fatal(err)
	}
	createDeployment(ctx, t, e, scenario.AppDeployment(nsShop, "web", e.appImage, pull, nil))
	for _, ns := range []*corev1.Namespace{
		scenario.Namespace(nsDirect, map[string]string{scenario.InjectLabel: "enabled", scenario.KubeletStatsLabel: "direct"}),
		scenario.Namespace(nsPlain, nil),
	} {
		if err := scenario.EnsureNamespace(ctx, cs, ns); err != nil {
			t.Fatal(err)
		}
	}
	// Namespaced objects need the namespace's default service account.
	for _, ns := range []string{nsShop, nsDirect, nsPlain} {
		if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	createDeployment(ctx, t, e, scenario.AppDeployment(nsDirect, "web-direct", e.appImage, pull, nil))
	if err := scenario.CreateJob(ctx, cs, scenario.AppJob(nsShop, "batch", e.appImage, pull, jobArgs)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{
		scenario.AppPod(nsShop, "compare", e.appImage, pull, compareArgs, nil),
		scenario.AppPod(nsPlain, "compare", e.appImage, pull, compareArgs, nil),
		scenario.AppPod(nsShop, "opted-out", e.appImage, pull, nil, map[string]string{scenario.InjectLabel: "disabled"}),
	} {
		if _, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
}

func createDeployment(ctx context.Context, t *testing.T, e *env, d *appsv1.Deployment) {
	t.Helper()
	if _, err := e.c.Client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment %s/%s: %v", d.Namespace, d.Name, err)
	}
}

// appPod waits for the single live pod of a Deployment or Job.
func appPod(ctx context.Context, t *testing.T, e *env, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		var err error
		pod, err = scenario.OnlyPod(ctx, e.c.Client, ns, "app.kubernetes.io/name="+name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitRunning waits until the pod runs with every container running.
func waitRunning(ctx context.Context, t *testing.T, e *env, ns, name string) *corev1.Pod {
	t.Helper()
	return waitPod(ctx, t, e, ns, name, scenario.PodRunning)
}

// waitSucceeded waits until the pod has run to completion.
func waitSucceeded(ctx context.Context, t *testing.T, e *env, ns, name string) *corev1.Pod {
	t.Helper()
	return waitPod(ctx, t, e, ns, name, scenario.PodSucceeded)
}

func waitPod(ctx context.Context, t *testing.T, e *env, ns, name string, ready func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	pod, err := scenario.WaitPod(ctx, e.c.Client, ns, name, 2*time.Minute, ready)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// status reads the injector's status annotation.
func status(p *corev1.Pod) (*injector.Status, bool) {
	raw, ok := p.Annotations[annotations.Status]
	if !ok {
		return nil, false
	}
	var s injector.Status
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, false
	}
	return &s, true
}

// wrappedArgv returns what the wrapper runs after "--" in the app container
// (command and args together, as the kubelet runs them), or ok false when
// the container is not wrapped.
func wrappedArgv(p *corev1.Pod, container string) ([]string, bool) {
	for _, c := range p.Spec.Containers {
		if c.Name != container {
			continue
		}
		argv := append(append([]string(nil), c.Command...), c.Args...)
		if len(argv) == 0 || argv[0] != injector.TeePath {
			return nil, false
		}
		i := slices.Index(argv, "--")
		if i < 0 {
			return nil, false
		}
		return argv[i+1:], true
	}
	return nil, false
}

// collectorConfig is the collector config an injected pod starts with.
func collectorConfig(p *corev1.Pod) string {
	out, err := injector.CollectorConfigOf(p)
	if err != nil {
		return ""
	}
	return string(out)
}
