package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/controllers"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

const optIn = "fargate-otel.io/inject"

// installInjectorRBAC applies the injector's nodeproxy RBAC from package
// rbac (with the mode direct extras when direct) and returns a client
// configuration of the injector's service account: the controllers run with
// exactly what the chart will grant.
func installInjectorRBAC(t *testing.T, cp *cluster.ControlPlane, direct bool) *rest.Config {
	t.Helper()
	ctx := context.Background()
	createNamespace(t, cp.Client, releaseNS, nil)
	createServiceAccount(t, cp.Client, releaseNS, rbac.InjectorServiceAccount)
	role, binding := rbac.Injector(releaseNS)
	objs := []any{role, binding}
	if direct {
		dr, db := rbac.InjectorDirect(releaseNS)
		objs = append(objs, dr, db, rbac.Direct())
	}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			_, err = cp.Client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	return serviceAccountConfig(t, cp, releaseNS, rbac.InjectorServiceAccount)
}

// startManager runs a controller-runtime manager, as the injector does, with
// the nodeproxy controllers of cfg.
func startManager(t *testing.T, restCfg *rest.Config, cfg controllers.Config) {
	t.Helper()
	mgr, err := manager.New(restCfg, manager.Options{
		Logger:                 testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SkipNameValidation = true
	if err := controllers.Setup(mgr, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func caConfigMap(t *testing.T, cp *cluster.ControlPlane, ns string) (*corev1.ConfigMap, error) {
	t.Helper()
	return cp.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), rbac.CAConfigMap, metav1.GetOptions{})
}

func wantCA(t *testing.T, cp *cluster.ControlPlane, ns string, ca []byte) func() error {
	return func() error {
		cm, err := caConfigMap(t, cp, ns)
		if err != nil {
			return err
		}
		if cm.Data[controllers.CAKey] != string(ca) {
			return fmt.Errorf("ConfigMap %s/%s holds another CA", ns, cm.Name)
		}
		return nil
	}
}

func wantNoCA(t *testing.T, cp *cluster.ControlPlane, ns string) func() error {
	return func() error {
		if _, err := caConfigMap(t, cp, ns); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap in %s: %w", ns, err)
		}
		return nil
	}
}

func setLabel(t *testing.T, cp *cluster.ControlPlane, ns, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, optIn, value)
	if value == "" {
		patch = fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, optIn)
	}
	if _, err := cp.Client.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestCAPublisher runs the CA publisher with the injector's RBAC against a
