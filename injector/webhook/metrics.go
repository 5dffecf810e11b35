package webhook

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
)

// Metrics of the webhook, registered on a Prometheus registry (the
// controller-runtime one in the server). All methods accept a nil *Metrics.
type Metrics struct {
	admissions     prometheus.Histogram
	injections     prometheus.Counter
	skips          *prometheus.CounterVec
	failOpen       *prometheus.CounterVec
	resolve        prometheus.Histogram
	registry       *prometheus.HistogramVec
	imageCache     *prometheus.CounterVec
	configMapReads *prometheus.CounterVec
	namespaceReads *prometheus.CounterVec
	caPublishes    *prometheus.CounterVec
}

var _ entrypoint.Observer = (*Metrics)(nil)

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "fargate_otel_injector"
	latency := prometheus.ExponentialBuckets(0.001, 2, 14) // 1 ms .. 8 s
	m := &Metrics{
		admissions: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "admission_duration_seconds",
			Help:    "Time the webhook took to answer a pod admission request.",
			Buckets: latency,
		}),
		injections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "injections_total",
			Help: "Pods injected.",
		}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "skips_total",
			Help: "Pods admitted without injection, by reason.",
		}, []string{"reason"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "fail_open_total",
			Help: "Pods admitted unchanged because the webhook failed (panic, decode, patch, internal).",
		}, []string{"cause"}),
		resolve: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "image_resolve_duration_seconds",
			Help:    "Time one admission spent reading image entrypoints (all its containers, caches included).",
			Buckets: latency,
		}),
		registry: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "registry_lookup_duration_seconds",
			Help:    "Image look-ups that went to a registry, by outcome (ok or the failure reason).",
			Buckets: latency,
		}, []string{"outcome"}),
		imageCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "image_cache_lookups_total",
			Help: "Image cache look-ups by cache (tag, config, negative) and result (hit, miss).",
		}, []string{"cache", "result"}),
		configMapReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "exporters_configmap_reads_total",
			Help: "Exporters ConfigMap reads by result (ok, error).",
		}, []string{"result"}),
		namespaceReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "namespace_reads_total",
			Help: "Reads of the pod's Namespace from the cache by result (ok, not-synced, error).",
		}, []string{"result"}),
		caPublishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "nodeproxy_ca_publishes_total",
			Help: "Node proxy CA ConfigMaps the webhook published itself (a pod came before the publisher), by result (ok, dry-run, error).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.admissions, m.injections, m.skips, m.failOpen, m.resolve, m.registry, m.imageCache, m.configMapReads, m.namespaceReads, m.caPublishes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) admission(d time.Duration) {
	if m != nil {
		m.admissions.Observe(d.Seconds())
	}
}

func (m *Metrics) injected() {
	if m != nil {
		m.injections.Inc()
	}
}

func (m *Metrics) skipped(reason string) {
	if m != nil {
		m.skips.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) failedOpen(cause string) {
	if m != nil {
		m.failOpen.WithLabelValues(cause).Inc()
	}
}

func (m *Metrics) resolved(d time.Duration) {
	if m != nil {
		m.resolve.Observe(d.Seconds())
	}
}

func (m *Metrics) configMapRead(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.configMapReads.WithLabelValues("error").Inc()
	} else {
		m.configMapReads.WithLabelValues("ok").Inc()
	}
}

func (m *Metrics) namespaceRead(err error) {
	if m == nil {
		return
	}
	switch {
	case err == nil:
		m.namespaceReads.WithLabelValues("ok").Inc()
	case errors.Is(err, errNotSynced):
		m.namespaceReads.WithLabelValues("not-synced").Inc()
	default:
		m.namespaceReads.WithLabelValues("error").Inc()
	}
}

func (m *Metrics) caPublished(err error, dryRun bool) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.caPublishes.WithLabelValues("error").Inc()
	case dryRun:
		m.caPublishes.WithLabelValues("dry-run").Inc()
	default:
		m.caPublishes.WithLabelValues("ok").Inc()
	}
}

// CacheLookup implements entrypoint.Observer.
func (m *Metrics) CacheLookup(cache string, hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.imageCache.WithLabelValues(cache, result).Inc()
}

// RegistryLookup implements entrypoint.Observer.
func (m *Metrics) RegistryLookup(d time.Duration, outcome string) {
	if m != nil {
		m.registry.WithLabelValues(outcome).Observe(d.Seconds())
	}
}
