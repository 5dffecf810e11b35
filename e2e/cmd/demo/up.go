package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/internal/images"
)

// localNetNS is the local cluster's network namespace (e2e/cmd/localcluster).
const localNetNS = "/run/netns/fargate-otel-local"

func up(ctx context.Context, o options, cs kubernetes.Interface) error {
	t0 := time.Now()
	helmBin, err := scenario.FindHelm()
	if err != nil {
		return err
	}
	product, err := scenario.FindProductImages()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fargate-otel-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	where := "the cluster of " + o.kubeconfig
	if o.local {
		where = "the local cluster"
	}
	step("building the demo app, the OTLP sink and a registry (static Go binaries)")
	bins, err := scenario.BuildBinaries(ctx, tmp)
	if err != nil {
		return err
	}
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsGateway, nil)); err != nil {
		return err
	}

	// Two hops, as a user runs them: the sidecars send to the chart's
	// gateway tier, the gateway to the sink.
	vo := scenario.ValuesOptions{ClusterName: "demo", SinkEndpoint: scenario.SinkEndpoint(nsGateway), KubeletStatsEvery: 10 * time.Second, Gateway: true}
	var sinkImage, appRef string
	sinkPull := corev1.PullNever
	if o.local {
		step("loading the images into %s", where)
		if sinkImage, appRef, err = loadLocal(ctx, o, cs, product, bins); err != nil {
			return err
		}
		vo.Images = product
		vo.InsecureRegistries = []string{cluster.RegistryHost}
	} else {
		if o.registry == "" {
			return errors.New("KUBECONFIG names a cluster other than the local one: say where its nodes can pull the demo's images from, e.g. make demo DEMO_REGISTRY=registry.example.com/you (add DEMO_REGISTRY_INSECURE=true for plain HTTP), or unset KUBECONFIG for the local cluster")
		}
		step("pushing the images to %s", o.registry)
		if vo.Images, sinkImage, appRef, err = pushAll(ctx, o, product, bins); err != nil {
			return err
		}
		sinkPull = corev1.PullIfNotPresent
		if o.insecure {
			vo.InsecureRegistries = []string{registryHost(o.registry)}
		}
	}

	step("deploying the OTLP sink (the backend the gateway sends to) in namespace %s", nsGateway)
	dep, svc := scenario.Sink(nsGateway, sinkImage, sinkPull)
	if err := scenario.ApplyDeployment(ctx, cs, dep); err != nil {
		return err
	}
	if err := scenario.ApplyService(ctx, cs, svc); err != nil {
		return err
	}

	step("helm install %s %s -n %s (scope all, gateway.enabled with the sink as its OTLP destination)", scenario.Release, scenario.ChartDir, scenario.ReleaseNamespace)
	helm := scenario.Helm{Bin: helmBin, Kubeconfig: o.kubeconfig}
	if err := helm.Install(ctx, scenario.ChartValues(vo), 5*time.Minute); err != nil {
		return err
	}
	if err := scenario.WaitDeployment(ctx, cs, nsGateway, scenario.SinkName, 3*time.Minute); err != nil {
		return err
	}
	if err := scenario.WaitDeployment(ctx, cs, scenario.ReleaseNamespace, scenario.GatewayDeployment, 3*time.Minute); err != nil {
		return err
	}
	info("the gateway: Deployment %s/%s (HPA floor %d, PDB, trace-ID routing to tail sampling), sending to %s",
		scenario.ReleaseNamespace, scenario.GatewayDeployment, scenario.GatewayReplicas, scenario.SinkEndpoint(nsGateway))

	step("kubectl label namespace %s %s=enabled, and a Deployment of the demo app (no command in its pod spec)", nsDemo, scenario.InjectLabel)
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsDemo, map[string]string{scenario.InjectLabel: "enabled"})); err != nil {
		return err
	}
	app := scenario.AppDeployment(nsDemo, "demo-app", appRef, corev1.PullIfNotPresent, nil)
	// A new pod at every `make demo`, injected by the chart just installed.
	app.Spec.Template.Annotations = map[string]string{"demo.fargate-otel.io/started": time.Now().UTC().Format(time.RFC3339)}
	if err := scenario.ApplyDeployment(ctx, cs, app); err != nil {
		return err
	}
	if err := scenario.WaitDeployment(ctx, cs, nsDemo, "demo-app", 3*time.Minute); err != nil {
		return err
	}
	pod, err := scenario.OnlyPod(ctx, cs, nsDemo, "app.kubernetes.io/name=demo-app")
	if err != nil {
		return err
	}
	describeInjection(pod)

	step("waiting for its telemetry at the sink")
	sink := sinkapi.Client{Get: scenario.ProxyGetter(cs, nsGateway, scenario.SinkName, sinkapi.HTTPPort)}
	if err := awaitTelemetry(ctx, sink, pod); err != nil {
		return err
	}
	summary, err := sink.Summary(ctx)
	if err != nil {
		return err
	}
	step("what the sink received (GET /summary)")
	fmt.Print(indent(summary))
	step("the sink's output (kubectl -n %s logs deployment/%s --tail=25)", nsGateway, scenario.SinkName)
	if out, err := sinkOutput(ctx, cs, 25); err == nil {
		fmt.Print(indent(out))
	} else {
		info("(cannot read it: %v)", err)
	}
	kubectl := "kubectl"
	if o.local {
		kubectl = filepath.Join(o.localDir, "kubectl")
	}
	step("the demo is up (%v). Look further:", time.Since(t0).Round(time.Second))
	for _, l := range [][2]string{
		{"the app's own output, as without fargate-otel", fmt.Sprintf("%s -n %s logs deployment/demo-app -c app", kubectl, nsDemo)},
		{"the telemetry as it arrives", fmt.Sprintf("%s -n %s logs deployment/%s -f", kubectl, nsGateway, scenario.SinkName)},
		{"the gateway between them", fmt.Sprintf("%s -n %s get deployment,hpa,pdb,pods -l app.kubernetes.io/component=gateway", kubectl, scenario.ReleaseNamespace)},
		{"what was injected", fmt.Sprintf("%s -n %s get pod %s -o yaml", kubectl, nsDemo, pod.Name)},
		{"remove it all", "make demo-down"},
	} {
		info("%s:\n        %s", l[0], l[1])
	}
	return nil
}

