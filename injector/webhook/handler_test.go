package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kfake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/injector/webhook/webhooktest"
)

type harness struct {
	t        *testing.T
	srv      *webhooktest.Server
	cfg      injector.Config
	registry *prometheus.Registry
	events   *recorder
}

// newHarness serves a Handler built from opts (Config, Metrics and Recorder
// are filled in; a Resolver from resolver when given, observed by the
// metrics) in controller-runtime's webhook server over HTTPS.
func newHarness(t *testing.T, opts webhook.Options, resolver ...entrypoint.Options) *harness {
	t.Helper()
	h := &harness{t: t, registry: prometheus.NewRegistry(), events: &recorder{}}
	if opts.Config.Images.Tee == "" {
		opts.Config = testConfig()
	}
	h.cfg = opts.Config
	m, err := webhook.NewMetrics(h.registry)
	if err != nil {
		t.Fatal(err)
	}
	opts.Metrics, opts.Recorder = m, h.events
	for _, ro := range resolver {
		ro.Observer = m
		r, err := entrypoint.New(ro)
		if err != nil {
			t.Fatal(err)
		}
		opts.Resolver = r
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.srv, err = webhooktest.Start(ctx, t.TempDir(), map[string]admission.Handler{
		webhook.Path: webhook.NewHandler(opts),
		"/noop":      webhook.NoopHandler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func testConfig() injector.Config {
	cfg := injector.DefaultConfig()
	cfg.ClusterName = "test-cluster"
	cfg.Images.Tee = "registry.example.com/fargate-otel-tee:test"
	cfg.Images.Collector = "registry.example.com/fargate-otel-collector:test"
	return cfg
}

// admit sends the pod (as JSON bytes, exactly) and returns the response.
func (h *harness) admit(op admissionv1.Operation, podJSON []byte) *admissionv1.AdmissionResponse {
	h.t.Helper()
	review, err := webhooktest.RequestRaw(op, "apps", podJSON)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.srv.Post(context.Background(), webhook.Path, review)
	if err != nil {
		h.t.Fatal(err)
	}
	if !resp.Allowed {
		h.t.Fatalf("the webhook denied a pod: %+v", resp.Result)
	}
	return resp
}

// patched applies the response's JSON patch to the bytes that were sent.
func patched(t *testing.T, podJSON []byte, resp *admissionv1.AdmissionResponse) []byte {
	t.Helper()
	if len(resp.Patch) == 0 {
		return podJSON
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := p.Apply(podJSON)
	if err != nil {
		t.Fatalf("apply patch: %v\n%s", err, resp.Patch)
	}
	return out
}

func decodePod(t *testing.T, data []byte) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := json.Unmarshal(data, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fargatePod(name string) *corev1.Pod {
	controller := true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "apps",
			Labels: map[string]string{injector.FargateProfileLabel: "fp-default", "app": name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-rs", UID: "rs-uid", Controller: &controller,
			}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example.com/app:1",
				Command: []string{"/app", "--serve"},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi"),
				}},
			}},
		},
	}
}

// expectMutate checks that the patched pod is what injector.Mutate returns.
func expectMutate(t *testing.T, got []byte, pod *corev1.Pod, cfg injector.Config, images injector.Images) injector.Result {
	t.Helper()
	res := injector.Mutate(pod, cfg, images)
	if !res.Injected {
		t.Fatalf("Mutate did not inject (%s): %v", res.Skip, res.Warnings)
	}
	gotPod := decodePod(t, got)
	if !apiequality.Semantic.DeepEqual(gotPod, res.Pod) {
		t.Fatalf("patched pod differs from Mutate's:\ngot:  %s\nwant: %s", mustJSON(t, gotPod), mustJSON(t, res.Pod))
	}
	return res
}

