// Package webhook is the admission webhook of fargate-otel: a
// controller-runtime admission.Handler for Pod CREATE that reads what the
// pure mutation needs (image entrypoints from registries, a pod's exporters
// ConfigMap), calls injector.Mutate and answers with a JSON patch against
// the very bytes the API server sent.
//
// It fails open: a panic, an undecodable pod or any internal error admits
// the pod unchanged, with an admission warning, an Event and a metric. The
// chart's failurePolicy Ignore covers what this code cannot (a crash, a
// timeout).
package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
)

// Path is where the webhook server serves the pod mutation.
const Path = "/mutate-v1-pod"

// ImageResolver reads image configs from registries (entrypoint.Resolver),
// bounded in time.
type ImageResolver interface {
	Resolve(ctx context.Context, reqs []injector.ImageRequest, creds entrypoint.Credentials) injector.Images
}

// EventRecorder records Kubernetes Events (events.k8s.io/v1); the manager's
// GetEventRecorder satisfies it.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Options build a Handler. Only Config is required.
type Options struct {
	// Config is the injector's configuration; Validate()d by the caller.
	Config injector.Config
	// Resolver looks up entrypoints of containers without a command; nil
	// leaves such containers unwrapped with a warning.
	Resolver ImageResolver
	// ConfigMaps reads the exporters ConfigMaps pods refer to; nil makes
	// such pods fall back to the default exporters with a warning.
	ConfigMaps client.Reader
	// ConfigMapTTL is how long a ConfigMap read is reused (default 10s).
	ConfigMapTTL time.Duration
	// Cache reads the pod's Namespace (its labels choose the kubelet stats
	// mode) and the namespace's LimitRanges, from informers; nil leaves
	// both unknown (the configured mode, no fitting).
	Cache client.Reader
	// CacheSynced says whether Cache is filled; while it is not, the
	// webhook does not wait for it, and says so in a warning.
	CacheSynced func() bool
	// PublishNodeProxyCA puts the node proxy's CA ConfigMap
	// (Config.KubeletStats.NodeProxy.CAConfigMap) into a namespace and
	// returns it as stored, or nil when that is not known
	// (controllers.CAPublisher.Publish); with dryRun it only asks the API
	// server whether it could, and stores nothing. The webhook calls it when
	// a pod that would be in kubelet stats mode proxy arrives in a namespace
	// without that ConfigMap (labelled a moment ago, in the same apply as
	// its workloads): the injector's publisher may not have got there yet.
	// nil leaves such pods without kubelet stats, with a warning.
	PublishNodeProxyCA func(ctx context.Context, namespace string, dryRun bool) (*corev1.ConfigMap, error)
	// Recorder records an Event when the webhook fails open; nil records none.
	Recorder EventRecorder
	// Metrics counts what the webhook does; nil counts nothing.
	Metrics *Metrics
	// Log is the base logger; default the controller-runtime logger.
	Log logr.Logger
	// Deadline bounds all the reads of one admission together (ConfigMaps,
	// namespace, CA publish, image look-ups), each of which has its own
	// bound too; default DefaultDeadline.
	Deadline time.Duration
}

// DefaultDeadline keeps one admission, every read added up, under the
// webhook's timeout (at least 10s, values.schema.json), so the API server
// gets an answer (a pod injected without what did not fit, with a warning)
// instead of ignoring the webhook.
const DefaultDeadline = 8 * time.Second