// loadLocal imports the images into the local cluster's containerd, starts
// its registry and pushes the demo app there (from inside the cluster's
// network namespace, where the registry is). It returns the sink's and the
// app's references.
func loadLocal(ctx context.Context, o options, cs kubernetes.Interface, product scenario.ProductImages, bins scenario.Binaries) (string, string, error) {
	st, err := cluster.ReadState(filepath.Join(o.localDir, "cluster"))
	if err != nil {
		return "", "", fmt.Errorf("the local cluster's state: %w (make local-cluster-up)", err)
	}
	var archives []string
	for _, a := range product.Archives {
		archives = append(archives, a)
	}
	dir, err := os.MkdirTemp("", "fargate-otel-demo-images-")
	if err != nil {
		return "", "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	sinkImg, sinkRef, err := bins.SinkImage(scenario.SinkRepository)
	if err != nil {
		return "", "", err
	}
	regImg, regRef, err := bins.RegistryImage(scenario.RegistryRepository)
	if err != nil {
		return "", "", err
	}
	for ref, img := range map[string]v1.Image{sinkRef: sinkImg, regRef: regImg} {
		file, err := scenario.WriteArchive(dir, ref, img)
		if err != nil {
			return "", "", err
		}
		archives = append(archives, file)
	}
	for _, a := range archives {
		out, err := exec.CommandContext(ctx, "ctr", "--address", st.ContainerdSocket, "--namespace", "k8s.io", "images", "import", a).CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("ctr images import %s: %w: %s", a, err, out)
		}
		info("imported %s", importedRef(string(out)))
	}
	if err := scenario.ApplyDeployment(ctx, cs, scenario.Registry(nsGateway, regRef)); err != nil {
		return "", "", err
	}
	if err := scenario.WaitDeployment(ctx, cs, nsGateway, scenario.RegistryName, 2*time.Minute); err != nil {
		return "", "", err
	}
	_, appRef, err := bins.AppImage(cluster.RegistryHost)
	if err != nil {
		return "", "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	// The registry is on the node's address, inside the cluster's network
	// namespace: push from there.
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+localNetNS, "--", self, "_push", bins.App, appRef).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("push the demo app to the cluster's registry: %w: %s", err, out)
	}
	info("pushed %s (the kubelet pulls it from there, the injector reads its ENTRYPOINT and CMD there)", appRef)
	return sinkRef, appRef, nil
}

// importedRef reads the reference from ctr's "unpacking REF (sha256:...)...done".
func importedRef(out string) string {
	f := strings.Fields(out)
	if len(f) >= 2 && f[0] == "unpacking" {
		return f[1]
	}
	return strings.TrimSpace(out)
}

// pushInside runs in the local cluster's network namespace: `_push BINARY REF`.
func pushInside(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return errors.New("_push BINARY REF")
	}
	img, ref, err := scenario.Binaries{App: args[0]}.AppImage(cluster.RegistryHost)
	if err != nil {
		return err
	}
	if ref != args[1] {
		return fmt.Errorf("the image built here is %s, not %s", ref, args[1])
	}
	_, err = images.Push(ctx, ref, img)
	return err
}