func TestInjectOverHTTPS(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	pod := fargatePod("web")
	raw := mustJSON(t, pod)

	resp := h.admit(admissionv1.Create, raw)
	if len(resp.Patch) == 0 {
		t.Fatalf("no patch; warnings %v", resp.Warnings)
	}
	out := patched(t, raw, resp)
	res := expectMutate(t, out, pod, h.cfg, nil)
	if strings.Join(resp.Warnings, "\n") != strings.Join(res.Warnings, "\n") {
		t.Errorf("warnings %q, want Mutate's %q", resp.Warnings, res.Warnings)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_injections_total", nil); got != 1 {
		t.Errorf("injections_total %v, want 1", got)
	}

	// Reinvocation (reinvocationPolicy IfNeeded) and a second webhook pass change nothing.
	again := h.admit(admissionv1.Create, out)
	if len(again.Patch) != 0 {
		t.Errorf("a second pass patched the injected pod: %s", again.Patch)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_skips_total", map[string]string{"reason": string(injector.SkipAlreadyInjected)}); got != 1 {
		t.Errorf("skips_total{already-injected} %v, want 1", got)
	}
}

func TestOnlyPodCreations(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	raw := mustJSON(t, fargatePod("web"))
	for _, op := range []admissionv1.Operation{admissionv1.Update, admissionv1.Delete, admissionv1.Connect} {
		if resp := h.admit(op, raw); len(resp.Patch) != 0 || len(resp.Warnings) != 0 {
			t.Errorf("%s: patch %s, warnings %v", op, resp.Patch, resp.Warnings)
		}
	}
}

func TestNotFargateIsSkippedWithMetric(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	pod := fargatePod("ec2")
	delete(pod.Labels, injector.FargateProfileLabel)
	resp := h.admit(admissionv1.Create, mustJSON(t, pod))
	if len(resp.Patch) != 0 {
		t.Fatalf("a pod not on Fargate was patched: %s", resp.Patch)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_skips_total", map[string]string{"reason": string(injector.SkipNotFargate)}); got != 1 {
		t.Errorf("skips_total{not-fargate} %v, want 1", got)
	}
}

// TestRecentFieldsSurvive: fields the current k8s.io/api knows, and fields
// it does not know yet (a newer API server), must survive: no "remove" ops,
// and the patched pod keeps them, also in a native sidecar that the
// injected init containers move to another index.
func TestRecentFieldsSurvive(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	for _, unknown := range []bool{false, true} {
		t.Run(fmt.Sprintf("unknown fields=%v", unknown), func(t *testing.T) {
			pod := recentPod()
			var doc map[string]any
			if err := json.Unmarshal(mustJSON(t, pod), &doc); err != nil {
				t.Fatal(err)
			}
			if unknown {
				spec := doc["spec"].(map[string]any)
				spec["fieldFromTheFuture"] = map[string]any{"enabled": true}
				spec["containers"].([]any)[0].(map[string]any)["futureContainerField"] = "app"
				spec["initContainers"].([]any)[0].(map[string]any)["futureContainerField"] = "mesh"
			}
			raw := mustJSON(t, doc)

			resp := h.admit(admissionv1.Create, raw)
			var ops []struct{ Op, Path string }
			if err := json.Unmarshal(resp.Patch, &ops); err != nil {
				t.Fatal(err)
			}
			if len(ops) == 0 {
				t.Fatalf("not injected: %v", resp.Warnings)
			}
			for _, op := range ops {
				if op.Op == "remove" {
					t.Errorf("patch removes %s", op.Path)
				}
			}
			out := patched(t, raw, resp)
			// Everything the struct knows is Mutate's output ...
			expectMutate(t, out, pod, h.cfg, nil)
			if !unknown {
				return
			}
			// ... and what it does not know is where it was.
			var outDoc map[string]any
			if err := json.Unmarshal(out, &outDoc); err != nil {
				t.Fatal(err)
			}
			outSpec := outDoc["spec"].(map[string]any)
			if _, ok := outSpec["fieldFromTheFuture"]; !ok {
				t.Error("spec.fieldFromTheFuture was lost")
			}
			for _, list := range []string{"containers", "initContainers"} {
				for _, c := range outSpec[list].([]any) {
					c := c.(map[string]any)
					want := map[string]any{"app": "app", "mesh": "mesh"}[c["name"].(string)]
					if c["futureContainerField"] != want {
						t.Errorf("%s %s: futureContainerField %v, want %v", list, c["name"], c["futureContainerField"], want)
					}
				}
			}
		})
	}
}