// Handler is the pod mutation webhook.
type Handler struct {
	cfg         injector.Config
	resolver    ImageResolver
	configMaps  *configMapCache
	cache       client.Reader
	cacheSynced func() bool
	publishCA   func(ctx context.Context, namespace string, dryRun bool) (*corev1.ConfigMap, error)
	deadline    time.Duration
	recorder    EventRecorder
	metrics     *Metrics
	log         logr.Logger
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns a Handler for opts.
func NewHandler(opts Options) *Handler {
	h := &Handler{
		cfg:      opts.Config,
		resolver: opts.Resolver,
		recorder: opts.Recorder,
		metrics:  opts.Metrics,
		log:      opts.Log,
		cache:    opts.Cache,

		cacheSynced: opts.CacheSynced,
		publishCA:   opts.PublishNodeProxyCA,
		deadline:    cmp.Or(opts.Deadline, DefaultDeadline),
	}
	if h.log.GetSink() == nil {
		h.log = logf.Log.WithName("fargate-otel-webhook")
	}
	if opts.ConfigMaps != nil {
		h.configMaps = newConfigMapCache(opts.ConfigMaps, cmp.Or(opts.ConfigMapTTL, 10*time.Second))
	}
	return h
}

// Webhook wraps the handler for webhook.Server.Register(Path, ...).
func (h *Handler) Webhook() *admission.Webhook {
	return &admission.Webhook{Handler: h}
}

// Handle answers one admission request. It never denies a pod.
func (h *Handler) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			h.log.Error(fmt.Errorf("panic: %v", r), "webhook failed open", "uid", req.UID, "stack", string(debug.Stack()))
			resp = h.failOpen(req, nil, causePanic, fmt.Errorf("internal error (%v)", r))
		}
		h.metrics.admission(time.Since(start))
	}()

	if req.Operation != admissionv1.Create || req.Resource.Resource != "pods" || req.SubResource != "" {
		return admission.Allowed("fargate-otel injects pods at creation only")
	}
	ctx, cancel := context.WithTimeout(ctx, h.deadline)
	defer cancel()
	pod := &corev1.Pod{}
	// Case-sensitive, as the API server decodes: "Metadata" is not "metadata".
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, pod); err != nil {
		return h.failOpen(req, nil, causeDecode, fmt.Errorf("the pod could not be decoded: %w", err))
	}
	namespace := cmp.Or(pod.Namespace, req.Namespace)

	cfg := h.cfg
	if ref, ok := injector.ExportersConfigMap(pod); ok {
		cfg.ReferencedExporters = h.readExporters(ctx, namespace, ref)
	}
	var readWarnings []string
	cfg.Namespace, readWarnings = h.namespaceFacts(ctx, namespace)
	if cfg.Namespace.NodeProxyCA == injector.Missing && h.publishCA != nil && injector.NeedsNodeProxyCA(pod, cfg) {
		h.publishNodeProxyCA(ctx, namespace, req.DryRun != nil && *req.DryRun, &cfg.Namespace)
	}

	var images injector.Images
	if reqs := injector.ImagesToResolve(pod, cfg); len(reqs) > 0 && h.resolver != nil {
		t := time.Now()
		images = h.resolver.Resolve(ctx, reqs, credentialsOf(pod, namespace))
		h.metrics.resolved(time.Since(t))
	}

	res := injector.Mutate(pod, cfg, images)
	if res.Injected || res.Skip == injector.SkipLimitRange {
		res.Warnings = append(readWarnings, res.Warnings...)
	}
	if res.Skip == injector.SkipInternalError {
		h.metrics.failedOpen(causeInternal)
		h.event(req, pod, strings.Join(res.Warnings, "; "))
		if log, ok := h.podLog(0, req, namespace, pod); ok {
			log.Info("not injected: internal error", "warnings", res.Warnings)
		}
		return admission.Allowed("").WithWarnings(res.Warnings...)
	}
	if !res.Injected {
		h.metrics.skipped(string(res.Skip))
		if log, ok := h.podLog(1, req, namespace, pod); ok {
			log.Info("not injected", "reason", res.Skip, "warnings", res.Warnings)
		}
		return admission.Allowed("").WithWarnings(res.Warnings...)
	}

	resp, err := patchResponse(req.Object.Raw, pod, res.Pod)
	if err != nil {
		return h.failOpen(req, pod, causePatch, err)
	}
	h.metrics.injected()
	if log, ok := h.podLog(1, req, namespace, pod); ok {
		log.Info("injected", "warnings", res.Warnings, "patchBytes", len(resp.Patch), "patches", len(resp.Patches))
	}
	return resp.WithWarnings(res.Warnings...)
}

