// Package cluster runs a real Kubernetes for tests, inside a network
// namespace of its own: nothing listens on, or talks to, the machine's
// addresses, and every port is free.
//
// Two sizes:
//
//   - StartControlPlane(T): etcd and kube-apiserver (seconds). Enough for
//     admission webhooks, RBAC, TokenRequest/TokenReview with audiences, and
//     nodes/proxy to a fake kubelet (StartFakeKubelet).
//   - Start(T): a single node as well: containerd, the kubelet, the
//     controller manager, the scheduler, kube-proxy (iptables) and CoreDNS;
//     pods run for real, Services and <svc>.<ns>.svc names work.
//
// A test package re-executes itself in a new network namespace from
// TestMain, then starts what it needs:
//
//	func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }
//
//	func TestProxy(t *testing.T) {
//		cp := cluster.StartControlPlaneT(t, cluster.Options{})
//		// cp.Client, cp.Config (admin), cp.Kubeconfig (file), cp.URL, cp.CA
//		cert, _ := cp.CA.ServingCert("proxy.ns.svc", cluster.NodeIP)
//		fk, _ := cp.StartFakeKubelet(ctx, "node-a", statsHandler)
//		defer fk.Close(ctx)
//		// GET /api/v1/nodes/node-a/proxy/stats/summary reaches statsHandler
//		// as /stats/summary, over TLS, from the API server's kubelet client.
//	}
//
//	func TestPods(t *testing.T) {
//		c := cluster.StartT(t, cluster.Options{})
//		_ = gobuild.Build(ctx, "./cmd/fargate-otel-tee", bin)
//		_ = c.LoadImage(ctx, images.Spec{Ref: "localhost/x/tee:e2e", Binary: bin})
//		// pods with image localhost/x/tee:e2e and imagePullPolicy: Never
//		out, _ := c.Kubectl(ctx, "-n", "ns", "logs", "pod")
//	}
//
// The binaries come from `make k8s-bins` (Kubernetes pinned in
// e2e/k8sbin/go.mod, Debian's etcd and containerd) and `make coredns-bin`,
// found through the variables mk/e2e.mk exports; a plain `go test` builds
// them with make. Tests need root, as CI has. A failed test keeps the
// component and pod logs under _artifacts/e2e/<test>/; a cluster whose test
// process was killed is torn down by the next Start.
package cluster
