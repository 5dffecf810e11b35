package clustertest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector"
)

// injectHandler admits pods through the injector's pure mutation, as the
// injector's webhook does, with a configuration the test can change.
type injectHandler struct {
	mu  sync.Mutex
	cfg injector.Config
}

func (h *injectHandler) setMode(m injector.KubeletStatsMode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cfg.KubeletStats.Mode = m
}

func (h *injectHandler) Handle(_ context.Context, req admission.Request) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Allowed("undecodable pod")
	}
	pod.Namespace = req.Namespace
	h.mu.Lock()
	cfg := h.cfg
	h.mu.Unlock()
	res := injector.Mutate(&pod, cfg, nil)
	if !res.Injected {
		return admission.Allowed("").WithWarnings(res.Warnings...)
	}
	raw, err := json.Marshal(res.Pod)
	if err != nil {
		return admission.Allowed("").WithWarnings("fargate-otel: " + err.Error())
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw).WithWarnings(res.Warnings...)
}

type testWebhook struct {
	handler *injectHandler
	server  *httptest.Server
}

// installWebhook serves the injection on the node address behind the
// Service fargate-otel/fargate-otel-injector and registers it the way the
// chart does.
func installWebhook(t *testing.T, cp *cluster.ControlPlane) *testWebhook {
	t.Helper()
	ctx := context.Background()
	createNamespace(t, cp.Client, releaseNS, nil)
	h := &injectHandler{cfg: injector.DefaultConfig()}
	cert, err := cp.CA.ServingCert("fargate-otel-injector.fargate-otel.svc")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(cluster.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mutate", &admission.Webhook{Handler: h})
	srv := httptest.NewUnstartedServer(mux)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	port := l.Addr().(*net.TCPAddr).Port
	exposeService(t, cp, releaseNS, "fargate-otel-injector", 443, port)
	_, err = cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "fargate-otel-injector", Labels: map[string]string{"app.kubernetes.io/name": "fargate-otel"}},
		Webhooks: []admissionv1.MutatingWebhook{{
			Name:                    "inject.fargate-otel.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionv1.SideEffectClassNone),
			FailurePolicy:           ptr.To(admissionv1.Ignore),
			ReinvocationPolicy:      ptr.To(admissionv1.IfNeededReinvocationPolicy),
			TimeoutSeconds:          ptr.To(int32(10)),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{optIn: "enabled"}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: optIn, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"}},
			}},
			Rules: []admissionv1.RuleWithOperations{{
				Operations: []admissionv1.OperationType{admissionv1.Create},
				Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			ClientConfig: admissionv1.WebhookClientConfig{
				Service:  &admissionv1.ServiceReference{Namespace: releaseNS, Name: "fargate-otel-injector", Path: ptr.To("/mutate"), Port: ptr.To(int32(443))},
				CABundle: cp.CA.CertPEM,
			},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &testWebhook{handler: h, server: srv}
}

// exposeService makes a Service whose single endpoint is the node address
// at targetPort (there is no kube-proxy or controller manager: the API
// server routes to endpoints itself).
func exposeService(t *testing.T, cp *cluster.ControlPlane, ns, name string, port int32, targetPort int) {
	t.Helper()
	ctx := context.Background()
	_, err := cp.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "https", Port: port, TargetPort: intstr.FromInt(targetPort), Protocol: corev1.ProtocolTCP,
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cp.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{cluster.NodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(targetPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The API server's service resolver may read Endpoints rather than
	// EndpointSlices; give it both.
	_, err = cp.Client.CoreV1().Endpoints(ns).Create(ctx, &corev1.Endpoints{ //nolint:staticcheck // see above
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subsets: []corev1.EndpointSubset{{ //nolint:staticcheck // see above
			Addresses: []corev1.EndpointAddress{{IP: cluster.NodeIP}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(targetPort), Protocol: corev1.ProtocolTCP}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}
