package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
)

// TestManagedCerts runs the binary with --manage-certs against a real API
// server, with the Secrets and the webhook configuration as the chart
// creates them: it fills the Secrets, sets the webhook's caBundle, writes
// its own serving files and the node proxy's CA file, becomes ready, serves
// a certificate that the caBundle verifies, and renews it before it expires
// (validities of seconds here).
func TestManagedCerts(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := cp.Client
	const ns = "fargate-otel"

	mustCreate(t, func() error {
		_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	for _, name := range []string{"fargate-otel-ca", "fargate-otel-injector-tls", "fargate-otel-nodeproxy-tls"} {
		mustCreate(t, func() error {
			_, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeOpaque}, metav1.CreateOptions{})
			return err
		})
	}
	mustCreate(t, func() error {
		_, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "fargate-otel-injector"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:                    "inject.fargate-otel.io",
				AdmissionReviewVersions: []string{"v1"},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
					Namespace: ns, Name: "fargate-otel-injector", Path: ptr.To("/mutate-v1-pod")}},
				// Selects nothing: this test is about certificates.
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "selected"}},
			}},
		}, metav1.CreateOptions{})
		return err
	})

	dir := t.TempDir()
	certDir, caFile := filepath.Join(dir, "webhook-certs"), filepath.Join(dir, "nodeproxy-ca", "ca.crt")
	webhookPort, metricsPort, probePort := freePort(t), freePort(t), freePort(t)
	srv := startServer(t, []string{"POD_NAMESPACE=" + ns},
		"--kubeconfig="+cp.Kubeconfig,
		"--manage-certs",
		"--cert-dir="+certDir,
		"--nodeproxy-ca-file="+caFile,
		"--cert-watch-interval=500ms",
		"--cert-check-interval=1s",
		"--cert-validity=9s",
		"--ca-validity=60s",
		"--webhook-host=127.0.0.1",
		fmt.Sprintf("--webhook-port=%d", webhookPort),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--leader-elect", "--leader-election-namespace="+ns,
		"--disable-image-lookup",
	)
	started := time.Now()

	probe := fmt.Sprintf("http://127.0.0.1:%d", probePort)
	srv.waitFor(t, "readiness with a generated certificate", func() bool { return httpStatus(probe+"/readyz") == http.StatusOK })
	t.Logf("ready %s after start, with certificates it generated", time.Since(started).Round(time.Millisecond))

	caBundle := func() []byte {
		mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "fargate-otel-injector", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return mwc.Webhooks[0].ClientConfig.CABundle
	}
	// The API server's view: the caBundle verifies what the webhook serves,
	// for the Service's name.
	verifyServed := func() (string, error) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle()) {
			return "", fmt.Errorf("caBundle holds no certificate")
		}
		return servedCert(webhookPort, pool, "fargate-otel-injector.fargate-otel.svc")
	}
	var first string
	srv.waitFor(t, "a served certificate that the caBundle verifies", func() bool {
		var err error
		first, err = verifyServed()
		return err == nil
	})

	// The node proxy's Secret is complete, and its CA bundle is where the
	// CA publisher reads it.
	proxy, err := kube.CoreV1().Secrets(ns).Get(ctx, "fargate-otel-nodeproxy-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(proxy.Data[k]) == 0 {
			t.Errorf("nodeproxy Secret has no %s", k)
		}
	}
	srv.waitFor(t, "the node proxy's CA file", func() bool {
		b, err := os.ReadFile(caFile)
		return err == nil && len(b) > 0
	})
	proxyCert, _ := pem.Decode(proxy.Data["tls.crt"])
	if proxyCert == nil {
		t.Fatal("nodeproxy tls.crt is not PEM")
	}
	leaf, err := x509.ParseCertificate(proxyCert.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "fargate-otel-nodeproxy.fargate-otel.svc", Roots: pool}); err != nil {
		t.Errorf("the node proxy's certificate does not verify with the published CA file: %v", err)
	}

	// Renewal: a 9s certificate is replaced when 3s are left; the server
	// picks it up and the caBundle still verifies it.
	srv.waitFor(t, "a renewed serving certificate", func() bool {
		serial, err := verifyServed()
		return err == nil && serial != first
	})
	if code := httpStatus(probe + "/readyz"); code != http.StatusOK {
		t.Errorf("not ready after the renewal: %d", code)
	}
}

// servedCert dials the webhook as the API server does (TLS, the Service's
// name) and returns the serial of the certificate it serves.
func servedCert(port int, roots *x509.CertPool, serverName string) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}
