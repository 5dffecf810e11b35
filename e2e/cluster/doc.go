// Package cluster runs a real Kubernetes for tests, inside a network
// namespace of its own: nothing listens on, or talks to, the machine's
// addresses, and every port is free.
//
// Two sizes:
//
//   - StartControlPlane: etcd and kube-apiserver (seconds). Enough for
//     admission webhooks, RBAC, TokenRequest/TokenReview, and nodes/proxy
//     to a fake kubelet (StartFakeKubelet).
//   - Start: a single node as well: containerd, the kubelet, the controller
//     manager, the scheduler, kube-proxy and CoreDNS; pods run for real.
//
// A test package re-executes itself in a new network namespace from
// TestMain, then starts what it needs:
//
//	func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }
//
//	func TestProxy(t *testing.T) {
//		cp := cluster.StartControlPlaneT(t, cluster.Options{})
//		// cp.Client, cp.Config (admin), cp.Kubeconfig, cp.URL, cp.CA
//		cert, _ := cp.CA.ServingCert("proxy.ns.svc", cluster.NodeIP)
//		fk, _ := cp.StartFakeKubelet(ctx, "node-a", statsHandler)
//		// GET /api/v1/nodes/node-a/proxy/stats/summary reaches statsHandler.
//	}
//
// The binaries come from `make k8s-bins` (Kubernetes pinned in
// e2e/k8sbin/go.mod, Debian's etcd and containerd), found through the
// variables mk/e2e.mk exports; a plain `go test` builds them with make.
// Tests need root, as CI has.
package cluster
