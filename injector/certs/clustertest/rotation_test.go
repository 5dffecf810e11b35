// Package clustertest runs the certificate rotator and the file syncer of
// injector/certs against a real kube-apiserver.
package clustertest

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector/certs"
	"github.com/fargate-otel/fargate-otel/internal/pki"
)

func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }

const ns = "fargate-otel"

var (
	webhookNames = certs.ServiceDNSNames("fargate-otel-injector", ns)
	proxyNames   = certs.ServiceDNSNames("fargate-otel-nodeproxy", ns)
	policy       = certs.Policy{CAValidity: 300 * 24 * time.Hour, CertValidity: 30 * 24 * time.Hour}
	t0           = time.Now()
)

func day(n float64) time.Time { return t0.Add(time.Duration(n * 24 * float64(time.Hour))) }

// setUp creates what the chart creates: the namespace, the empty Secrets,
// the webhook configuration without caBundle (two webhooks).
func setUp(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	for _, name := range []string{"fargate-otel-ca", "fargate-otel-injector-tls", "fargate-otel-nodeproxy-tls"} {
		_, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "fargate-otel"}}}, metav1.CreateOptions{})
		must(err)
	}
	hook := func(name string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name: name, AdmissionReviewVersions: []string{"v1"}, SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
			ClientConfig:      admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "fargate-otel-injector"}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "selected"}},
		}
	}
	_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "fargate-otel-injector"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{hook("a.fargate-otel.io"), hook("b.fargate-otel.io")},
	}, metav1.CreateOptions{})
	must(err)
}

// start starts an API server with what the chart creates (setUp) for one
// test, and a context that ends with the test or after timeout.
func start(t *testing.T, timeout time.Duration) (context.Context, kubernetes.Interface) {
	t.Helper()
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	setUp(ctx, t, cp.Client)
	return ctx, cp.Client
}

// clock is the test's time, shared by rotators running concurrently.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Set(at time.Time) { c.mu.Lock(); c.now = at; c.mu.Unlock() }

func newRotator(t *testing.T, kube kubernetes.Interface, clk *clock) *certs.Rotator {
	return &certs.Rotator{
		Client: kube, Log: testr.New(t),
		Now: clk.Now,
		Config: certs.Config{
			Namespace: ns, CASecret: "fargate-otel-ca",
			Leaves: []certs.Leaf{
				{Secret: "fargate-otel-injector-tls", DNSNames: webhookNames},
				{Secret: "fargate-otel-nodeproxy-tls", DNSNames: proxyNames},
			},
			WebhookConfigs: []string{"fargate-otel-injector"},
			Policy:         policy,
		},
	}
}

func secret(ctx context.Context, t *testing.T, kube kubernetes.Interface, name string) *corev1.Secret {
	t.Helper()
	s, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func webhookConfig(ctx context.Context, t *testing.T, kube kubernetes.Interface) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "fargate-otel-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return mwc
}

// verify says whether a client holding bundle accepts the PEM certificate
// for name at time at.
func verify(bundle, certPEM []byte, name string, at time.Time) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	c, err := pki.ParseCert(certPEM)
	if err != nil {
		return err
	}
	_, err = c.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// TestRotationThroughTheAPIServer walks a CA's whole life on a real API