// pushAll pushes every image the demo runs to the user's registry.
func pushAll(ctx context.Context, o options, product scenario.ProductImages, bins scenario.Binaries) (scenario.ProductImages, string, string, error) {
	var opts []name.Option
	if o.insecure {
		opts = append(opts, name.Insecure)
	}
	remoteOpts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	prefix := strings.TrimSuffix(o.registry, "/")
	pushed, err := product.PushTo(ctx, prefix, opts, remoteOpts)
	if err != nil {
		return pushed, "", "", err
	}
	sinkImg, sinkRef, err := bins.SinkImage(prefix + "/fargate-otel-demo-otlp-sink")
	if err != nil {
		return pushed, "", "", err
	}
	appImg, appRef, err := bins.AppImage(prefix)
	if err != nil {
		return pushed, "", "", err
	}
	for _, p := range []struct {
		ref string
		img v1.Image
	}{{sinkRef, sinkImg}, {appRef, appImg}} {
		r, err := name.ParseReference(p.ref, opts...)
		if err != nil {
			return pushed, "", "", err
		}
		if err := remote.Write(r, p.img, append(remoteOpts, remote.WithContext(ctx))...); err != nil {
			return pushed, "", "", fmt.Errorf("push %s: %w", p.ref, err)
		}
		info("pushed %s", p.ref)
	}
	return pushed, sinkRef, appRef, nil
}

func registryHost(prefix string) string {
	host, _, _ := strings.Cut(prefix, "/")
	return host
}

// describeInjection says what the injector did to the app's pod.
func describeInjection(p *corev1.Pod) {
	raw, ok := p.Annotations[annotations.Status]
	if !ok {
		info("pod %s was NOT injected: see kubectl -n %s get events", p.Name, p.Namespace)
		return
	}
	info("pod %s injected: %s", p.Name, raw)
	for _, c := range p.Spec.InitContainers {
		if c.Name == injector.CollectorContainerName {
			info("  sidecar %s (native: restartPolicy %s), image %s", c.Name, deref(c.RestartPolicy), c.Image)
			if config, err := injector.CollectorConfigOf(p); err == nil {
				if hop := exportTo(string(config)); hop != "" {
					info("  hop 1: the sidecar exports to %s; hop 2: the gateway to the sink", hop)
				}
			}
		}
	}
	for _, c := range p.Spec.Containers {
		argv := append(append([]string(nil), c.Command...), c.Args...)
		info("  container %s runs: %s", c.Name, strings.Join(argv, " "))
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// awaitTelemetry polls the sink until the app's logs from both streams,
// kubelet stats for its pod and a trace have arrived, saying what is there
// whenever it changes.
func awaitTelemetry(ctx context.Context, sink sinkapi.Client, pod *corev1.Pod) error {
	f := sinkapi.Filter{Namespace: pod.Namespace, Pod: pod.Name}
	last := ""
	return scenario.Poll(ctx, 3*time.Minute, func(ctx context.Context) error {
		logs, err := sink.Logs(ctx, sinkapi.Filter{Namespace: pod.Namespace, Pod: pod.Name, Container: scenario.AppName})
		if err != nil {
			return err
		}
		metrics, err := sink.Metrics(ctx, f)
		if err != nil {
			return err
		}
		spans, err := sink.Spans(ctx, f)
		if err != nil {
			return err
		}
		streams := map[string]int{}
		for _, l := range logs {
			streams[l.Stream()]++
		}
		kubelet := 0
		for _, m := range metrics {
			if sinkapi.IsKubeletStat(m.Name) {
				kubelet += m.Count
			}
		}
		now := fmt.Sprintf("log lines: stdout %d, stderr %d; kubelet stats: %d; spans: %d", streams["stdout"], streams["stderr"], kubelet, len(spans))
		if now != last {
			info("%s", now)
			last = now
		}
		if streams["stdout"] < 3 || streams["stderr"] < 3 || kubelet == 0 || len(spans) == 0 {
			return fmt.Errorf("not everything has arrived yet (%s)", now)
		}
		return nil
	})
}

func sinkOutput(ctx context.Context, cs kubernetes.Interface, tail int64) (string, error) {
	pod, err := scenario.OnlyPod(ctx, cs, nsGateway, "app.kubernetes.io/name="+scenario.SinkName)
	if err != nil {
		return "", err
	}
	b, err := cs.CoreV1().Pods(nsGateway).GetLogs(pod.Name, &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
	return string(b), err
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

func down(ctx context.Context, o options, cs kubernetes.Interface) error {
	helmBin, err := scenario.FindHelm()
	if err != nil {
		return err
	}
	step("helm uninstall %s -n %s", scenario.Release, scenario.ReleaseNamespace)
	if err := (scenario.Helm{Bin: helmBin, Kubeconfig: o.kubeconfig}).Uninstall(ctx); err != nil {
		return err
	}
	for _, ns := range []string{nsDemo, nsGateway, scenario.ReleaseNamespace} {
		step("kubectl delete namespace %s", ns)
		err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// exportTo lists the endpoints of the OTLP exporters in a rendered
// collector config ("" when there is none).
func exportTo(config string) string {
	var cfg struct {
		Exporters map[string]struct {
			Endpoint string `json:"endpoint"`
		} `json:"exporters"`
	}
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		return ""
	}
	var out []string
	for id, e := range cfg.Exporters {
		if strings.HasPrefix(id, "otlp") && e.Endpoint != "" {
			out = append(out, e.Endpoint)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
