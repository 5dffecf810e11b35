package clustertest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

const (
	releaseNS = "fargate-otel"
	proxyHost = "fargate-otel-nodeproxy.fargate-otel.svc"
)

func createNamespace(t *testing.T, c kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// createServiceAccount creates it (the apiserver-only cluster has no
// controller manager to create default service accounts).
func createServiceAccount(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	_, err := c.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// createPod stores a pod bound to node (no kubelet runs it).
func createPod(t *testing.T, c kubernetes.Interface, ns, name, sa, node string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	p, err := c.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			ServiceAccountName:           sa,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// podToken is what the kubelet mounts for a projected serviceAccountToken:
// a token bound to the pod, with the given audience (none: the API
// server's).
func podToken(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, audience string) string {
	t.Helper()
	spec := authnv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(3600)),
		BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}
	if audience != "" {
		spec.Audiences = []string{audience}
	}
	tr, err := c.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(context.Background(), pod.Spec.ServiceAccountName, &authnv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return tr.Status.Token
}

// serviceAccountConfig is a client configuration that authenticates as a
// service account, with a token from TokenRequest.
func serviceAccountConfig(t *testing.T, cp *cluster.ControlPlane, ns, sa string) *rest.Config {
	t.Helper()
	tr, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: cp.URL, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA.CertPEM}}
}

func writeKubeconfig(t *testing.T, cfg *rest.Config, path string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}

// can asks the API server whether user may do verb on resource (a
// SubjectAccessReview, as the authorizer answers real requests).
func can(t *testing.T, c kubernetes.Interface, user, verb, group, resource, subresource, name, namespace string) bool {
	t.Helper()
	sar, err := c.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: groupsOf(user),
		ResourceAttributes: &authzv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Subresource: subresource, Name: name, Namespace: namespace,
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// groupsOf gives a service account the groups the API server gives it, so
// that grants to system:serviceaccounts or system:authenticated count too.
func groupsOf(user string) []string {
	g := []string{"system:authenticated"}
	if rest, ok := strings.CutPrefix(user, "system:serviceaccount:"); ok {
		ns, _, _ := strings.Cut(rest, ":")
		g = append(g, "system:serviceaccounts", "system:serviceaccounts:"+ns)
	}
	return g
}

func saUser(ns, name string) string { return "system:serviceaccount:" + ns + ":" + name }

// mayGetNodesProxy asks the API server whether service account ns/name may
// read the kubelet of node-a through the API server.
func mayGetNodesProxy(t *testing.T, c kubernetes.Interface, ns, name string) bool {
	t.Helper()
	return can(t, c, saUser(ns, name), "get", "", "nodes", "proxy", "node-a", "")
}

// checkNodesProxyHolders asks, for every service account in the cluster,
// whether it may get nodes/proxy: exactly holders (namespace/name) may; and
// whether it may read pod logs (pods/log, in its own namespace or any): none
// may, the proxy included, which reads its callers' logs through
// nodes/proxy for their own pods only.
func checkNodesProxyHolders(t *testing.T, cp *cluster.ControlPlane, holders ...string) {
	t.Helper()
	sas, err := cp.Client.CoreV1().ServiceAccounts("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sas.Items) < 2 {
		t.Fatalf("only %d service accounts: the check would prove nothing", len(sas.Items))
	}
	for _, sa := range sas.Items {
		if holds := mayGetNodesProxy(t, cp.Client, sa.Namespace, sa.Name); holds != slices.Contains(holders, sa.Namespace+"/"+sa.Name) {
			t.Errorf("service account %s/%s: may get nodes/proxy = %v, want it only for %v", sa.Namespace, sa.Name, holds, holders)
		}
		for _, ns := range []string{sa.Namespace, ""} {
			if can(t, cp.Client, saUser(sa.Namespace, sa.Name), "get", "", "pods", "log", "", ns) {
				t.Errorf("service account %s/%s may get pods/log in namespace %q: no service account should", sa.Namespace, sa.Name, ns)
			}
		}
	}
}

// waitDirectGrant waits until service account ns/name may get nodes/proxy,
// and checks that mode direct's binding names it and nothing else.
func waitDirectGrant(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	polltest.Until(t, time.Minute, ns+"/"+name+" granted", func() error {
		if !mayGetNodesProxy(t, c, ns, name) {
			return fmt.Errorf("%s/%s may not get nodes/proxy yet", ns, name)
		}
		return nil
	})
	crb, err := c.RbacV1().ClusterRoleBindings().Get(context.Background(), rbac.DirectBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}}; !slices.Equal(crb.Subjects, want) {
		t.Fatalf("binding subjects %v, want %v", crb.Subjects, want)
	}
}

// kubelet is a fake kubelet's handler: it serves a summary, a pod list and
// container logs for its node and records every path it was asked for.
type kubelet struct {
	node  string
	pods  []*corev1.Pod
	mu    sync.Mutex
	paths []string
}

func (k *kubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.paths = append(k.paths, r.Method+" "+r.URL.RequestURI())
	k.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/containerLogs/") {
		k.serveLogs(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/stats/summary":
		type ref struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
		}
		var pods []map[string]any
		for _, p := range k.pods {
			pods = append(pods, map[string]any{"podRef": ref{p.Name, p.Namespace, string(p.UID)}, "cpu": map[string]any{"usageNanoCores": 1000}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"node": map[string]any{"nodeName": k.node}, "pods": pods})
	case "/pods":
		list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
		for _, p := range k.pods {
			list.Items = append(list.Items, *p)
		}
		_ = json.NewEncoder(w).Encode(list)
	default:
		http.Error(w, "fake kubelet: not served: "+r.URL.Path, http.StatusNotFound)
	}
}

