package clustertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/controllers"
)

// TestProxyAndDirectWithOneInjector: one injector whose default mode is
// proxy and which allows direct too (namespaces choose with a label) runs
// both controllers, with the injector's RBAC, against a real API server: the
// proxy's CA lands in every opted-in namespace, and only the service
// accounts of pods injected in mode direct may read kubelets.
func TestProxyAndDirectWithOneInjector(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	c := cp.Client
	k := &kubelet{node: "node-a"}
	cp.StartFakeKubeletT(t, "node-a", k)

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
		polltest.Until(t, time.Minute, "CA published in "+ns, wantCA(t, cp, ns, ca.CertPEM))
	}
	waitDirectGrant(t, c, "via-direct", "app")
	if mayGetNodesProxy(t, c, "via-proxy", "app") {
		t.Error("the service account of a pod in mode proxy may get nodes/proxy")
	}
	checkNodesProxyHolders(t, cp, "via-direct/app")
}
