package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/injector/webhook/webhooktest"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/syncbuf"
)

// The server test runs a real kube-apiserver, which lives in a network
// namespace of the test's own.
func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }

// injectorBinary is the server the Makefile built, else one built now.
func injectorBinary(t *testing.T) string {
	return gobuild.Binary(t, "FARGATE_OTEL_INJECTOR_BIN", "./cmd/fargate-otel-injector")
}

// TestServerInCluster runs the binary against a real API server that calls
// it as a mutating webhook: certificates that appear late and rotate,
// readiness, native sidecars detected from the API server's version, an
// entrypoint read from a registry with a pull secret, exporters from a
// ConfigMap, warnings, metrics, JSON logs and a graceful stop on SIGTERM.
func TestServerInCluster(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A private registry (TLS, basic auth) with the app's image.
	reg := registrytest.New(t, registrytest.Options{TLS: true, User: "puller", Password: "pw"})
	image, _ := reg.Push(t, "team/app:1", registrytest.Image{Entrypoint: []string{"/usr/bin/app"}, Cmd: []string{"--serve"}})
	dir := t.TempDir()
	registryCA := filepath.Join(dir, "registry-ca.pem")
	writeFile(t, registryCA, reg.CertPEM)

	kube := cp.Client
	mustCreate(t, func() error {
		_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "apps", Labels: map[string]string{annotations.Inject: annotations.Enabled}}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error { // no controller manager here to create it
		_, err := kube.CoreV1().ServiceAccounts("apps").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := kube.CoreV1().Secrets("apps").Create(ctx, reg.PullSecret("apps", "regcred", "puller", "pw"), metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := kube.CoreV1().ConfigMaps("apps").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "team-exporters"},
			Data:       map[string]string{annotations.DefaultExportersKey: "- id: otlp_http/vendor\n  config:\n    endpoint: https://otlp.vendor.example.com\n"},
		}, metav1.CreateOptions{})
		return err
	})

	// The server, started before its certificate exists.
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	webhookPort, metricsPort, probePort := freePort(t), freePort(t), freePort(t)
	srv := startServer(t, []string{"SSL_CERT_FILE=" + registryCA},
		"--kubeconfig="+cp.Kubeconfig,
		"--cert-dir="+certDir,
		"--cert-watch-interval=500ms",
		"--webhook-host=127.0.0.1",
		fmt.Sprintf("--webhook-port=%d", webhookPort),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--cluster-name=test-cluster",
		"--tee-image=registry.example.com/fargate-otel-tee:test",
		"--collector-image=registry.example.com/fargate-otel-collector:test",
		"--disable-ecr",
		"--log-level=debug",
	)

	probe := fmt.Sprintf("http://127.0.0.1:%d", probePort)
	srv.waitFor(t, "healthz", func() bool { return httpStatus(probe+"/healthz") == http.StatusOK })
	if code := httpStatus(probe + "/readyz"); code == http.StatusOK {
		t.Fatal("ready without a certificate")
	}

	// The certificate appears: ready.
	first := issue(t, cp)
	writeCert(t, certDir, first)
	srv.waitFor(t, "readyz", func() bool { return httpStatus(probe+"/readyz") == http.StatusOK })

	// The API server calls the webhook.
	registerWebhook(t, cp, webhookPort, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: annotations.Inject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{annotations.Disabled}}}})

	warnings := &warningCollector{}
	wcfg := rest.CopyConfig(cp.Config)
	wcfg.WarningHandler = warnings
	client := kubernetes.NewForConfigOrDie(wcfg)

	pod := fargatePod("web", image)
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	pod.Annotations = map[string]string{annotations.Exporters: "team-exporters"}
	// The webhook configuration takes a moment to reach the API server's admission chain.
	var created *corev1.Pod
	srv.waitFor(t, "an injected pod", func() bool {
		p := pod.DeepCopy()
		p.Name = fmt.Sprintf("web-%d", time.Now().UnixNano())
		got, err := client.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Logf("create pod: %v", err)
			return false
		}
		created = got
		return got.Annotations[annotations.Status] != ""
	})

	sidecar := findContainer(created.Spec.InitContainers, injector.CollectorContainerName)
	if sidecar == nil || sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("the collector is not a native sidecar (the API server is >= 1.29): %+v", created.Spec.InitContainers)
	}
	app := created.Spec.Containers[0]
	if n := len(app.Command); n < 3 || app.Command[0] != injector.TeePath || app.Command[n-2] != "/usr/bin/app" || app.Command[n-1] != "--serve" {
		t.Fatalf("app command %q: want the wrapper in front of the image's ENTRYPOINT and CMD", app.Command)
	}
	rendered, err := injector.CollectorConfigOf(created)
	if err != nil {
		t.Fatal(err)
	}
	collectorConfig := string(rendered)
	if !strings.Contains(collectorConfig, "otlp_http/vendor") || !strings.Contains(collectorConfig, "test-cluster") {
		t.Errorf("collector config lacks the pod's exporter or the cluster name:\n%s", collectorConfig)
	}

	// Without the pull secret: created, left unwrapped, and told why.
	warnings.reset()
	bare := fargatePod("nosecret", image)
	got, err := client.CoreV1().Pods("apps").Create(ctx, bare, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Containers[0].Command) != 0 {
		t.Errorf("a container whose entrypoint could not be read was wrapped: %q", got.Spec.Containers[0].Command)
	}
	w := warnings.all()
	if !strings.Contains(w, "imagePullSecret") || !strings.Contains(w, annotations.Command) {
		t.Errorf("warnings to the client do not explain the unwrapped container: %q", w)
	}
	t.Logf("warnings for a pod without its pull secret:\n%s", w)

	// Failing open records an Event about the pod's owner. The API server
	// never sends a pod that does not decode, so this one goes straight to
	// the webhook.
	webhookClient := &webhooktest.Server{BaseURL: fmt.Sprintf("https://127.0.0.1:%d", webhookPort), Client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cp.CA.Pool()}},
	}}
	bad, err := webhooktest.RequestRaw("CREATE", "apps", []byte(`{"metadata":{"name":"bad","namespace":"apps","ownerReferences":`+
		`[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-rs","uid":"rs-uid","controller":true}]},"spec":{"containers":"not a list"}}`))
	if err != nil {
		t.Fatal(err)
	}
	answer, err := webhookClient.Post(ctx, webhook.Path, bad)
	if err != nil || !answer.Allowed || len(answer.Patch) != 0 || len(answer.Warnings) != 1 {
		t.Fatalf("an undecodable pod: %+v, %v; want it admitted unchanged with a warning", answer, err)
	}
	srv.waitFor(t, "the fail-open Event", func() bool {
		evs, err := kube.EventsV1().Events("apps").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == "FargateOtelNotInjected" && e.Regarding.Kind == "ReplicaSet" && e.Regarding.Name == "web-rs" && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})

	// Metrics on the controller-runtime endpoint.
	metrics := httpBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	for _, want := range []string{
		"fargate_otel_injector_injections_total ",
		`fargate_otel_injector_registry_lookup_duration_seconds_count{outcome="ok"} 1`,
		`fargate_otel_injector_registry_lookup_duration_seconds_count{outcome="unauthorized"} 1`,
		`fargate_otel_injector_fail_open_total{cause="decode"} 1`,
		"fargate_otel_injector_image_cache_lookups_total",
		"fargate_otel_injector_admission_duration_seconds_count",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The certificate rotates: the server presents the new one without a restart.
	second := issue(t, cp)
	writeCert(t, certDir, second)
	srv.waitFor(t, "the rotated certificate", func() bool {
		serial, err := servedSerial(webhookPort, cp.CA.CertPEM)
		return err == nil && serial == second.Cert.SerialNumber.String()
	})
	if _, err := client.CoreV1().Pods("apps").Create(ctx, fargatePod("after-rotation", image), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// SIGTERM: a clean exit.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.exited:
		srv.exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("no exit within 90s of SIGTERM")
	}

	// Structured logs: every line is a JSON object with a message.
	sc := bufio.NewScanner(strings.NewReader(srv.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		var entry map[string]any
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil || entry["msg"] == nil {
			t.Errorf("log line is not JSON with msg: %s", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Error("no logs")
	}
}

func fargatePod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps", Labels: map[string]string{injector.FargateProfileLabel: "fp-default"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: image}},
		},
	}
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func issue(t *testing.T, cp *cluster.ControlPlane) *cluster.KeyPair {
	t.Helper()
	kp, err := cp.CA.Issue(cluster.CertSpec{CommonName: "127.0.0.1", Hosts: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// writeCert replaces the pair the way a Secret volume update does: new
// files, then a rename, so that the server never reads half a file.
func writeCert(t *testing.T, dir string, kp *cluster.KeyPair) {
	t.Helper()
	for name, data := range map[string][]byte{"tls.key": kp.KeyPEM, "tls.crt": kp.CertPEM} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		writeFile(t, tmp, data)
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func servedSerial(port int, caPEM []byte) (string, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool})
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func httpStatus(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// server is the injector binary running for one test.
type server struct {
	cmd    *exec.Cmd
	exited chan error // Wait's result; whoever takes it puts it back
	logs   *syncbuf.Buffer
}

// startServer runs the injector with args, and env added to the test's
// environment. It is killed when the test ends, and its logs are printed
// when the test failed.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	srv := &server{cmd: exec.Command(injectorBinary(t), args...), exited: make(chan error, 1), logs: &syncbuf.Buffer{}}
	srv.cmd.Env = append(os.Environ(), env...)
	srv.cmd.Stdout, srv.cmd.Stderr = srv.logs, srv.logs
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { srv.exited <- srv.cmd.Wait() }()
	t.Cleanup(func() {
		_ = srv.cmd.Process.Kill()
		if err := <-srv.exited; err != nil {
			t.Logf("injector stopped: %v", err)
		}
		if t.Failed() {
			t.Logf("injector logs:\n%s", srv.logs.String())
		}
	})
	return srv
}

// registerWebhook makes the API server call the injector on 127.0.0.1:port
// for pods created in opted-in namespaces (and matching objectSelector), as
// the chart's webhook configuration does.
func registerWebhook(t *testing.T, cp *cluster.ControlPlane, port int, objectSelector *metav1.LabelSelector) {
	t.Helper()
	url := fmt.Sprintf("https://127.0.0.1:%d%s", port, webhook.Path)
	mustCreate(t, func() error {
		_, err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "fargate-otel"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:                    "pods.fargate-otel.io",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: cp.CA.CertPEM},
				Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
				NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{annotations.Inject: annotations.Enabled}},
				ObjectSelector:          objectSelector,
				FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
				ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
				TimeoutSeconds:          ptr.To[int32](10),
				AdmissionReviewVersions: []string{"v1"},
			}},
		}, metav1.CreateOptions{})
		return err
	})
}

// waitFor polls cond until it holds; it fails early when the server exits.
func (srv *server) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		select {
		case err := <-srv.exited:
			srv.exited <- err
			t.Fatalf("the injector exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 90s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningCollector) reset() { w.mu.Lock(); defer w.mu.Unlock(); w.msgs = nil }
func (w *warningCollector) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}