// real API server: the proxy's CA lands in opted-in namespaces, follows a
// CA change, comes back when deleted, leaves with the opt-in, and never
// overwrites a ConfigMap a user made.
func TestCAPublisher(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx := context.Background()
	c := cp.Client
	createNamespace(t, c, "shop", map[string]string{optIn: "enabled"})
	createNamespace(t, c, "plain", nil)
	createNamespace(t, c, "custom", map[string]string{optIn: "enabled"})
	userCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rbac.CAConfigMap}, Data: map[string]string{controllers.CAKey: "my own CA"}}
	if _, err := c.CoreV1().ConfigMaps("custom").Create(ctx, userCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A binding left by an earlier direct mode.
	leftover := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: rbac.DirectBinding, Labels: map[string]string{rbac.ManagedByLabel: rbac.ManagedByValue}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbac.DirectClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "shop", Name: "app"}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, leftover, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ca1, _ := pkitest.NewCA("proxy-ca-1")
	ca2, _ := pkitest.NewCA("proxy-ca-2")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca1.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	startManager(t, installInjectorRBAC(t, cp, false), controllers.Config{
		Mode: controllers.ModeProxy, CAFile: caFile, Resync: 2 * time.Second, CAPollInterval: 200 * time.Millisecond,
	})

	polltest.Until(t, time.Minute, "CA published in shop", wantCA(t, cp, "shop", ca1.CertPEM))
	cm, _ := caConfigMap(t, cp, "shop")
	if cm.Labels[rbac.ManagedByLabel] != rbac.ManagedByValue {
		t.Errorf("published ConfigMap labels %v", cm.Labels)
	}
	polltest.Until(t, 30*time.Second, "binding of the earlier direct mode removed", func() error {
		_, err := c.RbacV1().ClusterRoleBindings().Get(ctx, rbac.DirectBinding, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("binding still there (%w)", err)
	})

	t.Run("a renewed CA is published", func(t *testing.T) {
		if err := os.WriteFile(caFile, ca2.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		polltest.Until(t, 30*time.Second, "new CA in shop", wantCA(t, cp, "shop", ca2.CertPEM))
	})
	t.Run("a deleted ConfigMap comes back", func(t *testing.T) {
		if err := c.CoreV1().ConfigMaps("shop").Delete(ctx, rbac.CAConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		polltest.Until(t, 30*time.Second, "CA back in shop", wantCA(t, cp, "shop", ca2.CertPEM))
	})
	t.Run("a namespace that opts in gets it", func(t *testing.T) {
		setLabel(t, cp, "plain", "enabled")
		polltest.Until(t, 30*time.Second, "CA in plain", wantCA(t, cp, "plain", ca2.CertPEM))
	})
	t.Run("a namespace that opts out loses it", func(t *testing.T) {
		setLabel(t, cp, "plain", "")
		polltest.Until(t, 30*time.Second, "CA gone from plain", wantNoCA(t, cp, "plain"))
		setLabel(t, cp, "shop", "disabled")
		polltest.Until(t, 30*time.Second, "CA gone from shop", wantNoCA(t, cp, "shop"))
	})
	t.Run("a user's own ConfigMap is left alone", func(t *testing.T) {
		cm, err := caConfigMap(t, cp, "custom")
		if err != nil || cm.Data[controllers.CAKey] != "my own CA" {
			t.Fatalf("user's ConfigMap: %+v %v", cm, err)
		}
	})
	t.Run("no workload service account holds nodes/proxy", func(t *testing.T) {
		createServiceAccount(t, c, "custom", "app")
		checkNodesProxyHolders(t, cp)
	})
}

// TestDirectMode runs the direct binding controller with the injector's RBAC
// against a real API server: the service accounts of pods injected in mode
// direct, and only those, may read kubelets through the API server, for as
// long as such pods exist.
func TestDirectMode(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := cp.Client
	k := &kubelet{node: "node-a"}
	cp.StartFakeKubeletT(t, "node-a", k)

	createNamespace(t, c, "shop", map[string]string{optIn: "enabled"})
	createNamespace(t, c, "elsewhere", nil)
	for _, sa := range []string{"app", "proxied", "plain"} {
		createServiceAccount(t, c, "shop", sa)
	}
	createServiceAccount(t, c, "elsewhere", "app")
	status := func(mode string) map[string]string {
		return map[string]string{controllers.StatusAnnotation: `{"version":1,"collector":"native-sidecar","kubeletStats":"` + mode + `"}`}
	}
	direct := createPod(t, c, "shop", "direct", "app", "node-a", status("direct"))
	createPod(t, c, "shop", "proxied", "proxied", "node-a", status("proxy"))
	createPod(t, c, "shop", "plain", "plain", "node-a", nil)
	createPod(t, c, "elsewhere", "direct", "app", "node-a", status("direct"))

	startManager(t, installInjectorRBAC(t, cp, true), controllers.Config{Mode: controllers.ModeDirect})

	waitDirectGrant(t, c, "shop", "app")
	for _, sa := range [][2]string{{"shop", "proxied"}, {"shop", "plain"}, {"elsewhere", "app"}} {
		if mayGetNodesProxy(t, c, sa[0], sa[1]) {
			t.Errorf("%s/%s may get nodes/proxy", sa[0], sa[1])
		}
	}

	t.Run("the pod's own token reads the stats through the API server", func(t *testing.T) {
		cfg := &rest.Config{Host: cp.URL, BearerToken: podToken(t, c, direct, ""), TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA.CertPEM}}
		rc, err := rest.RESTClientFor(withDefaults(cfg))
		if err != nil {
			t.Fatal(err)
		}
		body, err := rc.Get().AbsPath(summaryPath("node-a")).DoRaw(ctx)
		if err != nil || !strings.Contains(string(body), `"nodeName":"node-a"`) {
			t.Fatalf("GET %s as shop/app: %v %s", summaryPath("node-a"), err, body)
		}
	})

	t.Run("the grant follows the pods", func(t *testing.T) {
		createServiceAccount(t, c, "shop", "batch")
		createPod(t, c, "shop", "job", "batch", "node-a", status("direct"))
		polltest.Until(t, 30*time.Second, "shop/batch granted", func() error {
			if !mayGetNodesProxy(t, c, "shop", "batch") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		for _, name := range []string{"direct", "job"} {
			if err := c.CoreV1().Pods("shop").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
				t.Fatal(err)
			}
		}
		polltest.Until(t, 30*time.Second, "binding removed with the last direct pod", func() error {
			if _, err := c.RbacV1().ClusterRoleBindings().Get(ctx, rbac.DirectBinding, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("binding still there (%w)", err)
			}
			return nil
		})
		if mayGetNodesProxy(t, c, "shop", "app") {
			t.Fatal("shop/app still may get nodes/proxy")
		}
	})

	t.Run("the injector can bind no other role", func(t *testing.T) {
		injector := saUser(releaseNS, rbac.InjectorServiceAccount)
		if !can(t, c, injector, "bind", "rbac.authorization.k8s.io", "clusterroles", "", rbac.DirectClusterRole, "") {
			t.Error("the injector may not bind the direct role")
		}
		for _, role := range []string{"cluster-admin", "admin", "edit", rbac.ProxyClusterRole} {
			if can(t, c, injector, "bind", "rbac.authorization.k8s.io", "clusterroles", "", role, "") {
				t.Errorf("the injector may bind %s", role)
			}
		}
		for _, r := range [][3]string{{"get", "nodes", "proxy"}, {"list", "secrets", ""}, {"list", "configmaps", ""}, {"create", "pods", "exec"}} {
			if can(t, c, injector, r[0], "", r[1], r[2], "x", "") {
				t.Errorf("the injector may %s %s/%s", r[0], r[1], r[2])
			}
		}
	})
}

func withDefaults(cfg *rest.Config) *rest.Config {
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.APIPath = "/api"
	cfg.NegotiatedSerializer = clientNegotiator()
	return cfg
}
