package clustertest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/doctor"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// fargatePod is what a Deployment on a Fargate profile creates (the EKS
// Fargate webhook sets the scheduler).
func fargatePod(t *testing.T, cp *cluster.ControlPlane, ns, name, sa string) *corev1.Pod {
	t.Helper()
	p, err := cp.Client.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:           "node-a",
			SchedulerName:      "fargate-scheduler",
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "example.invalid/app:1", Command: []string{"/app"}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runDoctor(t *testing.T, cp *cluster.ControlPlane, o doctor.Options) *doctor.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := doctor.Run(ctx, cp.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("doctor report:\n%s", b.String())
	return r
}

// expect asserts the status of a check, and that its detail or fix mentions
// each of words.
func expect(t *testing.T, r *doctor.Report, name string, want doctor.Status, words ...string) {
	t.Helper()
	c, ok := r.Find(name)
	if !ok {
		t.Errorf("no %q check in the report", name)
		return
	}
	if c.Status != want {
		t.Errorf("%s: %s (%s), want %s", name, c.Status, c.Detail, want)
	}
	for _, w := range words {
		if !strings.Contains(c.Detail+"\n"+c.Fix, w) {
			t.Errorf("%s: %q / fix %q does not mention %q", name, c.Detail, c.Fix, w)
		}
	}
}

// TestDoctor runs the doctor against a real API server with the injection
// webhook behind a Service, the real proxy and a fake kubelet: first a
// healthy namespace, then one fault at a time, each reported with its fix.
func TestDoctor(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx := context.Background()
	c := cp.Client
	cp.StartFakeKubeletT(t, "node-a", &kubelet{node: "node-a"})

	wh := installWebhook(t, cp)
	proxy := installProxy(t, cp)
	exposeService(t, cp, releaseNS, "fargate-otel-nodeproxy", 443, proxy.port)

	createNamespace(t, c, "shop", map[string]string{optIn: "enabled"})
	createNamespace(t, c, "plain", nil)
	for _, ns := range []string{"shop", "plain"} {
		createServiceAccount(t, c, ns, "default") // no controller manager to make it
	}
	createServiceAccount(t, c, "shop", "app")
	caMap := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rbac.CAConfigMap}, Data: map[string]string{"ca.crt": string(cp.CA.CertPEM)}}
	if _, err := c.CoreV1().ConfigMaps("shop").Create(ctx, caMap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := fargatePod(t, cp, "shop", "app", "app")
	if _, injected := app.Annotations[doctor.StatusAnnotation]; !injected {
		t.Fatalf("the webhook did not inject pod shop/app: %v", app.Annotations)
	}
	opts := doctor.Options{Namespace: "shop", Pod: "app", ProxyURL: proxy.url}

	t.Run("healthy", func(t *testing.T) {
		r := runDoctor(t, cp, opts)
		for _, name := range []string{doctor.CheckWebhook, doctor.CheckSelected, doctor.CheckCertificate, doctor.CheckReachable, doctor.CheckInjected,
			doctor.CheckMode, doctor.CheckProxyService, doctor.CheckProxyCA, doctor.CheckProxyRBAC, doctor.CheckWorkloadAccess, doctor.CheckStatsRequest} {
			expect(t, r, name, doctor.OK)
		}
		expect(t, r, doctor.CheckMode, doctor.OK, "proxy")
		expect(t, r, doctor.CheckProxyRBAC, doctor.OK, "SelfSubjectAccessReview")
		expect(t, r, doctor.CheckStatsRequest, doctor.OK, "HTTP 200", "node-a")
		if r.Failed() != 0 {
			t.Fatalf("%d failed checks on a healthy cluster", r.Failed())
		}
	})

	t.Run("the CLI", func(t *testing.T) {
		cli := cliBinary(t)
		doctorCLI := func(args ...string) (string, int) {
			cmd := exec.Command(cli, append([]string{"doctor", "--kubeconfig", cp.Kubeconfig}, args...)...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			return string(out), cmd.ProcessState.ExitCode()
		}
		out, code := doctorCLI("-n", "shop", "--pod", "app", "--proxy-url", proxy.url)
		if code != 0 || !strings.Contains(out, "all checks passed.") || !strings.Contains(out, "ok    stats request") {
			t.Fatalf("fargate-otel doctor on a healthy pod: exit %d\n%s", code, out)
		}
		out, code = doctorCLI("-n", "plain")
		if code != 1 || !strings.Contains(out, "fix: kubectl label namespace plain fargate-otel.io/inject=enabled") || !strings.Contains(out, "check(s) failed") {
			t.Fatalf("fargate-otel doctor on a namespace not opted in: exit %d\n%s", code, out)
		}
	})

	t.Run("namespace not opted in", func(t *testing.T) {
		r := runDoctor(t, cp, doctor.Options{Namespace: "plain"})
		expect(t, r, doctor.CheckSelected, doctor.Fail, "kubectl label namespace plain fargate-otel.io/inject=enabled")
		expect(t, r, doctor.CheckReachable, doctor.Fail)
	})

	t.Run("wrong caBundle", func(t *testing.T) {
		other, _ := pkitest.NewCA("someone-else")
		restore := patchCABundle(t, cp, other.CertPEM)
		defer restore()
		r := runDoctor(t, cp, opts)
		expect(t, r, doctor.CheckCertificate, doctor.Fail, "does not accept", "caBundle")
		expect(t, r, doctor.CheckReachable, doctor.Fail, "failurePolicy Ignore")
	})

	t.Run("CA missing in the namespace", func(t *testing.T) {
		if err := c.CoreV1().ConfigMaps("shop").Delete(ctx, rbac.CAConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := c.CoreV1().ConfigMaps("shop").Create(ctx, caMap, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}()
		r := runDoctor(t, cp, opts)
		expect(t, r, doctor.CheckProxyCA, doctor.Fail, "not found", "injector")
		expect(t, r, doctor.CheckStatsRequest, doctor.Skip)
	})

	t.Run("proxy without its RBAC", func(t *testing.T) {
		_, binding := rbac.Proxy(releaseNS)
		if err := c.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}()
		r := runDoctor(t, cp, opts)
		expect(t, r, doctor.CheckProxyRBAC, doctor.Fail, "may not get nodes/proxy", rbac.ProxyClusterRole)
		expect(t, r, doctor.CheckStatsRequest, doctor.Fail, "HTTP 502", "proxy's own credentials")
	})

	t.Run("a workload holding nodes/proxy in mode proxy", func(t *testing.T) {
		crb := directGrant("shop", "app")
		role := rbac.Direct()
		if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.RbacV1().ClusterRoleBindings().Delete(ctx, crb.Name, metav1.DeleteOptions{}) }()
		r := runDoctor(t, cp, opts)
		expect(t, r, doctor.CheckWorkloadAccess, doctor.Warn, "exec into every pod")
	})

	t.Run("webhook down", func(t *testing.T) {
		wh.server.Close()
		r := runDoctor(t, cp, opts)
		expect(t, r, doctor.CheckCertificate, doctor.Fail, "nothing answers")
		expect(t, r, doctor.CheckReachable, doctor.Fail)
		// The pod itself was injected earlier: its stats still work.
		expect(t, r, doctor.CheckStatsRequest, doctor.OK)
	})
}

