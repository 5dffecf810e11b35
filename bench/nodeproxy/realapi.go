package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// -follow-upstream real: the follow rows with a real kube-apiserver (and
// etcd, e2e/cluster, in a private network namespace) between the followers
// and a kubelet of this process, straight (the admin's credentials) and
// through the real fargate-otel-nodeproxy binary (its own process, its own
// RBAC, real TokenReviews). Each process's CPU is read from /proc, so the
// proxy's figure is its own, not a difference of two noisy sums.

const realNode = "bench-node"

type runFunc func() int

func (f runFunc) Run() int { return f() }

func followRealMain() int {
	return cluster.RunInNetNS(runFunc(func() int {
		if err := followReal(); err != nil {
			fmt.Fprintln(os.Stderr, "bench-nodeproxy:", err)
			return 1
		}
		return 0
	}))
}

func followReal() error {
	cfg := followCfg
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cp, err := cluster.StartControlPlane(ctx, cluster.Options{})
	defer cp.Stop()
	if err != nil {
		return err
	}
	kubelet := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/containerLogs/") {
			http.NotFound(w, r)
			return
		}
		serveFollow(w, r)
	})
	if _, err := cp.StartFakeKubelet(ctx, realNode, kubelet); err != nil {
		return err
	}
	c := cp.Client
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := c.CoreV1().ServiceAccounts("ns").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	tokens := make([]string, cfg.followers)
	for i := range cfg.followers {
		p := benchPod(i)
		p.UID, p.Spec.NodeName = "", realNode
		p.Spec.AutomountServiceAccountToken = ptr.To(false)
		for j := range p.Spec.Containers {
			p.Spec.Containers[j].Image = "example.invalid/" + p.Spec.Containers[j].Name + ":1"
		}
		created, err := c.CoreV1().Pods("ns").Create(ctx, &p, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		tr, err := c.CoreV1().ServiceAccounts("ns").CreateToken(ctx, "app", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			Audiences: []string{nodeproxy.DefaultAudience}, ExpirationSeconds: ptr.To(int64(3600)),
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: created.Name, UID: created.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		tokens[i] = tr.Status.Token
	}

	proxy, stop, err := startProxy(ctx, cp)
	if err != nil {
		return err
	}
	defer stop()
	apiserver, err := apiServerPID()
	if err != nil {
		return err
	}

	// The followers' direct client: the admin's credentials, HTTP/1.1 as
	// the proxy's own client.
	fwd := rest.CopyConfig(cp.Config)
	fwd.NextProtos = []string{"http/1.1"}
	transport, err := rest.TransportFor(fwd)
	if err != nil {
		return err
	}
	direct := followPath{base: cp.URL, client: make([]*http.Client, cfg.followers), token: func(int) string { return "" }, node: func(int) string { return realNode }}
	proxied := followPath{base: proxy.url, client: make([]*http.Client, cfg.followers), token: func(i int) string { return tokens[i] }, node: func(int) string { return realNode }}
	for i := range cfg.followers {
		direct.client[i] = &http.Client{Transport: transport}
		proxied.client[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cp.CA.Pool(), ServerName: "fargate-otel-nodeproxy", NextProtos: []string{"http/1.1"}}}}
	}
	fmt.Printf("nodeproxy follow benchmark with a real kube-apiserver and the real fargate-otel-nodeproxy (own processes, same machine), GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	fmt.Printf("  follow (containerLogs?follow=true&timestamps=true): %d containers x %d lines/s x %d B, %d paired rounds of %v\n",
		cfg.followers, cfg.linesPerSec, cfg.lineBytes, cfg.rounds, cfg.duration)
	fmt.Println("    direct: the followers call the API server's nodes/proxy with the admin's credentials; through the proxy:")
	fmt.Println("    with their own pod-bound tokens (real TokenReviews), and the proxy calls the same nodes/proxy; HTTP/1.1 everywhere")
	meters := []meter{thisProcess, {"kube-apiserver", func() time.Duration { return procCPU(apiserver) }}, {"fargate-otel-nodeproxy", func() time.Duration { return procCPU(proxy.pid) }}}
	f, err := followRounds(direct, proxied, meters)
	if err != nil {
		return err
	}
	px, api := f.cpuProxy[2], f.cpuDirect[1]
	fmt.Printf("  fargate-otel-nodeproxy CPU per followed container: %5.2f ms/s = %.2f%% of a core (%.1f us per line)\n", px, px/10, px*1e3/float64(cfg.linesPerSec))
	fmt.Printf("  kube-apiserver CPU per followed container:       %5.2f ms/s direct, %.2f ms/s through the proxy\n", f.cpuDirect[1], f.cpuProxy[1])
	fmt.Printf("  followers and kubelet (this process):            %5.2f ms/s direct, %.2f ms/s through the proxy\n", f.cpuDirect[0], f.cpuProxy[0])
	fmt.Printf("  nodeproxy / kube-apiserver CPU (the proxy's cost against the API server's own for the same stream): %.2fx\n", px/api)
	return nil
}

