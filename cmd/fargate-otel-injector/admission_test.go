package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// runningInjector is the real binary serving the webhook of a control plane.
type runningInjector struct {
	client   kubernetes.Interface // admin, with warnings collected
	warnings *warningCollector
}

// startInjector runs the binary with a config file (and args, which
// override the test's defaults) and registers it as the cluster's mutating
// webhook for opted-in namespaces, as the chart does.
func startInjector(t *testing.T, cp *cluster.ControlPlane, config string, args ...string) *runningInjector {
	t.Helper()
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeCert(t, certDir, issue(t, cp))
	configFile := filepath.Join(dir, "config.yaml")
	writeFile(t, configFile, []byte(config))
	webhookPort, probePort := freePort(t), freePort(t)
	srv := startServer(t, nil, append([]string{
		"--kubeconfig=" + cp.Kubeconfig,
		"--config=" + configFile,
		"--cert-dir=" + certDir,
		"--webhook-host=127.0.0.1",
		fmt.Sprintf("--webhook-port=%d", webhookPort),
		"--metrics-bind-address=0",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--nodeproxy-ca-file=" + filepath.Join(dir, "no-such-ca.crt"),
		"--disable-image-lookup",
	}, args...)...)
	srv.waitFor(t, "readyz", func() bool { return httpStatus(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)) == 200 })
	registerWebhook(t, cp, webhookPort, nil)
	w := &warningCollector{}
	wcfg := rest.CopyConfig(cp.Config)
	wcfg.WarningHandler = w
	return &runningInjector{client: kubernetes.NewForConfigOrDie(wcfg), warnings: w}
}

