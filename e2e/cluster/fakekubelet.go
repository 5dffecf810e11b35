package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FakeKubelet is a Node object whose kubelet endpoint is an HTTPS server of
// the test, for the apiserver-only control plane: a request to
// /api/v1/nodes/<Node.Name>/proxy/<path> reaches Handler as /<path>.
//
// The server listens on NodeIP (not a loopback address, which the API server
// refuses to proxy to) at a port of its own, written into the Node's
// status.daemonEndpoints.kubeletEndpoint.port; several fake kubelets can run
// side by side. It serves a certificate signed by the cluster CA, which the
// API server verifies (--kubelet-certificate-authority), and requires the API
// server's kubelet client certificate, as a real kubelet does.
type FakeKubelet struct {
	Node   *corev1.Node
	URL    string
	server *httptest.Server
	cp     *ControlPlane
}

// StartFakeKubelet registers node name as a Ready node served by handler.
func (cp *ControlPlane) StartFakeKubelet(ctx context.Context, name string, handler http.Handler) (*FakeKubelet, error) {
	cert, err := cp.CA.ServingCert(NodeIP, name)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(NodeIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("fake kubelet %s: listen on %s (is the process in the cluster's network namespace?): %w", name, NodeIP, err)
	}
	srv := httptest.NewUnstartedServer(handler)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    cp.CA.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	port := int32(l.Addr().(*net.TCPAddr).Port)
	fk := &FakeKubelet{URL: srv.URL, server: srv, cp: cp}

	node, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node.Status = corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: NodeIP},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}},
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "FakeKubelet",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
		Capacity:    capacity,
		Allocatable: capacity,
	}
	if fk.Node, err = cp.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		srv.Close()
		return nil, fmt.Errorf("set status of node %s: %w", name, err)
	}
	return fk, nil
}

// Close stops the server and deletes the Node.
func (fk *FakeKubelet) Close(ctx context.Context) error {
	fk.server.Close()
	return fk.cp.Client.CoreV1().Nodes().Delete(ctx, fk.Node.Name, metav1.DeleteOptions{})
}