// podLog is the logger at level v with the pod's identity, built only when
// that level is enabled (most admissions log nothing).
func (h *Handler) podLog(v int, req admission.Request, namespace string, pod *corev1.Pod) (logr.Logger, bool) {
	log := h.log.V(v)
	if !log.Enabled() {
		return log, false
	}
	return log.WithValues("uid", req.UID, "namespace", namespace, "pod", podName(pod)), true
}

// Fail-open causes (metric labels).
const (
	causePanic    = "panic"
	causeDecode   = "decode"
	causePatch    = "patch"
	causeInternal = "internal"
)

// failOpen admits the pod unchanged and says so: a warning for whoever
// created it, an Event for whoever looks at its owner, a metric for alerts.
func (h *Handler) failOpen(req admission.Request, pod *corev1.Pod, cause string, err error) admission.Response {
	h.metrics.failedOpen(cause)
	h.log.Error(err, "webhook failed open", "uid", req.UID, "namespace", req.Namespace, "cause", cause)
	msg := fmt.Sprintf("fargate-otel: not injected, the pod is admitted unchanged: %s", shorten(err.Error(), 300))
	h.event(req, pod, msg)
	return admission.Allowed("").WithWarnings(msg)
}

// event records a Warning Event about the pod's owner (the pod itself does
// not exist yet), else the pod by name, else its namespace. Dry runs record
// nothing: they must have no side effects.
func (h *Handler) event(req admission.Request, pod *corev1.Pod, note string) {
	if h.recorder == nil || (req.DryRun != nil && *req.DryRun) {
		return
	}
	defer func() { _ = recover() }() // an event is best effort; it must not undo failing open
	h.recorder.Eventf(eventTarget(req, pod), nil, corev1.EventTypeWarning, "FargateOtelNotInjected", "Inject", "%s", shorten(note, 1000))
}

func eventTarget(req admission.Request, pod *corev1.Pod) *corev1.ObjectReference {
	if pod == nil {
		// The pod did not decode; its metadata may still.
		var partial struct {
			Metadata struct {
				Name            string `json:"name"`
				Namespace       string `json:"namespace"`
				OwnerReferences []struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
					Name       string `json:"name"`
					UID        string `json:"uid"`
					Controller *bool  `json:"controller"`
				} `json:"ownerReferences"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(req.Object.Raw, &partial)
		pod = &corev1.Pod{}
		pod.Name, pod.Namespace = partial.Metadata.Name, partial.Metadata.Namespace
		for _, o := range partial.Metadata.OwnerReferences {
			pod.OwnerReferences = append(pod.OwnerReferences, ownerRef(o.APIVersion, o.Kind, o.Name, o.UID, o.Controller))
		}
	}
	namespace := cmp.Or(pod.Namespace, req.Namespace)
	var owner *corev1.ObjectReference
	for _, o := range pod.OwnerReferences {
		if o.Name == "" || o.Kind == "" {
			continue
		}
		ref := &corev1.ObjectReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, Namespace: namespace, UID: o.UID}
		if o.Controller != nil && *o.Controller {
			return ref
		}
		if owner == nil {
			owner = ref
		}
	}
	if owner != nil {
		return owner
	}
	if name := cmp.Or(pod.Name, req.Name); name != "" {
		return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Name: name, Namespace: namespace}
	}
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: namespace}
}

// credentialsOf: the pull secrets the kubelet would use for the pod.
func credentialsOf(pod *corev1.Pod, namespace string) entrypoint.Credentials {
	creds := entrypoint.Credentials{Namespace: namespace, ServiceAccountName: pod.Spec.ServiceAccountName}
	for _, s := range pod.Spec.ImagePullSecrets {
		if s.Name != "" {
			creds.ImagePullSecrets = append(creds.ImagePullSecrets, s.Name)
		}
	}
	return creds
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	if pod.GenerateName != "" {
		return pod.GenerateName + "*"
	}
	return ""
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// NoopHandler admits everything unchanged: the reference the benchmark
// compares the webhook with, on the same server.
func NoopHandler() admission.Handler {
	return admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})
}

func ownerRef(apiVersion, kind, name, uid string, controller *bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: controller}
}