// server with a clock of the test's: two replicas' syncers keep their files
// equal to the Secrets, every webhook of the configuration gets the bundle,
// and a client that read the bundle before the CA handover (a collector
// reading the proxy's CA at start) still accepts the certificates after it.
func TestRotationThroughTheAPIServer(t *testing.T) {
	ctx, kube := start(t, 3*time.Minute)
	clk := &clock{now: t0}
	rot := newRotator(t, kube, clk)

	dirs := []string{t.TempDir(), t.TempDir()} // two replicas
	var syncers []*certs.Syncer
	for _, dir := range dirs {
		syncers = append(syncers, certs.NewSyncer(kube, ns, []certs.FileSync{
			{Secret: "fargate-otel-injector-tls", Dir: filepath.Join(dir, "webhook"), Files: map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key"}},
			{Secret: "fargate-otel-nodeproxy-tls", Dir: filepath.Join(dir, "nodeproxy-ca"), Files: map[string]string{"ca.crt": "ca.crt"}},
		}, time.Second, testr.New(t)))
	}
	// Before the rotator ran, the syncers wait (nothing written, no error
	// but "not yet").
	if err := syncers[0].Sync(ctx); err == nil || !strings.Contains(err.Error(), "has no") {
		t.Errorf("sync of an empty Secret: %v, want an error saying it is not filled yet", err)
	}

	type observed struct {
		caBundles [][]byte // every webhook's
		leaf      []byte   // webhook tls.crt
		proxyLeaf []byte
		proxyCA   []byte
	}
	step := func(at time.Time) observed {
		t.Helper()
		clk.Set(at)
		if err := rot.Reconcile(ctx); err != nil {
			t.Fatalf("reconcile at day %.0f: %v", at.Sub(t0).Hours()/24, err)
		}
		var o observed
		for _, h := range webhookConfig(ctx, t, kube).Webhooks {
			o.caBundles = append(o.caBundles, h.ClientConfig.CABundle)
		}
		wh, px := secret(ctx, t, kube, "fargate-otel-injector-tls"), secret(ctx, t, kube, "fargate-otel-nodeproxy-tls")
		o.leaf, o.proxyLeaf, o.proxyCA = wh.Data["tls.crt"], px.Data["tls.crt"], px.Data["ca.crt"]
		if !bytes.Equal(o.caBundles[0], o.caBundles[1]) || !bytes.Equal(o.caBundles[0], o.proxyCA) || !bytes.Equal(o.caBundles[0], wh.Data["ca.crt"]) {
			t.Errorf("day %.0f: the bundles of the webhooks and Secrets differ", at.Sub(t0).Hours()/24)
		}
		if err := verify(o.caBundles[0], o.leaf, webhookNames[0], at); err != nil {
			t.Errorf("day %.0f: the API server's caBundle refuses the webhook certificate: %v", at.Sub(t0).Hours()/24, err)
		}
		if err := verify(o.proxyCA, o.proxyLeaf, proxyNames[0], at); err != nil {
			t.Errorf("day %.0f: the published proxy CA refuses the proxy certificate: %v", at.Sub(t0).Hours()/24, err)
		}
		// Every replica has the Secret's files.
		for i, s := range syncers {
			if err := s.Sync(ctx); err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
			crt, _ := os.ReadFile(filepath.Join(dirs[i], "webhook", "tls.crt"))
			ca, _ := os.ReadFile(filepath.Join(dirs[i], "nodeproxy-ca", "ca.crt"))
			if !bytes.Equal(crt, o.leaf) || !bytes.Equal(ca, o.proxyCA) {
				t.Errorf("day %.0f: replica %d's files differ from the Secrets", at.Sub(t0).Hours()/24, i)
			}
		}
		return o
	}

	first := step(day(0))
	if n := bytes.Count(first.caBundles[0], []byte("BEGIN CERTIFICATE")); n != 1 {
		t.Errorf("day 0: %d CAs in the bundle, want 1", n)
	}
	if again := step(day(10)); !bytes.Equal(again.leaf, first.leaf) || !bytes.Equal(again.caBundles[0], first.caBundles[0]) {
		t.Error("day 10: something was reissued")
	}
	renewed := step(day(21)) // a third of 30 days left
	if bytes.Equal(renewed.leaf, first.leaf) {
		t.Error("day 21: the webhook certificate was not renewed")
	}
	withNext := step(day(151)) // half of the CA's life: a next CA, published
	if n := bytes.Count(withNext.caBundles[0], []byte("BEGIN CERTIFICATE")); n != 2 {
		t.Errorf("day 151: %d CAs in the bundle, want 2 (current and next)", n)
	}
	// A collector starts now and reads the proxy's CA once.
	collectorBundle := withNext.proxyCA
	for d := 160.0; d <= 260; d += 10 { // the handover at day 200, renewals after it
		o := step(day(d))
		if err := verify(collectorBundle, o.proxyLeaf, proxyNames[0], day(d)); err != nil {
			t.Errorf("day %.0f: a collector started on day 151 refuses the proxy: %v", d, err)
		}
		if err := verify(first.caBundles[0], o.leaf, webhookNames[0], day(d)); d >= 230 && err == nil {
			t.Errorf("day %.0f: the first CA still verifies the webhook's certificate: the handover never happened", d)
		}
	}
}

// TestRotatorsRace: two replicas that both believe they lead (a lease
// handover) reconcile at once; the API server's resourceVersions make one
// win, and the end state is consistent.
func TestRotatorsRace(t *testing.T) {
	ctx, kube := start(t, 2*time.Minute)
	clk := &clock{now: t0}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rot := newRotator(t, kube, clk)
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if rot.Reconcile(ctx) == nil {
					return
				}
			}
			t.Error("a rotator never reached a settled state")
		}()
	}
	wg.Wait()
	ca, wh := secret(ctx, t, kube, "fargate-otel-ca"), secret(ctx, t, kube, "fargate-otel-injector-tls")
	if !bytes.Equal(webhookConfig(ctx, t, kube).Webhooks[0].ClientConfig.CABundle, ca.Data["ca.crt"]) {
		t.Error("the caBundle is not the CA of the Secret")
	}
	if err := verify(ca.Data["ca.crt"], wh.Data["tls.crt"], webhookNames[0], t0); err != nil {
		t.Errorf("the serving certificate was signed by a CA that lost the race: %v", err)
	}
}

// TestRotatorRepairsAndExplains: a caBundle removed by someone (a forced
// helm upgrade) is put back at the next reconcile; a deleted Secret is an
// error that says what to do.
func TestRotatorRepairsAndExplains(t *testing.T) {
	ctx, kube := start(t, 2*time.Minute)
	rot := newRotator(t, kube, &clock{now: t0})
	if err := rot.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, "fargate-otel-injector", types.JSONPatchType,
		[]byte(`[{"op":"remove","path":"/webhooks/1/clientConfig/caBundle"}]`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rot.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	mwc := webhookConfig(ctx, t, kube)
	if len(mwc.Webhooks[1].ClientConfig.CABundle) == 0 || !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, mwc.Webhooks[1].ClientConfig.CABundle) {
		t.Error("the removed caBundle was not put back")
	}
	if err := kube.CoreV1().Secrets(ns).Delete(ctx, "fargate-otel-nodeproxy-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = rot.Reconcile(ctx)
	if err == nil || !strings.Contains(err.Error(), "fargate-otel-nodeproxy-tls does not exist") || !strings.Contains(err.Error(), "helm upgrade") {
		t.Errorf("a deleted Secret: %v, want an error that names it and says helm upgrade puts it back", err)
	}
}
