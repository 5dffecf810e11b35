package charttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector/certs"
)

// certManagerVersion is the cert-manager whose CRDs the chart's
// Certificates and Issuers are checked against (from the Go module proxy).
const certManagerVersion = "v1.21.2"

// envCertManagerCRDs overrides where those CRDs are read from.
const envCertManagerCRDs = "FARGATE_OTEL_CERT_MANAGER_CRDS"

var certManagerCRDs string

// The API server lives in a network namespace of the test's own, which has
// no route out: helm and cert-manager's CRDs are fetched before entering it.
func TestMain(m *testing.M) {
	if os.Getenv("FARGATE_OTEL_CHARTTEST_PREPARED") == "" {
		if err := prepare(); err != nil {
			fmt.Fprintln(os.Stderr, "charttest:", err)
			os.Exit(1)
		}
		_ = os.Setenv("FARGATE_OTEL_CHARTTEST_PREPARED", "1")
		_ = os.Setenv(envCertManagerCRDs, certManagerCRDs)
	}
	certManagerCRDs = os.Getenv(envCertManagerCRDs)
	os.Exit(cluster.RunInNetNS(m))
}

func prepare() error {
	helm(fatalf{})
	if d := os.Getenv(envCertManagerCRDs); d != "" {
		certManagerCRDs = d
		return nil
	}
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/cert-manager/cert-manager@"+certManagerVersion)
	cmd.Dir = os.TempDir() // not this module: nothing is added to go.mod
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("download cert-manager %s for its CRDs: %w", certManagerVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download cert-manager: %w\n%s", err, out)
	}
	certManagerCRDs = filepath.Join(mod.Dir, "deploy", "crds")
	return nil
}

// fatalf lets helm() run in TestMain.
type fatalf struct{ testing.TB }

func (fatalf) Helper() {}
func (fatalf) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(1)
}

type kube struct {
	t  *testing.T
	cp *cluster.ControlPlane
}

func (k kube) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.cp.Binaries.Kubectl, append([]string{"--kubeconfig", k.cp.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (k kube) helm(args ...string) (string, error) {
	k.t.Helper()
	return runHelm(k.t, append(args, "--kubeconfig", k.cp.Kubeconfig)...)
}

// asServiceAccount is a client that acts as a service account of the
// release, with exactly the chart's RBAC.
func (k kube) asServiceAccount(name string) kubernetes.Interface {
	cfg := rest.CopyConfig(k.cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		k.t.Fatal(err)
	}
	return c
}

// may asks the API server whether a service account of the release may do
// something.
func (k kube) may(ctx context.Context, sa string, attrs authorizationv1.ResourceAttributes) bool {
	k.t.Helper()
	sar, err := k.cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + namespace + ":" + sa,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
		ResourceAttributes: &attrs,
	}}, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	return sar.Status.Allowed
}

