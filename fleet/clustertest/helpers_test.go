// Package clustertest runs fleet server replicas (fleet/app, in-process)
// against a real kube-apiserver (e2e/cluster, control plane only), with
// real opamp-go agents (fleet/fleettest): real TokenRequest and TokenReview
// of pod-bound tokens with audiences, real ConfigMaps, Events and
// EndpointSlices.
package clustertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/app"
	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/fleettest"
	"github.com/fargate-otel/fargate-otel/fleet/server"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
)

func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }

const (
	releaseNS  = "fargate-otel"
	serverName = "fargate-otel-fleet.fargate-otel.svc"
	version    = "0.1.0"
)

// env is a control plane with the release namespace and the fleet's CA.
type env struct {
	t    *testing.T
	cp   *cluster.ControlPlane
	kube kubernetes.Interface
	ca   *pkitest.CA
	pool *x509.CertPool
	ctx  context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	ca, err := pkitest.NewCA("fleet test CA")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cp: cp, kube: cp.Client, ca: ca, pool: ca.Pool(), ctx: ctx}
	e.namespace(releaseNS)
	e.serviceAccount(releaseNS, "fargate-otel-fleet")
	return e
}

func (e *env) namespace(name string) {
	e.t.Helper()
	_, err := e.kube.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
}

// serviceAccount creates it (no controller manager runs to do so).
func (e *env) serviceAccount(ns, name string) {
	e.t.Helper()
	_, err := e.kube.CoreV1().ServiceAccounts(ns).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
}

// pod stores a pod (no kubelet runs it) with service account sa.
func (e *env) pod(ns, name, sa string) *corev1.Pod {
	e.t.Helper()
	e.namespace(ns)
	e.serviceAccount(ns, sa)
	p, err := e.kube.CoreV1().Pods(ns).Create(e.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: ptr.To(false), NodeName: "fargate-ip-10-0-0-1",
			Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// token is what the kubelet mounts for a projected serviceAccountToken of
// audience aud, bound to the pod.
func (e *env) token(p *corev1.Pod, aud string) string {
	e.t.Helper()
	tr, err := e.kube.CoreV1().ServiceAccounts(p.Namespace).CreateToken(e.ctx, p.Spec.ServiceAccountName, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{aud}, ExpirationSeconds: ptr.To(int64(3600)),
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return tr.Status.Token
}

// replica is a fleet server replica running in the test process.
type replica struct {
	name   string
	addrs  app.Addrs
	client api.Client
	stop   func()
}

// startReplica runs one replica as pod name (a pod of the fleet server's
// service account, whose token it presents to its peers).
func (e *env) startReplica(name string, peers bool) *replica {
	e.t.Helper()
	// The Service's name, and the address agents dial here (the real
	// agent verifies the name it dials, as it does in a pod).
	cert, err := e.ca.ServingCert(serverName, cluster.NodeIP)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := e.t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(caFile, e.ca.CertPEM, 0o600); err != nil {
		e.t.Fatal(err)
	}
	self := e.pod(releaseNS, name, "fargate-otel-fleet")
	if err := os.WriteFile(tokenFile, []byte(e.token(self, server.Audience)), 0o600); err != nil {
		e.t.Fatal(err)
	}
	peerService := "-"
	if peers {
		peerService = "fargate-otel-fleet-peers"
	}
	ready := make(chan app.Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, e.cp.Config, app.Options{
			Namespace: releaseNS, Replica: name, Version: version,
			Listen: net.JoinHostPort(cluster.NodeIP, "0"), LocalListen: "127.0.0.1:0", ProbeListen: "127.0.0.1:0",
			TLSCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
			CAFile:         caFile, TokenFile: tokenFile, PeerService: peerService,
			ConfigMapInterval: 500 * time.Millisecond,
			Log:               testr.NewWithOptions(e.t, testr.Options{Verbosity: 1}),
			Ready:             func(a app.Addrs) { ready <- a },
		})
	}()
	var addrs app.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		e.t.Fatalf("replica %s: %v", name, err)
	case <-time.After(time.Minute):
		cancel()
		e.t.Fatalf("replica %s did not start", name)
	}
	var stopped bool
	r := &replica{name: name, addrs: addrs, client: api.Client{BaseURL: "http://" + addrs.Local}, stop: func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("replica %s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			e.t.Errorf("replica %s did not stop", name)
		}
	}}
	e.t.Cleanup(r.stop)
	return r
}

func (r *replica) url() string { return "wss://" + r.addrs.OpAMP + "/v1/opamp" }

// agentFor starts a simulated sidecar of pod p that presents token.
func (e *env) agentFor(r *replica, p *corev1.Pod, token string, mod func(*fleettest.AgentOptions)) *fleettest.Agent {
	e.t.Helper()
	o := fleettest.AgentOptions{
		URL: r.url(), TLS: &tls.Config{RootCAs: e.pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
		Token: func() string { return token },
		UID:   string(p.UID), Namespace: p.Namespace, Pod: p.Name, Node: p.Spec.NodeName,
		Version: version, InjectorVersion: version, ExportersSource: desired.SourceCluster,
		BootstrapHash: "b0075742a5e1d00d", ConfigHash: "b0075742a5e1d00d", Healthy: true,
		Heartbeat: 2 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	a, err := fleettest.Start(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a
}

// liveConfigMap writes the cluster's live settings.
func (e *env) liveConfigMap(data map[string]string) {
	e.t.Helper()
	e.configMap(releaseNS, desired.LiveConfigMap, data)
}

func (e *env) configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	e.t.Helper()
	cms := e.kube.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(e.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = cms.Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
	} else if err == nil {
		cm.Data = data
		cm, err = cms.Update(e.ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return cm
}

// agentIn is the view's entry of uid, or an error.
func agentIn(f api.Fleet, uid string) (api.Agent, error) {
	for _, a := range f.Agents {
		if a.UID == uid {
			return a, nil
		}
	}
	return api.Agent{}, fmt.Errorf("agent %s not in the fleet (%d agents)", uid, len(f.Agents))
}

// waitAgent polls replica r's merged view until uid passes ok.
func waitAgent(t *testing.T, r *replica, uid string, what string, ok func(api.Agent) error) api.Agent {
	t.Helper()
	var got api.Agent
	polltest.Until(t, 30*time.Second, what, func() error {
		f, err := r.client.Fleet(context.Background(), api.Filter{})
		if err != nil {
			return err
		}
		if got, err = agentIn(f, uid); err != nil {
			return err
		}
		return ok(got)
	})
	return got
}

func exportersYAML(id, endpoint string) string {
	return fmt.Sprintf("- id: %s\n  config:\n    endpoint: %s\n    tls:\n      insecure: true\n", id, endpoint)
}