// recentPod uses fields of recent Kubernetes releases.
func recentPod() *corev1.Pod {
	pod := fargatePod("recent")
	hostUsers := false
	always := corev1.ContainerRestartPolicyAlways
	override := "custom-host"
	group := "gang"
	pod.Spec.HostUsers = &hostUsers
	pod.Spec.OS = &corev1.PodOS{Name: corev1.Linux}
	pod.Spec.HostnameOverride = &override
	pod.Spec.SchedulingGroup = &corev1.PodSchedulingGroup{PodGroupName: &group}
	pod.Spec.EvictionResponders = []corev1.EvictionResponder{{Name: "drain.example.com"}}
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/gate"}}
	pod.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
	pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimTemplateName: &group}}
	c := &pod.Spec.Containers[0]
	c.ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired}}
	c.RestartPolicy = &always
	c.RestartPolicyRules = []corev1.ContainerRestartRule{{
		Action: corev1.ContainerRestartRuleActionRestart,
		ExitCodes: &corev1.ContainerRestartRuleOnExitCodes{
			Operator: corev1.ContainerRestartRuleOnExitCodesOpIn, Values: []int32{42},
		},
	}}
	pod.Spec.InitContainers = []corev1.Container{{Name: "mesh", Image: "registry.example.com/mesh:1", Command: []string{"/mesh"}, RestartPolicy: &always}}
	return pod
}

func TestEntrypointFromRegistry(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true, User: "puller", Password: "pw"})
	image, digest := reg.Push(t, "team/app:1", registrytest.Image{Entrypoint: []string{"/entry"}, Cmd: []string{"serve"}})
	kube := kfake.NewClientset(reg.PullSecret("apps", "regcred", "puller", "pw"))
	h := newHarness(t, webhook.Options{}, entrypoint.Options{Transport: reg.Transport, Kubernetes: kube, DisableECR: true})

	withImage := func(name string, secret bool) *corev1.Pod {
		pod := fargatePod(name)
		pod.Spec.Containers[0].Image = image
		pod.Spec.Containers[0].Command = nil
		if secret {
			pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		}
		return pod
	}
	images := injector.Images{image: {Config: &injector.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"serve"}, Digest: digest.String()}}}
	for _, name := range []string{"first", "second"} {
		pod := withImage(name, true)
		raw := mustJSON(t, pod)
		out := patched(t, raw, h.admit(admissionv1.Create, raw))
		expectMutate(t, out, pod, h.cfg, images)
		cmd := decodePod(t, out).Spec.Containers[0].Command
		if n := len(cmd); n < 2 || cmd[n-2] != "/entry" || cmd[n-1] != "serve" {
			t.Fatalf("command %q does not end with the image's ENTRYPOINT and CMD", cmd)
		}
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_registry_lookup_duration_seconds", map[string]string{"outcome": "ok"}); got != 1 {
		t.Errorf("registry look-ups %v, want 1 (the second pod is served from the cache)", got)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_image_cache_lookups_total", map[string]string{"cache": "config", "result": "hit"}); got != 1 {
		t.Errorf("config cache hits %v, want 1", got)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_image_resolve_duration_seconds", nil); got != 2 {
		t.Errorf("resolve observations %v, want 2", got)
	}

	// Without the pull secret: admitted, container left unwrapped, a warning saying why and what to do.
	pod := withImage("nosecret", false)
	raw := mustJSON(t, pod)
	resp := h.admit(admissionv1.Create, raw)
	out := decodePod(t, patched(t, raw, resp))
	if len(out.Spec.Containers[0].Command) != 0 {
		t.Fatalf("an unresolved container was wrapped: %q", out.Spec.Containers[0].Command)
	}
	warn := strings.Join(resp.Warnings, "\n")
	for _, want := range []string{"container app", "imagePullSecret", annotations.Command} {
		if !strings.Contains(warn, want) {
			t.Errorf("warnings do not mention %q: %s", want, warn)
		}
	}
}