type realProxy struct {
	url string
	pid int
}

// startProxy runs the real fargate-otel-nodeproxy with its own RBAC and
// service account, as the cluster tests do.
func startProxy(ctx context.Context, cp *cluster.ControlPlane) (realProxy, func(), error) {
	c := cp.Client
	const ns = "fargate-otel"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return realProxy{}, nil, err
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: rbac.ProxyServiceAccount}}, metav1.CreateOptions{}); err != nil {
		return realProxy{}, nil, err
	}
	role, binding := rbac.Proxy(ns)
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return realProxy{}, nil, err
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return realProxy{}, nil, err
	}
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, rbac.ProxyServiceAccount, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		return realProxy{}, nil, err
	}
	dir, err := os.MkdirTemp("", "bench-nodeproxy-")
	if err != nil {
		return realProxy{}, nil, err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: cp.CA.CertPEM}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return realProxy{}, nil, err
	}
	kp, err := cp.CA.Issue(cluster.CertSpec{CommonName: "fargate-otel-nodeproxy", Hosts: []string{"fargate-otel-nodeproxy", "127.0.0.1"}, Server: true, Validity: time.Hour})
	if err != nil {
		return realProxy{}, nil, err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := kp.WriteFiles(certFile, keyFile); err != nil {
		return realProxy{}, nil, err
	}
	bin := gobuild.Built("FARGATE_OTEL_NODEPROXY_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "fargate-otel-nodeproxy")
		if err := gobuild.Build(ctx, "./cmd/fargate-otel-nodeproxy", bin); err != nil {
			return realProxy{}, nil, err
		}
	}
	port, probe, err := twoPorts()
	if err != nil {
		return realProxy{}, nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "proxy.log"))
	if err != nil {
		return realProxy{}, nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--probe-listen", fmt.Sprintf("127.0.0.1:%d", probe),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return realProxy{}, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = logFile.Close()
		_ = os.RemoveAll(dir)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probe))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile.Name())
			stop()
			return realProxy{}, nil, fmt.Errorf("the proxy did not become ready within a minute: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return realProxy{url: fmt.Sprintf("https://127.0.0.1:%d", port), pid: cmd.Process.Pid}, stop, nil
}

func twoPorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer func() { _ = l.Close() }()
	}
	return ports[0], ports[1], nil
}

// apiServerPID finds the kube-apiserver of this network namespace.
func apiServerPID() (int, error) {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return 0, err
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "kube-apiserver" {
			continue
		}
		if ns, err := os.Readlink(filepath.Join(d, "ns/net")); err == nil && ns == self {
			return strconv.Atoi(filepath.Base(d))
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process in this network namespace")
}

// procCPU is a process's user and system CPU time (/proc/<pid>/stat, in
// clock ticks of 10 ms: USER_HZ is 100 on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
