// Package collectorconfig renders the configuration of the fargate-otel
// collector sidecar from a typed Config. The injector puts the result into the
// sidecar's FARGATE_OTEL_CONFIG env var; `fargate-otel render` prints it.
package collectorconfig

import "time"

// Signal is one of the three telemetry pipelines.
type Signal string

const (
	Logs    Signal = "logs"
	Metrics Signal = "metrics"
	Traces  Signal = "traces"
)

// Config is everything that differs between two rendered collector configs.
// The zero value is not useful: start from Default().
type Config struct {
	// ClusterName becomes the k8s.cluster.name resource attribute.
	ClusterName string
	// Signals lists the pipelines to render; a disabled signal has no
	// pipeline and its receivers are left out.
	Signals []Signal
	// Exporters receive every enabled signal unless the exporter lists its own.
	Exporters []Exporter

	// LogInclude are the file_log include globs (the kubelet layout).
	LogInclude []string
	// StorageDir is where file_storage keeps file_log offsets; it lives on the
	// logs volume so that a collector restart resumes where it stopped.
	StorageDir string

	// KubeletStats configures the kubelet_stats receiver.
	KubeletStats KubeletStats

	// HealthCheckEndpoint is where the health_check extension listens
	// (probes of the sidecar use it).
	HealthCheckEndpoint string
	// MemoryLimitMiB is the sidecar's memory limit; memory_limiter is sized
	// from it. 0 means no limit known.
	MemoryLimitMiB int
}

// KubeletStats is where and how the kubelet_stats receiver reads /stats/summary.
type KubeletStats struct {
	// Endpoint is the base URL that /stats/summary is joined to, e.g.
	// https://kubernetes.default.svc/api/v1/nodes/${env:NODE_NAME}/proxy
	Endpoint string
	// CAFile verifies Endpoint's certificate; empty means the service account CA.
	CAFile string
	// Interval is the collection interval.
	Interval time.Duration
}

// Exporter is one collector exporter, written as a user writes it in a
// collector config.
type Exporter struct {
	// ID is the component ID, e.g. "otlp_grpc/gateway" or "debug".
	ID string
	// Config is the exporter's settings, rendered as-is.
	Config map[string]any
	// Signals restricts the exporter to some pipelines; empty means all.
	Signals []Signal
}