func TestHangingRegistryStaysWithinBudget(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	image, _ := reg.Push(t, "slow:1", registrytest.Image{Entrypoint: []string{"/slow"}})
	h := newHarness(t, webhook.Options{}, entrypoint.Options{Transport: reg.Transport, DisableECR: true, Budget: 300 * time.Millisecond})
	reg.Hang()
	pod := fargatePod("slow")
	pod.Spec.Containers[0].Image = image
	pod.Spec.Containers[0].Command = nil
	// The registry never answers while it hangs: an answer at all is the budget at work.
	resp := h.admit(admissionv1.Create, mustJSON(t, pod))
	if !strings.Contains(strings.Join(resp.Warnings, "\n"), "budget") {
		t.Fatalf("warnings do not explain the timeout: %v", resp.Warnings)
	}
	reg.Release()
}

func TestExportersConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "team-exporters"},
		Data:       map[string]string{annotations.DefaultExportersKey: "- id: otlp_http/vendor\n  config:\n    endpoint: https://otlp.vendor.example.com\n"},
	}
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "fargate-otel-nodeproxy-ca"}, Data: map[string]string{"ca.crt": "PEM"}}
	reader := fake.NewClientBuilder().WithObjects(cm, ca).Build()
	h := newHarness(t, webhook.Options{ConfigMaps: reader})

	pod := fargatePod("exp")
	pod.Annotations = map[string]string{annotations.Exporters: "team-exporters"}
	raw := mustJSON(t, pod)
	out := patched(t, raw, h.admit(admissionv1.Create, raw))
	cfg := h.cfg
	cfg.Namespace.NodeProxyCA = injector.Present
	cfg.ReferencedExporters = &injector.ReferencedExporters{
		Ref:  annotations.ConfigMapRef{Name: "team-exporters", Key: annotations.DefaultExportersKey},
		Data: cm.Data[annotations.DefaultExportersKey],
	}
	expectMutate(t, out, pod, cfg, nil)
	if !strings.Contains(string(out), "otlp_http/vendor") {
		t.Fatal("the pod's exporter is not in the collector config")
	}

	// A ConfigMap that does not exist: injected with the defaults and a warning naming it.
	pod.Annotations[annotations.Exporters] = "missing"
	pod.Name = "exp2"
	resp := h.admit(admissionv1.Create, mustJSON(t, pod))
	if len(resp.Patch) == 0 || !strings.Contains(strings.Join(resp.Warnings, "\n"), "missing") {
		t.Fatalf("want injection with a warning naming the missing ConfigMap, got %v", resp.Warnings)
	}
}

func TestFailOpenOnUndecodablePod(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad","namespace":"apps",` +
		`"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"nightly","uid":"job-uid","controller":true}]},` +
		`"spec":{"containers":"not a list"}}`)
	resp := h.admit(admissionv1.Create, raw)
	if len(resp.Patch) != 0 {
		t.Fatalf("patched an undecodable pod: %s", resp.Patch)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "admitted unchanged") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	ev := h.events.only(t)
	if ev.regarding.Kind != "Job" || ev.regarding.Name != "nightly" || ev.regarding.Namespace != "apps" || ev.eventtype != corev1.EventTypeWarning {
		t.Fatalf("event %+v, want a Warning about Job apps/nightly", ev)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_fail_open_total", map[string]string{"cause": "decode"}); got != 1 {
		t.Errorf("fail_open_total{decode} %v, want 1", got)
	}
}

type panickingResolver struct{}

func (panickingResolver) Resolve(context.Context, []injector.ImageRequest, entrypoint.Credentials) injector.Images {
	panic("resolver bug")
}

