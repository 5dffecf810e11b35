package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/controllers"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// TestCAPublishedAtAdmission: a namespace labelled in the same apply as its
// workloads gets kubelet stats through the node proxy from its first pod.
// The real injector runs against a real API server with no CA publisher at
// all (another replica holds the leader lease, so the controllers never
// start here): the webhook publishes the proxy's CA itself. A server-side
// dry run stores nothing and answers the same pod; a webhook whose
// identity may not create ConfigMaps leaves kubelet stats off and says why.
func TestCAPublishedAtAdmission(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube := cp.Client

	// The leader lease, held by someone else for the whole test.
	const leaseNS = "fargate-otel"
	createNamespaceWithSA(t, cp, leaseNS, nil)
	now := metav1.NewMicroTime(time.Now())
	mustCreate(t, func() error {
		_, err := kube.CoordinationV1().Leases(leaseNS).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: Name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("another-replica"), LeaseDurationSeconds: ptr.To[int32](3600), AcquireTime: &now, RenewTime: &now}}, metav1.CreateOptions{})
		return err
	})

	proxyCA, err := pkitest.NewCA("fargate-otel-nodeproxy test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, caFile, proxyCA.CertPEM)
	metricsPort := freePort(t)
	ri := startInjector(t, cp, "kubeletStats:\n  allowedModes: [proxy, off]\n",
		"--nodeproxy-ca-file="+caFile,
		"--leader-elect", "--leader-election-namespace="+leaseNS,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort))

	// The webhook takes a moment to reach the API server's admission
	// chain: a namespace in mode off (no CA needed) shows when it has.
	createNamespaceWithSA(t, cp, "warm-up", map[string]string{annotations.Inject: annotations.Enabled, annotations.KubeletStats: "off"})
	if got, err := ri.create(t, proxyApp("warm-up")); err != nil {
		t.Fatal(err)
	} else {
		status(t, got)
	}

	t.Run("a pod right after its namespace was labelled", func(t *testing.T) {
		createNamespaceWithSA(t, cp, "fresh", map[string]string{annotations.Inject: annotations.Enabled})
		got, err := ri.client.CoreV1().Pods("fresh").Create(ctx, proxyApp("fresh"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		expectProxyMode(t, got, ri.warnings.all())
		cm, err := kube.CoreV1().ConfigMaps("fresh").Get(ctx, rbac.CAConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the CA ConfigMap was not published: %v", err)
		}
		if cm.Data[controllers.CAKey] != string(proxyCA.CertPEM) || cm.Labels[rbac.ManagedByLabel] != rbac.ManagedByValue {
			t.Errorf("the CA ConfigMap holds %q, labels %v; want the proxy's CA, managed by the injector", cm.Data[controllers.CAKey], cm.Labels)
		}
		metrics := httpBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		if want := `fargate_otel_injector_nodeproxy_ca_publishes_total{result="ok"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q: the webhook, not a publisher, must have published it", want)
		}
	})

	t.Run("a dry run publishes nothing and answers as the real request", func(t *testing.T) {
		createNamespaceWithSA(t, cp, "dry", map[string]string{annotations.Inject: annotations.Enabled})
		ri.warnings.reset()
		dry, err := ri.client.CoreV1().Pods("dry").Create(ctx, proxyApp("dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		dryWarnings := ri.warnings.all()
		expectProxyMode(t, dry, dryWarnings)
		if _, err := kube.CoreV1().ConfigMaps("dry").Get(ctx, rbac.CAConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("after a dry run, the CA ConfigMap: %v; want not found", err)
		}
		ri.warnings.reset()
		real, err := ri.client.CoreV1().Pods("dry").Create(ctx, proxyApp("dry"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(dry.Spec, real.Spec) || !maps.Equal(dry.Annotations, real.Annotations) || dryWarnings != ri.warnings.all() {
			t.Errorf("the dry run answered\n%s\nthe real request\n%s", mustJSON(t, dry.Spec), mustJSON(t, real.Spec))
		}
		if _, err := kube.CoreV1().ConfigMaps("dry").Get(ctx, rbac.CAConfigMap, metav1.GetOptions{}); err != nil {
			t.Errorf("after the real request, the CA ConfigMap: %v", err)
		}
	})

	t.Run("an identity that may not create ConfigMaps: kubelet stats off, and why", func(t *testing.T) {
		createNamespaceWithSA(t, cp, "locked", map[string]string{annotations.Inject: annotations.Enabled})
		restricted := restrictedClient(t, cp)
		cfg := injector.DefaultConfig()
		cfg.Images.Tee, cfg.Images.Collector = "registry.example.com/tee:test", "registry.example.com/collector:test"
		h := webhook.NewHandler(webhook.Options{Config: cfg, ConfigMaps: restricted,
			PublishNodeProxyCA: publishFunc(controllers.NewCAPublisher(restricted, caFile, rbac.CAConfigMap))})
		raw := mustJSON(t, proxyApp("locked"))
		resp := h.Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "locked-1", Operation: admissionv1.Create, Namespace: "locked",
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Object: runtime.RawExtension{Raw: raw},
		}})
		patch, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("no patch (%v): %+v", err, resp)
		}
		out, err := patch.Apply(raw)
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(out, &pod); err != nil {
			t.Fatal(err)
		}
		if s := status(t, &pod); s.KubeletStats != "off" {
			t.Errorf("mode %s, want off", s.KubeletStats)
		}
		w := strings.Join(resp.Warnings, "\n")
		for _, want := range []string{"kubelet stats are off for this pod", "the injector could not publish it: create ConfigMap locked/fargate-otel-nodeproxy-ca", "forbidden", "the injector needs create on configmaps"} {
			if !strings.Contains(w, want) {
				t.Errorf("warnings %q lack %q", w, want)
			}
		}
		if _, err := kube.CoreV1().ConfigMaps("locked").Get(ctx, rbac.CAConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the CA ConfigMap: %v; want not found", err)
		}
	})
}

// proxyApp is a Fargate pod without an API token of its own (so that two
// admissions of it give the same spec).
func proxyApp(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{injector.FargateProfileLabel: "fp"}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Command: []string{"/app"}}},
		},
	}
}

// expectProxyMode checks that the pod reads kubelet stats through the node
// proxy: its status, the token volume only the proxy accepts (with the CA
// ConfigMap), and the collector's kubelet_stats endpoint.
func expectProxyMode(t *testing.T, pod *corev1.Pod, warnings string) {
	t.Helper()
	if s := status(t, pod); s.KubeletStats != "proxy" {
		t.Fatalf("mode %s, want proxy; warnings: %s", s.KubeletStats, warnings)
	}
	if strings.Contains(warnings, "kubelet stats are off") {
		t.Errorf("warnings: %s", warnings)
	}
	i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == injector.ProxyTokenVolume })
	if i < 0 || pod.Spec.Volumes[i].Projected == nil {
		t.Fatalf("no projected volume %s: %v", injector.ProxyTokenVolume, pod.Spec.Volumes)
	}
	var audience, configMap string
	for _, src := range pod.Spec.Volumes[i].Projected.Sources {
		if src.ServiceAccountToken != nil {
			audience = src.ServiceAccountToken.Audience
		}
		if src.ConfigMap != nil {
			configMap = src.ConfigMap.Name
		}
	}
	if audience != "fargate-otel-nodeproxy" || configMap != rbac.CAConfigMap {
		t.Errorf("token volume: audience %q, ConfigMap %q", audience, configMap)
	}
	rendered, err := injector.CollectorConfigOf(pod)
	if err != nil {
		t.Fatal(err)
	}
	config := string(rendered)
	if !strings.Contains(config, "kubelet_stats") || !strings.Contains(config, "https://fargate-otel-nodeproxy.fargate-otel.svc/api/v1/nodes/${env:NODE_NAME}/proxy") {
		t.Errorf("the collector's config does not read kubelet stats through the node proxy:\n%s", config)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createNamespaceWithSA creates a namespace and its default service account
// (there is no controller manager here to create it).
func createNamespaceWithSA(t *testing.T, cp *cluster.ControlPlane, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, func() error {
		_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cp.Client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	})
}

// restrictedClient authenticates as a service account that may read
// ConfigMaps (as the webhook's own role grants) but not create them.
func restrictedClient(t *testing.T, cp *cluster.ControlPlane) client.Client {
	t.Helper()
	ctx := context.Background()
	const ns, sa = "fargate-otel", "read-only-injector"
	mustCreate(t, func() error {
		_, err := cp.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cp.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: sa},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: sa},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}}}, metav1.CreateOptions{})
		return err
	})
	tr, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(&rest.Config{Host: cp.URL, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA.CertPEM}}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
