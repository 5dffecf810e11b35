package clustertest

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector/certs"
)

// TestFleetCertificateVerifiesWithThePublishedCA: the fleet server's
// serving certificate is issued by the same CA as the node proxy's, so a
// sidecar verifies it with the bundle the injector already publishes in
// opted-in namespaces (the proxy Secret's ca.crt), across a CA handover.
func TestFleetCertificateVerifiesWithThePublishedCA(t *testing.T) {
	ctx, kube := start(t, 3*time.Minute)
	const fleetSecret = "fargate-otel-fleet-tls"
	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fleetSecret}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: t0}
	rot := newRotator(t, kube, clk)
	fleetNames := certs.ServiceDNSNames("fargate-otel-fleet", ns)
	rot.Config.Leaves = append(rot.Config.Leaves, certs.Leaf{Secret: fleetSecret, DNSNames: fleetNames})
	for _, at := range []float64{0, 160, 200, 310} { // first issue, next CA published, handover, after
		clk.Set(day(at))
		if err := rot.Reconcile(ctx); err != nil {
			t.Fatalf("day %v: %v", at, err)
		}
		published := secret(ctx, t, kube, "fargate-otel-nodeproxy-tls").Data[certs.KeyCABundle]
		fleet := secret(ctx, t, kube, fleetSecret)
		if err := verify(published, fleet.Data[certs.KeyTLSCert], fleetNames[0], day(at)); err != nil {
			t.Errorf("day %v: the fleet certificate does not verify with the published CA bundle: %v", at, err)
		}
	}
}