// create creates a pod until the webhook (which takes a moment to reach the
// API server's admission chain) has seen one; it returns the last answer.
func (ri *runningInjector) create(t *testing.T, pod *corev1.Pod) (*corev1.Pod, error) {
	t.Helper()
	var got *corev1.Pod
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		p := pod.DeepCopy()
		p.Name = fmt.Sprintf("%s-%d", pod.Name, i)
		ri.warnings.reset()
		got, err = ri.client.CoreV1().Pods(pod.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
		if err != nil || got.Annotations[annotations.Status] != "" || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func status(t *testing.T, pod *corev1.Pod) injector.Status {
	t.Helper()
	var s injector.Status
	if err := json.Unmarshal([]byte(pod.Annotations[annotations.Status]), &s); err != nil {
		t.Fatalf("pod %s not injected (status %q): %v", pod.Name, pod.Annotations[annotations.Status], err)
	}
	return s
}

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

// TestTheNamespaceDecides runs the real injector against a real API server,
// whose LimitRanger and ResourceQuota admission run around the webhook:
// a namespace with a strict LimitRange and a quota on limits admits the
// injected pod; one injector serves a namespace in mode direct and others
// in mode proxy, each as its label says; and a namespace without the
// proxy's CA gets pods without kubelet stats rather than collectors that
// cannot start.
func TestTheNamespaceDecides(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube := cp.Client
	for name, labels := range map[string]map[string]string{
		"strict":    {annotations.Inject: annotations.Enabled},
		"direct":    {annotations.Inject: annotations.Enabled, annotations.KubeletStats: "direct"},
		"proxy":     {annotations.Inject: annotations.Enabled, annotations.KubeletStats: "proxy"},
		"forbidden": {annotations.Inject: annotations.Enabled, annotations.KubeletStats: "exec"},
	} {
		mustCreate(t, func() error {
			_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error { // no controller manager here to create it
			_, err := kube.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
			return err
		})
	}
	// The proxy's CA where a pod in mode proxy needs it (the injector's own
	// publisher has no CA file in this test).
	for _, ns := range []string{"proxy", "direct"} {
		mustCreate(t, func() error {
			_, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fargate-otel-nodeproxy-ca"},
				Data: map[string]string{"ca.crt": string(cp.CA.CertPEM)}}, metav1.CreateOptions{})
			return err
		})
	}
	// A strict LimitRange and a quota that counts limits.
	mustCreate(t, func() error {
		_, err := kube.CoreV1().LimitRanges("strict").Create(ctx, &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "strict"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
			{Type: corev1.LimitTypeContainer, Min: rl("cpu", "5m", "memory", "16Mi"), Max: rl("cpu", "500m", "memory", "200Mi"), MaxLimitRequestRatio: rl("cpu", "10", "memory", "2")},
			{Type: corev1.LimitTypePod, Max: rl("cpu", "1", "memory", "600Mi")},
		}}}, metav1.CreateOptions{})
		return err
	})
	hard := rl("limits.cpu", "4", "limits.memory", "4Gi", "requests.cpu", "2", "requests.memory", "2Gi")
	q, err := kube.CoreV1().ResourceQuotas("strict").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "limits"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No controller manager here: the quota's status is what the quota
	// controller would write, so that admission enforces it.
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: rl("limits.cpu", "0", "limits.memory", "0", "requests.cpu", "0", "requests.memory", "0")}
	if _, err := kube.CoreV1().ResourceQuotas("strict").UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	ri := startInjector(t, cp, "kubeletStats:\n  allowedModes: [proxy, off, direct]\n")

	app := func(ns string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{injector.FargateProfileLabel: "fp"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Command: []string{"/app"},
				Resources: corev1.ResourceRequirements{Requests: rl("cpu", "250m", "memory", "128Mi"), Limits: rl("cpu", "500m", "memory", "200Mi")}}}},
		}
	}

	t.Run("a strict LimitRange and a quota on limits admit the injected pod", func(t *testing.T) {
		got, err := ri.create(t, app("strict"))
		if err != nil {
			t.Fatalf("the API server rejected the injected pod: %v\nwarnings: %s", err, ri.warnings.all())
		}
		status(t, got)
		for _, c := range append(append([]corev1.Container{}, got.Spec.InitContainers...), got.Spec.Containers...) {
			lim, req := c.Resources.Limits, c.Resources.Requests
			if lim.Cpu().IsZero() || lim.Memory().IsZero() || req.Cpu() == nil || req.Memory() == nil {
				t.Errorf("container %s lacks a cpu or memory request or limit: %+v", c.Name, c.Resources)
			}
			if lim.Memory().Cmp(resource.MustParse("200Mi")) > 0 || lim.Cpu().Cmp(resource.MustParse("500m")) > 0 {
				t.Errorf("container %s above the LimitRange's max: %+v", c.Name, c.Resources)
			}
		}
		qq, err := kube.CoreV1().ResourceQuotas("strict").Get(ctx, "limits", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if used := qq.Status.Used[corev1.ResourceLimitsCPU]; used.Cmp(resource.MustParse("500m")) <= 0 {
			t.Errorf("the quota counted limits.cpu %s: the injected containers' limits are not in it", used.String())
		}
		t.Logf("quota used: %v; warnings: %s", qq.Status.Used, ri.warnings.all())
	})

	t.Run("one injector, mode direct in one namespace and proxy in another", func(t *testing.T) {
		for ns, want := range map[string]string{"direct": "direct", "proxy": "proxy"} {
			got, err := ri.create(t, app(ns))
			if err != nil {
				t.Fatal(err)
			}
			if s := status(t, got); s.KubeletStats != want {
				t.Errorf("namespace %s: mode %s, want %s (warnings: %s)", ns, s.KubeletStats, want, ri.warnings.all())
			}
		}
	})

	t.Run("a mode that is not allowed falls back to the default, with a warning", func(t *testing.T) {
		got, err := ri.create(t, app("forbidden"))
		if err != nil {
			t.Fatal(err)
		}
		// The default is proxy, this namespace has no CA, and the injector
		// has none to publish: off, said twice.
		if s := status(t, got); s.KubeletStats != "off" {
			t.Errorf("mode %s, want off", s.KubeletStats)
		}
		w := ri.warnings.all()
		for _, want := range []string{`fargate-otel.io/kubelet-stats="exec" is not proxy, direct or off`,
			"the ConfigMap fargate-otel-nodeproxy-ca, which holds the node proxy's CA, is not in namespace forbidden, and the injector could not publish it: read the proxy's CA"} {
			if !strings.Contains(w, want) {
				t.Errorf("warnings %q lack %q", w, want)
			}
		}
	})
}