func TestFailOpenOnPanic(t *testing.T) {
	h := newHarness(t, webhook.Options{Resolver: panickingResolver{}})
	pod := fargatePod("boom")
	pod.Spec.Containers[0].Command = nil // so that the resolver is called
	resp := h.admit(admissionv1.Create, mustJSON(t, pod))
	if len(resp.Patch) != 0 {
		t.Fatalf("patched after a panic: %s", resp.Patch)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "resolver bug") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	ev := h.events.only(t)
	if ev.regarding.Kind != "ReplicaSet" || ev.regarding.Name != "boom-rs" {
		t.Fatalf("event about %+v, want the ReplicaSet", ev.regarding)
	}
	if got := metricValue(t, h.registry, "fargate_otel_injector_fail_open_total", map[string]string{"cause": "panic"}); got != 1 {
		t.Errorf("fail_open_total{panic} %v, want 1", got)
	}

	// A bare pod (no owner, generateName only): the event goes to its namespace.
	bare := fargatePod("")
	bare.GenerateName, bare.OwnerReferences = "job-", nil
	bare.Spec.Containers[0].Command = nil
	h.admit(admissionv1.Create, mustJSON(t, bare))
	if ev := h.events.last(t); ev.regarding.Kind != "Namespace" || ev.regarding.Name != "apps" {
		t.Fatalf("event about %+v, want Namespace apps", ev.regarding)
	}

	// Dry runs have no side effects: no event.
	n := h.events.count()
	review, err := webhooktest.Request(admissionv1.Create, "apps", pod)
	if err != nil {
		t.Fatal(err)
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(review.Body, &ar); err != nil {
		t.Fatal(err)
	}
	dry := true
	ar.Request.DryRun = &dry
	dryReview, err := webhooktest.Encode(ar)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Post(context.Background(), webhook.Path, dryReview); err != nil {
		t.Fatal(err)
	}
	if h.events.count() != n {
		t.Fatal("a dry run recorded an event")
	}
}

func TestNoopHandlerOnSameServer(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	review, err := webhooktest.Request(admissionv1.Create, "apps", fargatePod("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.srv.Post(context.Background(), "/noop", review)
	if err != nil || !resp.Allowed || len(resp.Patch) != 0 {
		t.Fatalf("noop: %+v, %v", resp, err)
	}
}

// recorder keeps the events the handler records.
type recorder struct {
	mu     sync.Mutex
	events []event
}

type event struct {
	regarding            *corev1.ObjectReference
	eventtype, reason, n string
}

func (r *recorder) Eventf(regarding runtime.Object, _ runtime.Object, eventtype, reason, _ string, note string, args ...any) {
	ref, _ := regarding.(*corev1.ObjectReference)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{regarding: ref, eventtype: eventtype, reason: reason, n: fmt.Sprintf(note, args...)})
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.events) }

func (r *recorder) only(t *testing.T) event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) != 1 || r.events[0].regarding == nil {
		t.Fatalf("want one event, got %+v", r.events)
	}
	return r.events[0]
}

func (r *recorder) last(t *testing.T) event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 || r.events[len(r.events)-1].regarding == nil {
		t.Fatal("no event")
	}
	return r.events[len(r.events)-1]
}

// metricValue is the value of a counter (or the sample count of a
// histogram) of reg by name and labels, 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := true
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					match = false
				}
			}
			if match {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// stalledResolver answers when its context ends, as a registry that never
// answers does, and keeps the time that took.
type stalledResolver struct{ waited time.Duration }

func (r *stalledResolver) Resolve(ctx context.Context, _ []injector.ImageRequest, _ entrypoint.Credentials) injector.Images {
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second): // no deadline reached it: fail, not hang
	}
	r.waited = time.Since(start)
	return nil
}

// One admission's reads together stay within Options.Deadline, so the API
// server gets an answer before its webhook timeout.
func TestAdmissionDeadline(t *testing.T) {
	r := &stalledResolver{}
	h := newHarness(t, webhook.Options{Resolver: r, Deadline: 200 * time.Millisecond})
	pod := fargatePod("slow")
	pod.Spec.Containers[0].Command = nil
	resp := h.admit(admissionv1.Create, mustJSON(t, pod))
	if !resp.Allowed {
		t.Fatalf("not allowed: %+v", resp.Result)
	}
	if r.waited == 0 || r.waited > 5*time.Second {
		t.Fatalf("the look-up waited %s: the admission's deadline did not reach it", r.waited)
	}
}