// serveLogs answers containerLogs as the kubelet does: "<line>\n" per log
// line, "<RFC3339Nano time> <line>\n" with timestamps=true, and with
// follow=true a chunked stream of one line every 100 ms (each flushed, as
// the kubelet's flushwriter does) until the caller goes away. Lines say
// whose they are: "line <n> of <namespace>/<pod>/<container>".
func (k *kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	who := strings.TrimPrefix(r.URL.Path, "/containerLogs/")
	q := r.URL.Query()
	w.Header().Set("Content-Type", "text/plain")
	for i := 0; ; i++ {
		if q.Get("follow") != "true" && i == 3 {
			return
		}
		line := fmt.Sprintf("line %d of %s\n", i, who)
		if q.Get("timestamps") == "true" {
			line = time.Now().UTC().Format(time.RFC3339Nano) + " " + line
		}
		if _, err := io.WriteString(w, line); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (k *kubelet) seen() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.paths...)
}

// proxyBinary is the real fargate-otel-nodeproxy: from the Makefile
// ($FARGATE_OTEL_NODEPROXY_BIN), else built now.
func proxyBinary(t *testing.T) string {
	return gobuild.Binary(t, "FARGATE_OTEL_NODEPROXY_BIN", "./cmd/fargate-otel-nodeproxy")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(cluster.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// runningProxy is the proxy process and how to reach it as a collector does.
type runningProxy struct {
	url, probeURL string
	port          int
	client        *http.Client
	log           *os.File
}

// installProxy applies the proxy's RBAC from package rbac (once per
// cluster) and starts the real binary with its service account's
// credentials, a serving certificate signed by the cluster CA, and the extra
// flags given.
func installProxy(t *testing.T, cp *cluster.ControlPlane, extraFlags ...string) *runningProxy {
	t.Helper()
	ctx := context.Background()
	createNamespace(t, cp.Client, releaseNS, nil)
	createServiceAccount(t, cp.Client, releaseNS, rbac.ProxyServiceAccount)
	role, binding := rbac.Proxy(releaseNS)
	if _, err := cp.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeKubeconfig(t, serviceAccountConfig(t, cp, releaseNS, rbac.ProxyServiceAccount), kubeconfig)
	kp, err := cp.CA.Issue(cluster.CertSpec{CommonName: proxyHost, Hosts: []string{proxyHost, cluster.NodeIP}, Server: true, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := kp.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}

	// On the node address, not loopback: a Service's endpoints may not be
	// loopback addresses, and the doctor test gives the proxy a Service.
	port, probePort := freePort(t), freePort(t)
	logFile, err := os.Create(filepath.Join(dir, "proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(proxyBinary(t), append([]string{
		"--kubeconfig", kubeconfig,
		"--listen", fmt.Sprintf("%s:%d", cluster.NodeIP, port),
		"--probe-listen", fmt.Sprintf("127.0.0.1:%d", probePort),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--rate", "1000", "--burst", "1000",
		"--log-level", "debug"}, extraFlags...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &runningProxy{
		url:      fmt.Sprintf("https://%s:%d", cluster.NodeIP, port),
		port:     port,
		probeURL: fmt.Sprintf("http://127.0.0.1:%d", probePort),
		// The collector verifies the proxy's certificate for the Service's
		// DNS name with the CA from its projected volume.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cp.CA.Pool(), ServerName: proxyHost}}},
		log:    logFile,
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // the proxy's graceful shutdown
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the proxy did not shut down cleanly on SIGINT: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the proxy did not stop within 15s of SIGINT")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("proxy log:\n%s", b)
		}
	})
	polltest.Until(t, time.Minute, "proxy ready", func() error {
		resp, err := http.Get(p.probeURL + "/readyz")
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("readyz %d %s", resp.StatusCode, b)
		}
		return nil
	})
	return p
}

// get sends what the kubelet_stats receiver sends: GET endpoint+path with
// "Authorization: bearer <token>".
func (p *runningProxy) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", p.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path // the request target exactly as written
	if token != "" {
		req.Header.Set("Authorization", "bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// open starts a GET as the log follower does and returns the answer with its
// body unread (closed when the test ends).
func (p *runningProxy) open(t *testing.T, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", p.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	req.Header.Set("Authorization", "Bearer "+token)
	// No client timeout: a follow stream lasts as long as it lasts.
	resp, err := (&http.Client{Transport: p.client.Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// metricValue is metric as a number (0 when the series is absent).
func (p *runningProxy) metricValue(t *testing.T, series string) float64 {
	t.Helper()
	v := p.metric(t, series)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("metric %s = %q", series, v)
	}
	return f
}

func (p *runningProxy) metric(t *testing.T, series string) string {
	t.Helper()
	resp, err := http.Get(p.probeURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

var _ = nodeproxy.DefaultAudience

func clientNegotiator() runtime.NegotiatedSerializer {
	return serializer.NewCodecFactory(clientgoscheme.Scheme).WithoutConversion()
}

// cliBinary is the real fargate-otel CLI: from the Makefile
// ($FARGATE_OTEL_CLI), else built now.
func cliBinary(t *testing.T) string {
	return gobuild.Binary(t, "FARGATE_OTEL_CLI", "./cmd/fargate-otel")
}
