package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/nodeproxy/podindex"
)

// -follow-upstream real: the follow rows with a real kube-apiserver (and
// etcd, e2e/cluster, in a private network namespace) between the followers
// and a kubelet of this process, straight (the admin's credentials) and
// through the proxy (its real authenticator, pod index and handler in this
// process, real TokenReviews). The API server's CPU is read from /proc.

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

	// The proxy, as fargate-otel-nodeproxy runs it (Run needs files and a
	// service account; the parts are the same), with the admin's
	// credentials in place of its own.
	fwd := rest.CopyConfig(cp.Config)
	fwd.NextProtos = []string{"http/1.1"}
	transport, err := rest.TransportFor(fwd)
	if err != nil {
		return err
	}
	auth, err := callerauth.New(callerauth.ClientReviewer(c.AuthenticationV1().TokenReviews()), callerauth.Options{Audience: nodeproxy.DefaultAudience})
	if err != nil {
		return err
	}
	idx, err := podindex.New(c)
	if err != nil {
		return err
	}
	idx.Start(ctx)
	if !idx.WaitForSync(ctx) {
		return fmt.Errorf("pod index did not sync")
	}
	up, _ := url.Parse(cp.URL)
	h, err := nodeproxy.NewHandler(nodeproxy.Config{Upstream: up, Transport: transport, Auth: auth, Pods: idx})
	if err != nil {
		return err
	}
	cert, err := cp.CA.ServingCert("127.0.0.1")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := nodeproxy.NewTLSServer(h, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, slog.New(slog.DiscardHandler))
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer func() { _ = srv.Close() }()

	apiserver, err := apiServerPID()
	if err != nil {
		return err
	}
	direct := followPath{base: cp.URL, client: make([]*http.Client, cfg.followers), token: func(int) string { return "" }, node: func(int) string { return realNode }}
	proxied := followPath{base: "https://" + ln.Addr().String(), client: make([]*http.Client, cfg.followers), token: func(i int) string { return tokens[i] }, node: func(int) string { return realNode }}
	for i := range cfg.followers {
		direct.client[i] = &http.Client{Transport: transport}
		proxied.client[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cp.CA.Pool(), NextProtos: []string{"http/1.1"}}}}
	}
	fmt.Printf("nodeproxy follow benchmark with a real kube-apiserver (e2e/cluster, same machine), GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	fmt.Printf("  follow (containerLogs?follow=true&timestamps=true): %d containers x %d lines/s x %d B, %d paired rounds of %v\n",
		cfg.followers, cfg.linesPerSec, cfg.lineBytes, cfg.rounds, cfg.duration)
	fmt.Println("    direct: the followers call the API server's nodes/proxy with the admin's credentials; through the proxy:")
	fmt.Println("    their own pod-bound tokens (real TokenReviews), then the proxy calls the same nodes/proxy; HTTP/1.1 everywhere")
	return followRounds(direct, proxied, func() time.Duration { return procCPU(apiserver) })
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
