package clustertest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

func summaryPath(node string) string { return "/api/v1/nodes/" + node + "/proxy/stats/summary" }

type summary struct {
	Node struct {
		NodeName string `json:"nodeName"`
	} `json:"node"`
	Pods []struct {
		PodRef struct{ Name, UID string } `json:"podRef"`
	} `json:"pods"`
}

// TestProxyAgainstAPIServer runs the real fargate-otel-nodeproxy binary with
// the RBAC of package rbac against a real API server, and calls it as
// collectors of pods on two nodes would.
func TestProxyAgainstAPIServer(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := cp.Client

	createNamespace(t, c, "shop", map[string]string{"fargate-otel.io/inject": "enabled"})
	createServiceAccount(t, c, "shop", "app")
	kubeletA := &kubelet{node: "node-a"}
	kubeletB := &kubelet{node: "node-b"}
	for _, k := range []*kubelet{kubeletA, kubeletB} {
		cp.StartFakeKubeletT(t, k.node, k)
	}
	podA := createPod(t, c, "shop", "a", "app", "node-a", nil)
	podB := createPod(t, c, "shop", "b", "app", "node-b", nil)
	// A neighbour on node-a (not Fargate-like): A must not see it.
	podC := createPod(t, c, "shop", "c", "app", "node-a", nil)
	kubeletA.pods = []*corev1.Pod{podA, podC}
	kubeletB.pods = []*corev1.Pod{podB}

	// The upstream limit is short so that the follow stream below outlives
	// it in a few seconds.
	proxy := installProxy(t, cp, "--upstream-timeout", upstreamLimit.String())
	tokA := podToken(t, c, podA, nodeproxy.DefaultAudience)
	tokB := podToken(t, c, podB, nodeproxy.DefaultAudience)

	t.Run("a pod reads its own node's stats", func(t *testing.T) {
		code, body := proxy.get(t, summaryPath("node-a"), tokA)
		if code != 200 {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		var s summary
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		if s.Node.NodeName != "node-a" {
			t.Fatalf("summary of %q, want node-a's", s.Node.NodeName)
		}
		// node-a also runs pod c: the answer keeps only the caller's pod.
		if len(s.Pods) != 1 || s.Pods[0].PodRef.UID != string(podA.UID) {
			t.Fatalf("pods in the summary: %+v, want only pod a", s.Pods)
		}
		code, body = proxy.get(t, summaryPath("node-b"), tokB)
		if code != 200 || !strings.Contains(body, `"nodeName":"node-b"`) {
			t.Fatalf("pod b on node-b: HTTP %d %s", code, body)
		}
	})

	t.Run("the pod list is filtered to the caller", func(t *testing.T) {
		code, body := proxy.get(t, "/api/v1/nodes/node-a/proxy/pods", tokA)
		if code != 200 {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		var list corev1.PodList
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].UID != podA.UID || list.Items[0].Spec.NodeName != "node-a" {
			t.Fatalf("pod list %+v, want only pod a, complete", list.Items)
		}
	})

	t.Run("another node is refused", func(t *testing.T) {
		before := len(kubeletB.seen())
		code, body := proxy.get(t, summaryPath("node-b"), tokA)
		if code != 403 || !strings.Contains(body, "node-a") {
			t.Fatalf("token of a pod on node-a asking node-b: HTTP %d %s, want 403", code, body)
		}
		if len(kubeletB.seen()) != before {
			t.Fatal("node-b's kubelet was called")
		}
	})

	t.Run("tokens of other audiences or not bound to a pod are refused", func(t *testing.T) {
		apiToken := podToken(t, c, podA, "") // the API server's audience, what the app container gets
		code, body := proxy.get(t, summaryPath("node-a"), apiToken)
		if code != 401 {
			t.Fatalf("API-audience token: HTTP %d %s, want 401", code, body)
		}
		tr, err := c.CoreV1().ServiceAccounts("shop").CreateToken(ctx, "app", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			Audiences: []string{nodeproxy.DefaultAudience}, ExpirationSeconds: ptr.To(int64(600)),
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		code, body = proxy.get(t, summaryPath("node-a"), tr.Status.Token)
		if code != 401 || !strings.Contains(body, "not bound to a pod") {
			t.Fatalf("unbound token: HTTP %d %s, want 401 saying it is not bound to a pod", code, body)
		}
		// And the proxy's token is useless against the API server itself.
		review, err := c.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tokA}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Authenticated {
			t.Fatal("the API server accepts the proxy-audience token for itself")
		}
		if code, _ := proxy.get(t, summaryPath("node-a"), ""); code != 401 {
			t.Fatalf("no token: HTTP %d, want 401", code)
		}
	})

	t.Run("nothing but the stats reaches a kubelet", func(t *testing.T) {
		for _, path := range []string{
			"/api/v1/nodes/node-a/proxy/exec/shop/a/app?command=id&stdout=true",
			"/api/v1/nodes/node-a/proxy/run/shop/a/app",
			"/api/v1/nodes/node-a/proxy/containerLogs/shop/a/app?sinceSeconds=10",
			"/api/v1/nodes/node-a/proxy/containerLogs/shop/a/app/../../../../exec/shop/a/app",
			"/api/v1/nodes/node-a/proxy/containerLogs/shop/a%2Fapp/x/y",
			"/api/v1/nodes/node-a/proxy/logs/",
			"/api/v1/nodes/node-a/proxy/stats/summary/../../exec/shop/a/app",
			"/api/v1/nodes/node-a/proxy/stats%2F..%2F..%2Fexec/shop/a/app",
			"/api/v1/nodes/node-a/proxy/stats/summary?path=/exec",
			"/api/v1/nodes/node-a/proxy/configz",
			"/api/v1/namespaces/kube-system/secrets",
		} {
			if code, body := proxy.get(t, path, tokA); code != 404 {
				t.Errorf("%s: HTTP %d %s, want 404", path, code, body)
			}
		}
		checkKubeletsSaw(t, kubeletA, kubeletB)
	})

	t.Run("a pod follows its own container's log", func(t *testing.T) {
		testOwnLogs(t, cp, proxy, kubeletA)
		checkKubeletsSaw(t, kubeletA, kubeletB)
	})

	t.Run("a scrape costs one upstream call once warm", func(t *testing.T) {
		before := len(kubeletA.seen())
		reviews := proxy.metric(t, `fargate_otel_nodeproxy_token_reviews_total{result="miss"}`)
		for range 5 {
			if code, body := proxy.get(t, summaryPath("node-a"), tokA); code != 200 {
				t.Fatalf("HTTP %d %s", code, body)
			}
		}
		if n := len(kubeletA.seen()) - before; n != 5 {
			t.Errorf("%d kubelet calls for 5 scrapes", n)
		}
		if after := proxy.metric(t, `fargate_otel_nodeproxy_token_reviews_total{result="miss"}`); after != reviews {
			t.Errorf("TokenReviews went from %s to %s during 5 warm scrapes, want none", reviews, after)
		}
	})

	t.Run("the token of a deleted pod is refused", func(t *testing.T) {
		if err := c.CoreV1().Pods("shop").Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
			t.Fatal(err)
		}
		polltest.Until(t, 30*time.Second, "proxy refusing pod a's token", func() error {
			if code, body := proxy.get(t, summaryPath("node-a"), tokA); code == 200 {
				return errString("still served: " + body[:min(len(body), 80)])
			}
			return nil
		})
		// Once the cached review is dropped, the API server itself refuses it.
		code, body := proxy.get(t, summaryPath("node-a"), tokA)
		if code != 401 && code != 403 {
			t.Fatalf("HTTP %d %s", code, body)
		}
		// A new pod with the same name does not revive the old token.
		createPod(t, c, "shop", "a", "app", "node-a", nil)
		if code, body := proxy.get(t, summaryPath("node-a"), tokA); code == 200 {
			t.Fatalf("old token works for a re-created pod: %s", body)
		}
	})

	t.Run("the proxy's RBAC is the minimum", func(t *testing.T) {
		checkProxyRBAC(t, cp)
	})

	t.Run("no workload service account holds nodes/proxy or pods/log", func(t *testing.T) {
		checkNodesProxyHolders(t, cp, releaseNS+"/"+rbac.ProxyServiceAccount)
	})

	t.Run("a flood of junk tokens costs a bounded number of TokenReviews", func(t *testing.T) {
		testTokenFlood(t, cp, podB, tokB)
	})
}

