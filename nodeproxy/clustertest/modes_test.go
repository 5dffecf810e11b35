package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/controllers"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// TestProxyAndDirectWithOneInjector: one injector whose default mode is
// proxy and which allows direct too (namespaces choose with a label) runs
// both controllers, with the injector's RBAC, against a real API server: the
// proxy's CA lands in every opted-in namespace, and only the service
// accounts of pods injected in mode direct may read kubelets.
func TestProxyAndDirectWithOneInjector(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx := context.Background()
	c := cp.Client
	k := &kubelet{node: "node-a"}
	fk, err := cp.StartFakeKubelet(ctx, "node-a", k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fk.Close(context.Background()) })

	const mode = "fargate-otel.io/kubelet-stats"
	createNamespace(t, c, "via-proxy", map[string]string{optIn: "enabled", mode: "proxy"})
	createNamespace(t, c, "via-direct", map[string]string{optIn: "enabled", mode: "direct"})
	createServiceAccount(t, c, "via-proxy", "app")
	createServiceAccount(t, c, "via-direct", "app")
	status := func(mode string) map[string]string {
		return map[string]string{controllers.StatusAnnotation: `{"version":1,"collector":"native-sidecar","kubeletStats":"` + mode + `"}`}
	}
	createPod(t, c, "via-proxy", "web", "app", "node-a", status("proxy"))
	createPod(t, c, "via-direct", "web", "app", "node-a", status("direct"))

	ca, _ := pkitest.NewCA("proxy-ca")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	startManager(t, installInjectorRBAC(t, cp, true), controllers.Config{
		Mode: controllers.ModeProxy, Modes: []string{controllers.ModeProxy, controllers.ModeOff, controllers.ModeDirect},
		CAFile: caFile, CAPollInterval: 200 * time.Millisecond,
	})

	for _, ns := range []string{"via-proxy", "via-direct"} {
		poll(t, time.Minute, "CA published in "+ns, wantCA(t, cp, ns, ca.CertPEM))
	}
	granted := func(ns string) bool { return can(t, c, saUser(ns, "app"), "get", "", "nodes", "proxy", "node-a", "") }
	poll(t, time.Minute, "via-direct/app granted", func() error {
		if !granted("via-direct") {
			return fmt.Errorf("via-direct/app may not get nodes/proxy yet")
		}
		return nil
	})
	crb, err := c.RbacV1().ClusterRoleBindings().Get(ctx, rbac.DirectBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "via-direct", Name: "app"}}; !slices.Equal(crb.Subjects, want) {
		t.Fatalf("binding subjects %v, want %v", crb.Subjects, want)
	}
	if granted("via-proxy") {
		t.Error("the service account of a pod in mode proxy may get nodes/proxy")
	}
	checkNoWorkloadHoldsNodesProxyExcept(t, cp, []string{"via-direct/app"})
}
