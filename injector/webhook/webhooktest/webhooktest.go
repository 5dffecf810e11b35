// Package webhooktest runs admission handlers in controller-runtime's real
// webhook server (HTTPS with a generated certificate, on loopback) and
// speaks AdmissionReview v1 to it, as the API server does. Tests and the
// benchmark use it.
package webhooktest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
)

// Server is a running webhook server.
type Server struct {
	// BaseURL is https://127.0.0.1:PORT.
	BaseURL string
	// Client trusts the server's certificate.
	Client *http.Client
	// CertDir holds tls.crt and tls.key.
	CertDir string
}

// Start serves handlers (path -> handler) until ctx is done. certDir must be
// an empty, writable directory.
func Start(ctx context.Context, certDir string, handlers map[string]admission.Handler) (*Server, error) {
	certPEM, keyPEM, err := registrytest.GenerateCert("127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certDir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certDir, "tls.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			MaxIdleConnsPerHost: 256,
			ForceAttemptHTTP2:   false,
		},
	}

	// The webhook server listens itself (no port 0): take a free port, retry
	// if another process grabs it first.
	var lastErr error
	for range 5 {
		lastErr = nil
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir})
		for path, h := range handlers {
			srv.Register(path, &admission.Webhook{Handler: h})
		}
		sctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- srv.Start(sctx) }()
		s := &Server{BaseURL: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Client: client, CertDir: certDir}
		check := srv.StartedChecker()
		deadline := time.Now().Add(20 * time.Second)
		for {
			select {
			case err := <-errc:
				lastErr = err
			default:
			}
			if lastErr != nil {
				cancel()
				break
			}
			if check(nil) == nil {
				go func() { <-ctx.Done(); cancel() }()
				return s, nil
			}
			if time.Now().After(deadline) {
				cancel()
				return nil, fmt.Errorf("webhook server on port %d not started within 20s", port)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil, fmt.Errorf("webhook server did not start: %w", lastErr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Review is an AdmissionReview request as the API server sends it.
type Review struct {
	Body []byte
	UID  types.UID
}

// Request builds the AdmissionReview the API server sends for a pod.
func Request(op admissionv1.Operation, namespace string, pod *corev1.Pod) (Review, error) {
	raw, err := json.Marshal(pod)
	if err != nil {
		return Review{}, err
	}
	return RequestRaw(op, namespace, raw)
}

// RequestRaw is Request for a pod given as JSON, exactly as sent.
func RequestRaw(op admissionv1.Operation, namespace string, podJSON []byte) (Review, error) {
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         types.UID(fmt.Sprintf("uid-%d", time.Now().UnixNano())),
			Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:    metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			RequestKind: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace:   namespace,
			Operation:   op,
		},
	}
	review.Request.Object.Raw = podJSON
	if op == admissionv1.Update {
		review.Request.OldObject.Raw = podJSON
	}
	return Encode(review)
}

// Encode turns an AdmissionReview into a Review.
func Encode(review admissionv1.AdmissionReview) (Review, error) {
	body, err := json.Marshal(review)
	if err != nil {
		return Review{}, err
	}
	return Review{Body: body, UID: review.Request.UID}, nil
}

// Post sends an AdmissionReview to path and returns the response, checking
// that it is an AdmissionReview v1 answering the request (same UID).
func (s *Server) Post(ctx context.Context, path string, review Review) (*admissionv1.AdmissionResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL+path, bytes.NewReader(review.Body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("webhook answered %s: %s", resp.Status, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode the AdmissionReview answer: %w", err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		return nil, fmt.Errorf("not an AdmissionReview v1 response: %s", body)
	}
	if out.Response.UID != review.UID {
		return nil, fmt.Errorf("response UID %q does not match request UID %q", out.Response.UID, review.UID)
	}
	return out.Response, nil
}

// DeploymentPod is a typical Deployment pod on Fargate (two containers,
// env, probes, mounts, requests), with or without command.
func DeploymentPod(image string, command bool) *corev1.Pod {
	controller := true
	app := corev1.Container{
		Name: "app", Image: image,
		Args:  []string{"--port=8080", "--log-level=info"},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			{Name: "APP_ENV", Value: "production"},
			{Name: "DB_HOST", Value: "db.apps.svc.cluster.local"},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		ReadinessProbe:         &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}, PeriodSeconds: 5},
		LivenessProbe:          &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/live", Port: intstr.FromString("http")}}, PeriodSeconds: 10},
		VolumeMounts:           []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "kube-api-access-abcde", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
		TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy: corev1.PullIfNotPresent,
	}
	if command {
		app.Command = []string{"/usr/bin/app"}
	}
	worker := app.DeepCopy()
	worker.Name, worker.Ports, worker.ReadinessProbe, worker.LivenessProbe = "worker", nil, nil, nil
	worker.Command = []string{"/usr/bin/worker"}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-7d9c5b6f4-", Namespace: "apps",
			Labels: map[string]string{"app": "web", "pod-template-hash": "7d9c5b6f4", injector.FargateProfileLabel: "fp-default"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9c5b6f4", UID: "6f1c1f0e-8f3e-4c38-9b1e-1d2f3a4b5c6d", Controller: &controller,
			}},
		},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{app, *worker},
			ServiceAccountName:            "web",
			SchedulerName:                 injector.FargateScheduler,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			DNSPolicy:                     corev1.DNSClusterFirst,
			TerminationGracePeriodSeconds: func() *int64 { v := int64(30); return &v }(),
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
				{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				}}}},
			},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
		},
	}
}
