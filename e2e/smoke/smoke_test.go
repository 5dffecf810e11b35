//go:build e2e

// Package smoke proves the e2e cluster works as a user's cluster does: pods
// run, logs, native sidecars, Services by DNS name, the API server from pods,
// and the kubelet's stats through the API server's nodes proxy.
package smoke

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/images"
)

var update = flag.Bool("update", false, "rewrite e2e/testdata/stats-summary.json with the body this run reads")

const (
	ns         = "smoke"
	probeImage = "localhost/fargate-otel-e2e/probe:v1"
)

func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }

func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t0 := time.Now()
	c := cluster.StartT(t, cluster.Options{})
	t.Logf("cluster up in %v", time.Since(t0).Round(100*time.Millisecond))

	probe := filepath.Join(t.TempDir(), "probe")
	if err := gobuild.Build(ctx, "./e2e/images/probe", probe); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadImage(ctx, images.Spec{Ref: probeImage, Binary: probe, Path: "/probe"}); err != nil {
		t.Fatal(err)
	}
	cs := c.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The pods that read the API server may list pods in their namespace.
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "default-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Every pod starts at once; each subtest then waits for its own.
	pods := []*corev1.Pod{
		probePod("logger", []string{"log", "hello from the smoke test"}),
		sidecarPod(),
		serverPod(),
		probePod("client", []string{"get", "http://echo." + ns + ".svc:8080/"}),
		probePod("api-bridge", []string{"api", "https://kubernetes.default.svc/api/v1/namespaces/" + ns + "/pods?limit=1"}),
		hostNetwork(probePod("api-hostnet", []string{"api", "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)/api/v1/namespaces/" + ns + "/pods?limit=1"})),
	}
	for _, p := range pods {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "echo"},
			Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("a pod runs and kubectl logs shows both streams", func(t *testing.T) {
		waitRunning(ctx, t, c, "logger")
		waitLog(ctx, t, c, "logger", "", "hello from the smoke test", "stderr: hello from the smoke test")
	})
	t.Run("a native sidecar starts first and shares a volume", func(t *testing.T) {
		pod := waitRunning(ctx, t, c, "with-sidecar")
		if len(pod.Status.InitContainerStatuses) != 1 || !ptrTrue(pod.Status.InitContainerStatuses[0].Started) || !pod.Status.InitContainerStatuses[0].Ready {
			t.Errorf("sidecar status: %+v", pod.Status.InitContainerStatuses)
		}
		waitLog(ctx, t, c, "with-sidecar", "main", "read /shared/from-sidecar: written by the sidecar")
	})
	t.Run("a pod reaches another through a ClusterIP Service by DNS name", func(t *testing.T) {
		waitRunning(ctx, t, c, "echo-server")
		waitRunning(ctx, t, c, "client")
		waitLog(ctx, t, c, "client", "", "GET http://echo."+ns+".svc:8080/ -> 200: pong from echo-server")
	})
	t.Run("a bridge pod reaches the API server through the kubernetes Service", func(t *testing.T) {
		waitRunning(ctx, t, c, "api-bridge")
		waitLog(ctx, t, c, "api-bridge", "", "-> 200: ")
	})
	t.Run("a hostNetwork pod reaches the API server through the kubernetes Service", func(t *testing.T) {
		waitRunning(ctx, t, c, "api-hostnet")
		waitLog(ctx, t, c, "api-hostnet", "", "GET https://10.0.0.1:443/api/v1/namespaces/"+ns+"/pods?limit=1 -> 200: ")
	})
	t.Run("an image is pulled from a registry in the namespace", func(t *testing.T) {
		ref := serveRegistry(ctx, t, probe)
		p := probePod("pulled", []string{"log", "pulled from the registry"})
		p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = ref, corev1.PullAlways
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitRunning(ctx, t, c, "pulled")
		waitLog(ctx, t, c, "pulled", "", "pulled from the registry")
	})
	t.Run("stats summary through the nodes proxy", func(t *testing.T) {
		body := statsSummary(ctx, t, c)
		if err := os.MkdirAll(cluster.ArtifactsDir(), 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(cluster.ArtifactsDir(), "stats-summary.json"), body, 0o644)
		}
		if *update {
			if err := os.WriteFile(filepath.Join("..", "testdata", "stats-summary.json"), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// statsSummary reads /stats/summary through the API server until the echo
// server's pod appears in it with CPU, memory and network figures (the
// kubelet's cAdvisor needs a housekeeping pass after a pod starts).
func statsSummary(ctx context.Context, t *testing.T, c *cluster.Cluster) []byte {
	t.Helper()
	path := "/api/v1/nodes/" + c.NodeName + "/proxy/stats/summary"
	var body []byte
	err := scenario.Poll(ctx, 90*time.Second, func(ctx context.Context) error {
		var err error
		body, err = c.Client.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		return checkSummary(body, c.NodeName, ns, "echo-server")
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// summary holds the parts of the kubelet's stats/v1alpha1 Summary that the
// collector's kubeletstats receiver reads.
type summary struct {
	Node struct {
		NodeName string `json:"nodeName"`
		CPU      *struct {
			UsageNanoCores *uint64 `json:"usageNanoCores"`
		} `json:"cpu"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name, Namespace string
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
			CPU  *struct {
				UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory *struct {
				WorkingSetBytes *uint64 `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"containers"`
		Network *struct {
			Interfaces []struct {
				Name    string  `json:"name"`
				RxBytes *uint64 `json:"rxBytes"`
			} `json:"interfaces"`
		} `json:"network"`
	} `json:"pods"`
}

func checkSummary(body []byte, node, namespace, pod string) error {
	var s summary
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("stats summary is not JSON: %w", err)
	}
	if s.Node.NodeName != node || s.Node.CPU == nil || s.Node.CPU.UsageNanoCores == nil {
		return fmt.Errorf("node stats missing: %+v", s.Node)
	}
	for _, p := range s.Pods {
		if p.PodRef.Name != pod || p.PodRef.Namespace != namespace {
			continue
		}
		if len(p.Containers) == 0 || p.Containers[0].CPU == nil || p.Containers[0].CPU.UsageCoreNanoSeconds == nil ||
			p.Containers[0].Memory == nil || p.Containers[0].Memory.WorkingSetBytes == nil {
			return fmt.Errorf("pod %s: container CPU or memory missing", pod)
		}
		if p.Network == nil || len(p.Network.Interfaces) == 0 || p.Network.Interfaces[0].RxBytes == nil {
			return fmt.Errorf("pod %s: network stats missing (is the kubelet's --containerd flag set?)", pod)
		}
		return nil
	}
	return fmt.Errorf("pod %s/%s not in the summary yet", namespace, pod)
}

// TestRecordedSummary keeps e2e/testdata/stats-summary.json, which other
// packages' tests replay, a real and complete body.
func TestRecordedSummary(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("..", "testdata", "stats-summary.json"))
	if err != nil {
		t.Fatalf("%v (record it with: go test -tags e2e ./e2e/smoke -run TestSmoke -update)", err)
	}
	if err := checkSummary(body, cluster.DefaultNodeName, ns, "echo-server"); err != nil {
		t.Fatal(err)
	}
}

// serveRegistry serves an in-memory registry at cluster.RegistryHost for the
// rest of the test and pushes the probe image to it.
func serveRegistry(ctx context.Context, t *testing.T, probe string) string {
	t.Helper()
	cluster.ServeRegistryT(t)
	ref := cluster.RegistryHost + "/fargate-otel-e2e/probe:pushed"
	img, err := images.Build(images.Spec{Binary: probe, Path: "/probe"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.Push(ctx, ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func probePod(name string, args []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptrTo[int64](2),
			Containers: []corev1.Container{{
				Name: "main", Image: probeImage, ImagePullPolicy: corev1.PullNever, Args: args,
				SecurityContext: restricted(),
			}},
		},
	}
}

func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptrTo(true),
		ReadOnlyRootFilesystem:   ptrTo(true),
		AllowPrivilegeEscalation: ptrTo(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func hostNetwork(p *corev1.Pod) *corev1.Pod {
	p.Spec.HostNetwork = true
	p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	return p
}

func serverPod() *corev1.Pod {
	p := probePod("echo-server", []string{"serve", ":8080"})
	p.Labels = map[string]string{"app": "echo"}
	p.Spec.Hostname = "echo-server"
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	return p
}

// sidecarPod has a native sidecar (an init container that keeps running)
// that writes a file the main container waits for.
func sidecarPod() *corev1.Pod {
	p := probePod("with-sidecar", []string{"wait-file", "/shared/from-sidecar"})
	mount := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	p.Spec.Containers[0].VolumeMounts = mount
	p.Spec.InitContainers = []corev1.Container{{
		Name: "sidecar", Image: probeImage, ImagePullPolicy: corev1.PullNever,
		Args:          []string{"write-file", "/shared/from-sidecar", "written by the sidecar"},
		RestartPolicy: ptrTo(corev1.ContainerRestartPolicyAlways),
		VolumeMounts:  mount, SecurityContext: restricted(),
	}}
	p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	return p
}

func waitRunning(ctx context.Context, t *testing.T, c *cluster.Cluster, name string) *corev1.Pod {
	t.Helper()
	pod, err := scenario.WaitPod(ctx, c.Client, ns, name, 2*time.Minute, scenario.PodRunning)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitLog polls `kubectl logs` until every wanted line is there.
func waitLog(ctx context.Context, t *testing.T, c *cluster.Cluster, pod, container string, want ...string) {
	t.Helper()
	args := []string{"-n", ns, "logs", pod}
	if container != "" {
		args = append(args, "-c", container)
	}
	var out []byte
	err := scenario.Poll(ctx, 90*time.Second, func(ctx context.Context) error {
		var err error
		if out, err = c.Kubectl(ctx, args...); err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				return fmt.Errorf("no %q in the logs yet", w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("kubectl logs %s: %v\n%s", pod, err, out)
	}
}

func ptrTo[T any](v T) *T { return &v }

func ptrTrue(b *bool) bool { return b != nil && *b }