// TestDoctorDirectMode checks a pod injected in mode direct, before and
// after its service account is granted nodes/proxy.
func TestDoctorDirectMode(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx := context.Background()
	c := cp.Client
	cp.StartFakeKubeletT(t, "node-a", &kubelet{node: "node-a"})
	wh := installWebhook(t, cp)
	wh.handler.setMode(injector.KubeletStatsDirect)
	createNamespace(t, c, "shop", map[string]string{optIn: "enabled"})
	createServiceAccount(t, c, "shop", "default")
	createServiceAccount(t, c, "shop", "app")
	fargatePod(t, cp, "shop", "app", "app")
	opts := doctor.Options{Namespace: "shop", Pod: "app"}

	r := runDoctor(t, cp, opts)
	expect(t, r, doctor.CheckMode, doctor.OK, "direct")
	expect(t, r, doctor.CheckWorkloadAccess, doctor.Fail, "may not get nodes/proxy", rbac.DirectBinding)
	expect(t, r, doctor.CheckStatsRequest, doctor.Fail, "HTTP 403")

	if _, err := c.RbacV1().ClusterRoles().Create(ctx, rbac.Direct(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, directGrant("shop", "app"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = runDoctor(t, cp, opts)
	expect(t, r, doctor.CheckWorkloadAccess, doctor.OK, "SelfSubjectAccessReview")
	expect(t, r, doctor.CheckStatsRequest, doctor.OK, "through the API server", "node-a")
	if r.Failed() != 0 {
		t.Fatalf("%d failed checks once granted", r.Failed())
	}
}

func directGrant(ns, sa string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: rbac.DirectBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbac.DirectClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa}},
	}
}

func patchCABundle(t *testing.T, cp *cluster.ControlPlane, bundle []byte) func() {
	t.Helper()
	ctx := context.Background()
	mwcs := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	set := func(b []byte) {
		m, err := mwcs.Get(ctx, "fargate-otel-injector", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.Webhooks[0].ClientConfig.CABundle = b
		if _, err := mwcs.Update(ctx, m, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	set(bundle)
	return func() { set(cp.CA.CertPEM) }
}
