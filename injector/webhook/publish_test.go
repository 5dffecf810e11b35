package webhook_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/injector/webhook/webhooktest"
)

// fakePublisher records the webhook's calls and answers with err, or
// creates the ConfigMap in api (nothing on a dry run).
type fakePublisher struct {
	api client.Client
	err error

	mu    sync.Mutex
	calls []bool // dryRun of each call
	// deadlineIn is how far the last call's deadline was.
	deadlineIn time.Duration
}

func (p *fakePublisher) publish(ctx context.Context, namespace string, dryRun bool) (*corev1.ConfigMap, error) {
	p.mu.Lock()
	p.calls = append(p.calls, dryRun)
	if dl, ok := ctx.Deadline(); ok {
		p.deadlineIn = time.Until(dl)
	}
	p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "fargate-otel-nodeproxy-ca"}, Data: map[string]string{"ca.crt": "PEM"}}
	if dryRun {
		return cm, nil
	}
	return cm, p.api.Create(ctx, cm)
}

func (p *fakePublisher) dryRuns() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bool(nil), p.calls...)
}

// admitDryRun sends the pod as a server-side dry run would.
func (h *harness) admitDryRun(podJSON []byte) *admissionv1.AdmissionResponse {
	h.t.Helper()
	dry := true
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("dry-run"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "apps",
			Operation: admissionv1.Create, DryRun: &dry,
		},
	}
	review.Request.Object.Raw = podJSON
	r, err := webhooktest.Encode(review)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.srv.Post(context.Background(), webhook.Path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// TestPublishesAMissingCA: a pod in mode proxy that finds no CA ConfigMap
// in its namespace gets it published by the webhook and keeps kubelet
// stats; a dry run publishes nothing but answers the same; a failure leaves
// kubelet stats off and says why; pods that would not use it publish
// nothing. (The proof against a real API server and its RBAC is
// TestCAPublishedAtAdmission in cmd/fargate-otel-injector.)
func TestPublishesAMissingCA(t *testing.T) {
	newSetup := func(t *testing.T, pubErr error) (*harness, *fakePublisher, *atomic.Int32) {
		var gets atomic.Int32
		api := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				gets.Add(1)
				return c.Get(ctx, key, obj, opts...)
			},
		}).Build()
		pub := &fakePublisher{api: api, err: pubErr}
		h := newHarness(t, webhook.Options{Config: testConfig(), ConfigMaps: api, PublishNodeProxyCA: pub.publish})
		return h, pub, &gets
	}
	admitPod := func(t *testing.T, h *harness, pod *corev1.Pod, dryRun bool) (injector.Result, *admissionv1.AdmissionResponse) {
		t.Helper()
		raw := mustJSON(t, pod)
		var resp *admissionv1.AdmissionResponse
		if dryRun {
			resp = h.admitDryRun(raw)
		} else {
			resp = h.admit(admissionv1.Create, raw)
		}
		want := h.cfg
		want.Namespace.NodeProxyCA = injector.Present
		for _, w := range resp.Warnings {
			if strings.Contains(w, "kubelet stats are off") {
				want.Namespace.NodeProxyCA = injector.Missing
				want.Namespace.NodeProxyCAError = "x" // the warning's text is checked by the caller
			}
		}
		return expectMutate(t, patched(t, raw, resp), pod, want, nil), resp
	}

	t.Run("published, then read from the cache", func(t *testing.T) {
		h, pub, gets := newSetup(t, nil)
		res, resp := admitPod(t, h, fargatePod("web"), false)
		if res.Status.KubeletStats != "proxy" || len(resp.Warnings) != 0 {
			t.Fatalf("mode %s, warnings %q; want proxy and none", res.Status.KubeletStats, resp.Warnings)
		}
		if got := pub.dryRuns(); len(got) != 1 || got[0] {
			t.Fatalf("publish calls (dry run each) %v, want one real", got)
		}
		if pub.deadlineIn <= 0 || pub.deadlineIn > 2*time.Second {
			t.Errorf("publishing was given %v; it must be bounded to 2s", pub.deadlineIn)
		}
		before := gets.Load()
		res, _ = admitPod(t, h, fargatePod("web-2"), false)
		if res.Status.KubeletStats != "proxy" || len(pub.dryRuns()) != 1 || gets.Load() != before {
			t.Errorf("second pod: mode %s, %d publish calls, %d more reads; want proxy, 1, 0 (the cache says Present)",
				res.Status.KubeletStats, len(pub.dryRuns()), gets.Load()-before)
		}
		if got := metricValue(t, h.registry, "fargate_otel_injector_nodeproxy_ca_publishes_total", map[string]string{"result": "ok"}); got != 1 {
			t.Errorf("publishes ok = %v, want 1", got)
		}
	})

	t.Run("a dry run publishes nothing and answers as the real request", func(t *testing.T) {
		h, pub, _ := newSetup(t, nil)
		pod := fargatePod("web")
		_, dry := admitPod(t, h, pod, true)
		_, real := admitPod(t, h, pod, false)
		if got := pub.dryRuns(); len(got) != 2 || !got[0] || got[1] {
			t.Fatalf("publish calls (dry run each) %v, want a dry run, then a real one (the dry run cached nothing)", got)
		}
		if string(dry.Patch) != string(real.Patch) || strings.Join(dry.Warnings, "\n") != strings.Join(real.Warnings, "\n") {
			t.Errorf("dry run answered\n%s %q\nthe real request\n%s %q", dry.Patch, dry.Warnings, real.Patch, real.Warnings)
		}
	})

	t.Run("a failure leaves kubelet stats off and says why", func(t *testing.T) {
		h, pub, _ := newSetup(t, errors.New(`create ConfigMap apps/fargate-otel-nodeproxy-ca: configmaps is forbidden (the injector needs create on configmaps)`))
		res, resp := admitPod(t, h, fargatePod("web"), false)
		w := strings.Join(resp.Warnings, "\n")
		if res.Status.KubeletStats != "off" || !strings.Contains(w, "the injector could not publish it: create ConfigMap apps/fargate-otel-nodeproxy-ca: configmaps is forbidden") {
			t.Errorf("mode %s, warnings %q", res.Status.KubeletStats, w)
		}
		// Not cached: the next pod tries again.
		admitPod(t, h, fargatePod("web-2"), false)
		if len(pub.dryRuns()) != 2 {
			t.Errorf("%d publish calls, want 2", len(pub.dryRuns()))
		}
		if got := metricValue(t, h.registry, "fargate_otel_injector_nodeproxy_ca_publishes_total", map[string]string{"result": "error"}); got != 2 {
			t.Errorf("publishes error = %v, want 2", got)
		}
	})

	t.Run("pods that would not use it publish nothing", func(t *testing.T) {
		h, pub, _ := newSetup(t, nil)
		pod := fargatePod("web")
		pod.Annotations = map[string]string{annotations.Metrics: annotations.Disabled}
		admitPod(t, h, pod, false)
		notFargate := fargatePod("job")
		delete(notFargate.Labels, injector.FargateProfileLabel)
		if resp := h.admit(admissionv1.Create, mustJSON(t, notFargate)); len(resp.Patch) != 0 {
			t.Fatal("a pod not on Fargate was changed")
		}
		if got := pub.dryRuns(); len(got) != 0 {
			t.Errorf("publish calls %v, want none", got)
		}
	})
}