// TestHelmInstallAndUpgrade installs the chart into a real API server with
// helm, as a user does, fills the certificates with the injector's own
// rotator acting as the injector's service account (so the chart's RBAC is
// what it needs), then upgrades the release and checks that helm leaves what
// the injector wrote alone.
func TestHelmInstallAndUpgrade(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	k := kube{t, cp}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	out, err := k.helm("install", release, chartDir(t), "--namespace", namespace, "--create-namespace")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl label namespace <your-namespace> fargate-otel.io/inject=enabled",
		"otlp_grpc/gateway -> otel-gateway.opentelemetry.svc:4317",
		"fargate-otel doctor -n <your-namespace>",
		"--set scope=all",
		"Kubelet stats: mode proxy; a namespace may choose proxy, off with the label",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install's NOTES lack %q:\n%s", want, out)
		}
	}

	// The certificate rotator, as the injector's service account.
	injectorClient := k.asServiceAccount("fargate-otel-injector")
	rot := &certs.Rotator{Client: injectorClient, Log: testLogger(t), Config: certs.Config{
		Namespace:      namespace,
		CASecret:       "fargate-otel-ca",
		Leaves:         []certs.Leaf{{Secret: "fargate-otel-injector-tls", DNSNames: certs.ServiceDNSNames("fargate-otel-injector", namespace)}, {Secret: "fargate-otel-nodeproxy-tls", DNSNames: certs.ServiceDNSNames("fargate-otel-nodeproxy", namespace)}},
		WebhookConfigs: []string{"fargate-otel-injector"},
		Policy:         certs.Policy{CAValidity: certs.DefaultCAValidity, CertValidity: certs.DefaultCertValidity},
	}}
	if err := rot.Reconcile(ctx); err != nil {
		t.Fatalf("the rotator, with the chart's RBAC: %v", err)
	}
	syncDir := t.TempDir()
	syncer := certs.NewSyncer(injectorClient, namespace, []certs.FileSync{{Secret: "fargate-otel-injector-tls", Dir: syncDir, Files: map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key"}}}, time.Second, testLogger(t))
	if err := syncer.Sync(ctx); err != nil {
		t.Fatalf("the file syncer, with the chart's RBAC: %v", err)
	}
	before := snapshot(ctx, t, cp.Client)
	if len(before.caBundle) == 0 || len(before.secrets["fargate-otel-injector-tls"]["tls.crt"]) == 0 {
		t.Fatalf("nothing written: %+v", before)
	}

	// An upgrade that changes the config file and the Deployment.
	out, err = k.helm("upgrade", release, chartDir(t), "--namespace", namespace, "--set", "clusterName=upgraded", "--set", "injector.replicas=3",
		"--set", "kubeletStats.allowedModes={proxy,direct,off}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "WARNING: mode direct is in use or allowed") {
		t.Errorf("no warning about mode direct in the NOTES of the upgrade:\n%s", out)
	}
	after := snapshot(ctx, t, cp.Client)
	if !bytes.Equal(before.caBundle, after.caBundle) {
		t.Error("helm upgrade changed the caBundle the injector set")
	}
	for name, data := range before.secrets {
		for key, v := range data {
			if !bytes.Equal(after.secrets[name][key], v) {
				t.Errorf("helm upgrade changed %s of Secret %s", key, name)
			}
		}
	}
	d, err := cp.Client.AppsV1().Deployments(namespace).Get(ctx, "fargate-otel-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas %d after the upgrade", *d.Spec.Replicas)
	}
	cm, err := cp.Client.CoreV1().ConfigMaps(namespace).Get(ctx, "fargate-otel-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.yaml"], `clusterName: "upgraded"`) {
		t.Error("the config file was not upgraded")
	}
	// Nothing to do for the rotator afterwards: no write at all.
	if err := rot.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if again := snapshot(ctx, t, cp.Client); fmt.Sprint(again.versions) != fmt.Sprint(after.versions) {
		t.Errorf("the rotator rewrote settled objects: %v -> %v", after.versions, again.versions)
	}

	// Least privilege, asked of the API server.
	res := func(verb, group, resource, ns, name string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: ns, Name: name}
	}
	for _, c := range []struct {
		sa   string
		attr authorizationv1.ResourceAttributes
		want bool
	}{
		{"fargate-otel-injector", res("update", "", "secrets", namespace, "fargate-otel-ca"), true},
		{"fargate-otel-injector", res("update", "", "secrets", namespace, "other"), false},
		{"fargate-otel-injector", res("create", "", "secrets", namespace, ""), false},
		{"fargate-otel-injector", res("list", "", "secrets", namespace, ""), false},
		{"fargate-otel-injector", res("list", "", "configmaps", "shop", ""), false},
		{"fargate-otel-injector", res("get", "", "configmaps", "shop", "team-exporters"), true},
		{"fargate-otel-injector", res("watch", "", "limitranges", "", ""), true},
		{"fargate-otel-injector", res("watch", "", "namespaces", "", ""), true},
		{"fargate-otel-injector", res("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "fargate-otel-injector"), true},
		{"fargate-otel-injector", res("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "someone-else"), false},
		{"fargate-otel-injector", res("get", "", "nodes/proxy", "", "node-a"), false},
		{"fargate-otel-injector", res("create", "events.k8s.io", "events", "shop", ""), true},
		{"fargate-otel-injector", res("update", "coordination.k8s.io", "leases", namespace, "fargate-otel-injector"), true},
		{"fargate-otel-injector", res("update", "coordination.k8s.io", "leases", namespace, "other"), false},
		{"fargate-otel-nodeproxy", res("get", "", "nodes/proxy", "", "node-a"), true},
		{"fargate-otel-nodeproxy", res("get", "", "secrets", namespace, "fargate-otel-ca"), false},
		{"default", res("get", "", "nodes/proxy", "", "node-a"), false},
		{"fargate-otel-fleet", res("create", "authentication.k8s.io", "tokenreviews", "", ""), true},
		{"fargate-otel-fleet", res("get", "", "configmaps", "shop", "team-exporters"), true},
		{"fargate-otel-fleet", res("list", "", "configmaps", "shop", ""), false},
		{"fargate-otel-fleet", res("watch", "", "configmaps", namespace, "fargate-otel-fleet-live"), true},
		{"fargate-otel-fleet", res("watch", "", "configmaps", namespace, "fargate-otel-injector"), false},
		{"fargate-otel-fleet", res("get", "", "pods", "shop", "cart"), false},
		{"fargate-otel-fleet", res("get", "", "secrets", namespace, "fargate-otel-fleet-tls"), false},
		{"fargate-otel-fleet", res("list", "discovery.k8s.io", "endpointslices", namespace, ""), true},
		{"fargate-otel-fleet", res("create", "events.k8s.io", "events", "shop", ""), true},
	} {
		if got := k.may(ctx, c.sa, c.attr); got != c.want {
			t.Errorf("%s may %s %s/%s %q in %q: %v, want %v", c.sa, c.attr.Verb, c.attr.Group, c.attr.Resource, c.attr.Name, c.attr.Namespace, got, c.want)
		}
	}

	// And helm removes it all, Secrets included.
	if _, err := k.helm("uninstall", release, "--namespace", namespace, "--wait"); err != nil {
		t.Fatal(err)
	}
	if s, err := cp.Client.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=fargate-otel"}); err != nil || len(s.Items) != 0 {
		t.Errorf("after helm uninstall: %d Secrets left (%v)", len(s.Items), err)
	}
}

type state struct {
	caBundle []byte
	secrets  map[string]map[string][]byte
	versions []string
}

func snapshot(ctx context.Context, t *testing.T, c kubernetes.Interface) state {
	t.Helper()
	var s state
	mwc, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "fargate-otel-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.caBundle = mwc.Webhooks[0].ClientConfig.CABundle
	s.versions = append(s.versions, mwc.ResourceVersion)
	s.secrets = map[string]map[string][]byte{}
	for _, name := range []string{"fargate-otel-ca", "fargate-otel-injector-tls", "fargate-otel-nodeproxy-tls"} {
		sec, err := c.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.secrets[name] = sec.Data
		s.versions = append(s.versions, sec.ResourceVersion)
	}
	return s
}

// TestAPIServerAcceptsEveryVariant applies the chart rendered with each
// value that changes its objects to a real API server with strict field
// validation (unknown or misplaced fields fail), cert-manager's objects
// against cert-manager's own CRDs, and applies it twice.
func TestAPIServerAcceptsEveryVariant(t *testing.T) {
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	k := kube{t, cp}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, ns := range []string{namespace, "shop"} {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, crd := range []string{"cert-manager.io_certificates.yaml", "cert-manager.io_issuers.yaml"} {
		if out, err := k.kubectl(ctx, "", "apply", "--server-side", "-f", filepath.Join(certManagerCRDs, crd)); err != nil {
			t.Fatalf("cert-manager CRD %s: %v\n%s", crd, err, out)
		}
	}
	if out, err := k.kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	for _, v := range []struct {
		name   string
		values map[string]any
	}{
		// defaults first and applied for real: the variants are then
		// dry-run over existing objects, as an upgrade would change them.
		{"defaults", nil},
		{"mode direct", map[string]any{"kubeletStats": map[string]any{"mode": "direct"}}},
		{"mode off", map[string]any{"kubeletStats": map[string]any{"mode": "off", "allowedModes": []string{}}}},
		{"cert-manager", map[string]any{"certManager": map[string]any{"enabled": true}}},
		{"cert-manager with a ClusterIssuer", map[string]any{"certManager": map[string]any{"enabled": true, "issuerRef": map[string]any{"kind": "ClusterIssuer", "name": "corp"}}}},
		{"everything changed", map[string]any{
			"images":      map[string]any{"pullSecrets": []string{"regcred"}},
			"imageLookup": map[string]any{"pullSecretNamespaces": []string{"shop"}, "insecureRegistries": []string{"r:5000"}},
			"injector": map[string]any{"replicas": 1, "hostNetwork": true, "port": 10260, "failurePolicy": "Fail", "timeoutSeconds": 15,
				"tolerations": []map[string]any{{"key": "x", "operator": "Exists"}}, "nodeSelector": map[string]any{"kubernetes.io/os": "linux"},
				"topologySpreadConstraints": []map[string]any{{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
					"labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/component": "injector"}}}}},
			"nodeproxy":    map[string]any{"replicas": 3, "rate": 2.5},
			"kubeletStats": map[string]any{"allowedModes": []string{"proxy", "direct", "off"}},
		}},
		// The gateway tier with every destination (its HPA, PDB and
		// headless Service included).
		{"gateway", map[string]any{
			"gateway": map[string]any{"enabled": true, "sendingQueue": "file", "serviceAccountAnnotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/gw"}},
			"destinations": map[string]any{
				"otlp": map[string]any{"enabled": true, "endpoint": "otlp.vendor.example:4317", "headersFrom": map[string]any{"secretName": "vendor", "headers": map[string]any{"x-api-key": "api-key"}}},
				"aws":  map[string]any{"enabled": true, "region": "eu-west-1", "logs": map[string]any{"logGroup": "/eks/prod"}, "metrics": map[string]any{"enabled": true, "workspaceId": "ws-1"}},
			},
		}},
	} {
		name, values := v.name, v.values
		t.Run(name, func(t *testing.T) {
			manifest, err := templateRaw(t, values)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := k.kubectl(ctx, manifest, "apply", "--server-side", "--field-manager=charttest", "--dry-run=server", "--validate=strict", "-f", "-"); err != nil {
				t.Fatalf("the API server refuses the chart: %v\n%s", err, out)
			}
			if name != "defaults" {
				return
			}
			example, err := os.ReadFile(filepath.Join(examplesDir(t), "namespace.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if out, err := k.kubectl(ctx, string(example), "apply", "--server-side", "--field-manager=charttest", "--dry-run=server", "--validate=strict", "-f", "-"); err != nil {
				t.Fatalf("the API server refuses manifests/examples/namespace.yaml: %v\n%s", err, out)
			}
			for i := 0; i < 2; i++ {
				if out, err := k.kubectl(ctx, manifest, "apply", "--server-side", "--field-manager=charttest", "--validate=strict", "-f", "-"); err != nil {
					t.Fatalf("apply #%d: %v\n%s", i+1, err, out)
				}
			}
		})
	}
}

func testLogger(t *testing.T) logr.Logger { return testr.New(t) }
