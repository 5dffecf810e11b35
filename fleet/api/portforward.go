package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// Where the chart runs the fleet server.
const (
	// DefaultNamespace is the chart's release namespace.
	DefaultNamespace = "fargate-otel"
	// PodSelector selects the fleet server's pods.
	PodSelector = "app.kubernetes.io/name=fargate-otel,app.kubernetes.io/component=fleet"
	// LocalPort is the port of the read-only API and page; the server
	// listens on the pod's loopback only, so it is reached with a
	// port-forward, which the API server authorizes with the caller's own
	// RBAC (create pods/portforward in the release namespace).
	LocalPort = 4321
	// OpAMPPort is the agents' port (TLS), which also serves the peers.
	OpAMPPort = 4320
	// MetricsPort serves /metrics, /healthz and /readyz on the pod IP.
	MetricsPort = 9090
)

// PortForward forwards a free local port to the local API of one ready
// fleet server pod of namespace, and returns a client for it and a function
// that stops forwarding. Any replica answers for the whole fleet.
func PortForward(ctx context.Context, cfg *rest.Config, namespace string) (Client, func(), error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Client{}, nil, err
	}
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: PodSelector})
	if err != nil {
		return Client{}, nil, fmt.Errorf("find the fleet server in namespace %s: %w", namespace, err)
	}
	var errs []error
	for _, p := range pods.Items {
		if !ready(&p) {
			continue
		}
		addr, stop, err := portForwardPod(ctx, cfg, kube, namespace, p.Name, LocalPort)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return Client{BaseURL: "http://" + addr}, stop, nil
	}
	if len(errs) > 0 {
		return Client{}, nil, errors.Join(errs...)
	}
	return Client{}, nil, fmt.Errorf("no ready fleet server pod (%s) in namespace %s: is the chart installed with fleet.enabled=true? kubectl -n %s get pods -l %s",
		PodSelector, namespace, namespace, PodSelector)
}

func ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// portForwardPod forwards a free local port to port of pod.
func portForwardPod(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, ns, pod string, port int) (string, func(), error) {
	u := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", nil, err
	}
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	if ws, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, cfg); err == nil {
		dialer = portforward.NewFallbackDialerForStreaming(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop := make(chan struct{})
	readyc := make(chan struct{})
	fw, err := portforward.NewOnAddressesForStreaming(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, readyc, io.Discard, io.Discard)
	if err != nil {
		return "", nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case <-readyc:
	case err := <-errc:
		return "", nil, fmt.Errorf("port-forward to pod %s/%s: %w", ns, pod, err)
	case <-timer.C:
		close(stop)
		return "", nil, errors.New("port-forward to pod " + ns + "/" + pod + ": not ready within 15s")
	case <-ctx.Done():
		close(stop)
		return "", nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		close(stop)
		return "", nil, fmt.Errorf("port-forward to pod %s/%s: no local port", ns, pod)
	}
	return "127.0.0.1:" + strconv.Itoa(int(ports[0].Local)), func() { close(stop) }, nil
}