// checkKubeletsSaw: the kubelets were asked for nothing but stats and the
// logs of the logging pod's own containers.
func checkKubeletsSaw(t *testing.T, kubelets ...*kubelet) {
	t.Helper()
	for _, k := range kubelets {
		for _, seen := range k.seen() {
			if seen != "GET /stats/summary" && seen != "GET /pods" && !strings.HasPrefix(seen, "GET /containerLogs/shop/logger/") {
				t.Errorf("kubelet %s was asked %q", k.node, seen)
			}
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// checkProxyRBAC asks the API server what the proxy's service account may
// do: exactly its three grants, nothing around them.
func checkProxyRBAC(t *testing.T, cp *cluster.ControlPlane) {
	t.Helper()
	c := cp.Client
	user := saUser(releaseNS, rbac.ProxyServiceAccount)
	type req struct{ verb, group, resource, sub, name, ns string }
	allowed := []req{
		{"create", "authentication.k8s.io", "tokenreviews", "", "", ""},
		{"get", "", "pods", "", "x", "shop"},
		{"list", "", "pods", "", "", ""},
		{"watch", "", "pods", "", "", ""},
		{"get", "", "nodes", "proxy", "node-a", ""},
	}
	denied := []req{
		{"create", "", "nodes", "proxy", "node-a", ""}, // POST: exec, run, portforward
		{"update", "", "nodes", "proxy", "node-a", ""},
		{"delete", "", "nodes", "proxy", "node-a", ""},
		{"get", "", "nodes", "", "node-a", ""},
		{"list", "", "nodes", "", "", ""},
		{"get", "", "nodes", "stats", "node-a", ""},
		{"get", "", "nodes", "log", "node-a", ""},
		{"create", "", "pods", "exec", "x", "shop"},
		{"get", "", "pods", "exec", "x", "shop"},
		{"get", "", "pods", "log", "x", "shop"},
		{"list", "", "pods", "log", "", ""},
		{"create", "", "pods", "portforward", "x", "shop"},
		{"delete", "", "pods", "", "x", "shop"},
		{"update", "", "pods", "", "x", "shop"},
		{"get", "", "secrets", "", "x", "shop"},
		{"list", "", "secrets", "", "", ""},
		{"get", "", "configmaps", "", "x", "shop"},
		{"create", "", "serviceaccounts", "token", "app", "shop"},
		{"impersonate", "", "users", "", "admin", ""},
		{"impersonate", "", "serviceaccounts", "", "app", "shop"},
		{"create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""},
		{"get", "", "services", "proxy", "x", "shop"},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""},
		{"bind", "rbac.authorization.k8s.io", "clusterroles", "", "cluster-admin", ""},
	}
	for _, r := range allowed {
		if !can(t, c, user, r.verb, r.group, r.resource, r.sub, r.name, r.ns) {
			t.Errorf("the proxy may not %s %s/%s %s: it needs it", r.verb, r.resource, r.sub, r.name)
		}
	}
	for _, r := range denied {
		if can(t, c, user, r.verb, r.group, r.resource, r.sub, r.name, r.ns) {
			t.Errorf("the proxy may %s %s/%s %s in %q: more than it needs", r.verb, r.resource, r.sub, r.name, r.ns)
		}
	}
	role, err := c.RbacV1().ClusterRoles().Get(context.Background(), rbac.ProxyClusterRole, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(role.Rules, rbac.ProxyRules(), func(a, b rbacv1.PolicyRule) bool { return a.String() == b.String() }) {
		t.Errorf("ClusterRole in the cluster %v, want rbac.ProxyRules %v", role.Rules, rbac.ProxyRules())
	}
}
