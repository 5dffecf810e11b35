package nodeproxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus series. Register them with Register.
type Metrics struct {
	Requests         *prometheus.CounterVec
	Refused          *prometheus.CounterVec
	TokenCache       *prometheus.CounterVec
	UpstreamRequests *prometheus.CounterVec
	UpstreamDuration prometheus.Histogram
	FollowStreams    prometheus.Gauge
	LogBytes         prometheus.Counter
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fargate_otel_nodeproxy_requests_total",
			Help: "Requests answered, by kubelet resource (or none when refused before the path was known) and HTTP code.",
		}, []string{"resource", "code"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fargate_otel_nodeproxy_refused_total",
			Help: "Requests refused before reaching the API server, by reason.",
		}, []string{"reason"}),
		TokenCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fargate_otel_nodeproxy_token_reviews_total",
			Help: "Token verifications, answered from a cache (hit) or by a TokenReview (miss); tokens refused by their shape or by the review limits count as neither.",
		}, []string{"result"}),
		UpstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fargate_otel_nodeproxy_upstream_requests_total",
			Help: "Requests sent to the API server's nodes/proxy, by HTTP code (or error).",
		}, []string{"code"}),
		UpstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fargate_otel_nodeproxy_upstream_duration_seconds",
			Help:    "Time to the first byte of the API server's answer.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 12),
		}),
		FollowStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fargate_otel_nodeproxy_follow_streams",
			Help: "containerLogs follow streams open now.",
		}),
		LogBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fargate_otel_nodeproxy_log_bytes_total",
			Help: "Bytes of container logs forwarded to callers.",
		}),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Requests, m.Refused, m.TokenCache, m.UpstreamRequests, m.UpstreamDuration, m.FollowStreams, m.LogBytes} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
