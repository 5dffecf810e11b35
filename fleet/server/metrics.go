package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the OpAMP side, fargate_otel_fleet_*.
type Metrics struct {
	agents      prometheus.Gauge
	connections *prometheus.CounterVec
	refused     *prometheus.CounterVec
	messages    prometheus.Counter
	configsSent prometheus.Counter
	recompute   prometheus.Histogram
}

// NewMetrics registers the metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		agents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fargate_otel_fleet_agents_connected",
			Help: "Agents connected to this replica."}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fargate_otel_fleet_connections_total",
			Help: "Connection attempts of agents, by result (accepted, unauthenticated, no_token, review_failed, full, not_websocket)."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fargate_otel_fleet_agents_refused_total",
			Help: "Authenticated agents refused or messages dropped, by reason (forged_instance_uid, forged_identity, forged_kind, bad_figures)."}, []string{"reason"}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "fargate_otel_fleet_messages_total",
			Help: "Messages received from agents (heartbeats included)."}),
		configsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "fargate_otel_fleet_configs_sent_total",
			Help: "Live settings sent to agents."}),
		recompute: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fargate_otel_fleet_recompute_seconds",
			Help: "Time to recompute every agent's live settings after a source changed.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
	}
	if reg != nil {
		reg.MustRegister(m.agents, m.connections, m.refused, m.messages, m.configsSent, m.recompute)
	}
	return m
}
