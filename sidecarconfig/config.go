// Package sidecarconfig is the fargate-otel collector sidecar's
// configuration: a typed Config, its compact JSON form (Encode, Decode: the
// settings the injector puts into the sidecar's FARGATE_OTEL_SETTINGS env
// var) and the collector YAML rendered from it (Render: what the collector
// distribution's `fargate` config provider runs, and what `fargate-otel
// render` prints). It is its own small Go module so that the injector, the
// fleet server and the collector distribution (which has a go.mod of its
// own) all use this one implementation.
//
//	cfg := sidecarconfig.Default()
//	cfg.ClusterName = "prod"
//	settings, err := sidecarconfig.Encode(cfg) // {"clusterName":"prod"}
//	yaml, err := sidecarconfig.Render(cfg)
//
// The rendered config reads the pod's identity from the env vars NODE_NAME,
// POD_NAME, POD_NAMESPACE and POD_UID (Downward API), which the sidecar must
// have: the collector refuses to start when one is unset.
package sidecarconfig

import "time"

// Signal is one of the three telemetry pipelines.
type Signal string

const (
	Logs    Signal = "logs"
	Metrics Signal = "metrics"
	Traces  Signal = "traces"
)

// AllSignals is every signal, in the order pipelines are rendered.
var AllSignals = []Signal{Logs, Metrics, Traces}

// Product defaults. The injector and the Helm chart start from these.
const (
	// ConfigEnvVar is where a collector config in YAML may be given
	// instead of settings (--config=env:FARGATE_OTEL_CONFIG); injected
	// sidecars carry settings (SettingsEnvVar).
	ConfigEnvVar = "FARGATE_OTEL_CONFIG"

	// DefaultKubeletStatsEndpoint reads the node's kubelet through the API
	// server's nodes/proxy subresource (a Fargate pod cannot reach :10250).
	DefaultKubeletStatsEndpoint = "https://kubernetes.default.svc/api/v1/nodes/${env:NODE_NAME}/proxy"
	// DefaultKubeletStatsInterval is how often /stats/summary is read; every
	// Fargate pod reads through the API server, so this is gentler than the
	// receiver's own 10s.
	DefaultKubeletStatsInterval = 30 * time.Second

	// DefaultStorageDir is where the sidecar mounts the state sub-directory
	// (subPath .fargate-otel-state) of the logs volume.
	DefaultStorageDir = "/var/lib/fargate-otel"
	// DefaultHealthCheckEndpoint is probed by the kubelet on the pod IP.
	DefaultHealthCheckEndpoint = ":13133"
	// DefaultOTLPGRPCEndpoint and DefaultOTLPHTTPEndpoint are where apps in
	// the pod send OTLP (the injector sets OTEL_EXPORTER_OTLP_ENDPOINT to
	// http://localhost:4317).
	DefaultOTLPGRPCEndpoint = "127.0.0.1:4317"
	DefaultOTLPHTTPEndpoint = "127.0.0.1:4318"

	// DefaultGatewayExporterID names the default exporter: OTLP/gRPC to a
	// gateway collector in the cluster, where heavy processing happens.
	DefaultGatewayExporterID = "otlp_grpc/gateway"
	// DefaultGatewayEndpoint is the gateway the default exporter sends to;
	// the Helm chart's values override it.
	DefaultGatewayEndpoint = "otel-gateway.opentelemetry.svc:4317"

	// MinMemoryLimitMiB is the smallest sidecar memory limit the collector
	// runs in (its idle heap and the memory_limiter's headroom).
	MinMemoryLimitMiB = 64

	// DefaultDrainTimeout bounds how long a stopping collector waits for
	// the pod's last lines to be read and sent (the drain extension): below
	// the default termination grace period (30s), with room for the rest
	// of the shutdown.
	DefaultDrainTimeout = 20 * time.Second
)

// Env vars of the sidecar that the collector binary reads (besides the
// Downward API's and the config's).
const (
	// SidecarEnvVar=true tells the collector that it is a pod's sidecar: a
	// failure to start is logged and retried, never an exit, so that the
	// kubelet never holds the app back behind a crash-looping collector.
	SidecarEnvVar = "FARGATE_OTEL_SIDECAR"
	// HealthEndpointEnvVar is where the sidecar answers the liveness probe
	// while the collector is not running (health_check's endpoint).
	HealthEndpointEnvVar = "FARGATE_OTEL_HEALTH_ENDPOINT"
)

// LogsVolumeMountPath is where the sidecar mounts the logs volume read-only:
// the wrapper writes the kubelet's layout below it.
const LogsVolumeMountPath = "/var/log/pods"

// DefaultLogInclude are the files the wrapper writes, as the kubelet lays
// them out: the live <restart>.log and its rotated backups
// <restart>.log.<YYYYMMDD-HHMMSS>. Backups are included so that lines still
// unread when a file is rotated are read from the backup (file_log's
// fingerprints recognise a renamed file and resume at its offset).
var DefaultLogInclude = []string{
	"/var/log/pods/*/*/*.log",
	"/var/log/pods/*/*/*.log.*",
}

// DefaultLogExclude keeps compressed backups out (the container parser reads
// text) and anything in a hidden top-level folder, such as the collector's
// own state (.fargate-otel-state, the same volume seen from /var/log/pods).
var DefaultLogExclude = []string{
	"/var/log/pods/*/*/*.gz",
	"/var/log/pods/.*/**",
}

// Config is everything that differs between two rendered collector configs.
// The zero value is not useful: start from Default().
type Config struct {
	// ClusterName becomes the k8s.cluster.name resource attribute; empty
	// leaves the attribute out.
	ClusterName string `json:"clusterName"`
	// Signals lists the pipelines to render; a disabled signal has no
	// pipeline and its receivers are left out.
	Signals []Signal `json:"signals"`
	// Exporters receive every enabled signal unless the exporter lists its own.
	Exporters []Exporter `json:"exporters"`

	// LogInclude are the file_log include globs (the kubelet layout).
	LogInclude []string `json:"logInclude"`
	// LogExclude are file_log exclude globs.
	LogExclude []string `json:"logExclude"`
	// StorageDir is where file_storage keeps file_log offsets; it lives on the
	// logs volume so that a collector restart resumes where it stopped.
	StorageDir string `json:"storageDir"`

	// KubeletStats configures the kubelet_stats receiver.
	KubeletStats KubeletStats `json:"kubeletStats"`

	// OTLP is where the otlp receiver listens for the pod's apps.
	OTLP OTLP `json:"otlp"`

	// HealthCheckEndpoint is where the health_check extension listens
	// (probes of the sidecar use it).
	HealthCheckEndpoint string `json:"healthCheckEndpoint"`
	// MemoryLimitMiB is the sidecar's memory limit; memory_limiter is sized
	// from it. 0 means no limit known (memory_limiter then uses percentages
	// of the cgroup's limit).
	MemoryLimitMiB int `json:"memoryLimitMiB"`
	// DiskQueueMiB is what the exporters' sending queues kept on disk
	// (sending_queue.storage: file_storage, on the logs volume) may hold
	// together; each gets an equal share, in bytes (see queue.go).
	DiskQueueMiB int `json:"diskQueueMiB"`
	// DrainTimeout is the longest a stopping collector waits, before its
	// pipelines shut down, for file_log to read every file to its end and
	// for the queues on disk to be sent (the drain extension); 0 leaves the
	// drain out. Keep it below the pod's grace period.
	DrainTimeout time.Duration `json:"drainTimeout"`

	// LogLevel is the collector's own log level: debug, info, warn or error.
	LogLevel string `json:"logLevel"`
	// TraceSampling is the share of traces the sidecar keeps, from 0 to 1,
	// decided by trace ID (probabilistic_sampler, so that every sidecar
	// keeps or drops the same traces); 1 keeps all and renders no sampler.
	TraceSampling float64 `json:"traceSampling"`

	// LogParsing joins multiline records and parses lines, per container
	// (see logparsing.go); the zero value keeps one record per line, as text.
	LogParsing LogParsing `json:"logParsing"`
}

// LogLevels are the collector's own log levels.
var LogLevels = []string{"debug", "info", "warn", "error"}

// KubeletStats is where and how the kubelet_stats receiver reads /stats/summary.
type KubeletStats struct {
	// Disabled leaves kubelet_stats out of the metrics pipeline (OTLP metrics
	// still flow).
	Disabled bool `json:"disabled"`
	// Endpoint is the base URL that /stats/summary is joined to, e.g.
	// https://kubernetes.default.svc/api/v1/nodes/${env:NODE_NAME}/proxy
	Endpoint string `json:"endpoint"`
	// CAFile verifies Endpoint's certificate; empty means the service account CA.
	CAFile string `json:"caFile"`
	// Interval is the collection interval.
	Interval time.Duration `json:"interval"`
}

// OTLP is the otlp receiver's listen addresses.
type OTLP struct {
	// GRPCEndpoint is host:port of the OTLP/gRPC listener.
	GRPCEndpoint string `json:"grpc"`
	// HTTPEndpoint is host:port of the OTLP/HTTP listener.
	HTTPEndpoint string `json:"http"`
}

// Exporter is one collector exporter, written as a user writes it in a
// collector config.
type Exporter struct {
	// ID is the component ID, e.g. "otlp_grpc/gateway" or "debug".
	ID string `json:"id"`
	// Config is the exporter's settings, rendered as-is (so ${env:X}
	// references work, e.g. for a header taken from a secret).
	Config map[string]any `json:"config"`
	// Signals restricts the exporter to some pipelines; empty means all.
	Signals []Signal `json:"signals"`
}

// Default is the product's configuration: every signal, one OTLP/gRPC
// exporter to the gateway, kubelet stats through the API server.
func Default() Config {
	return Config{
		Signals:    append([]Signal(nil), AllSignals...),
		Exporters:  []Exporter{GatewayExporter(DefaultGatewayEndpoint)},
		LogInclude: append([]string(nil), DefaultLogInclude...),
		LogExclude: append([]string(nil), DefaultLogExclude...),
		StorageDir: DefaultStorageDir,
		KubeletStats: KubeletStats{
			Endpoint: DefaultKubeletStatsEndpoint,
			Interval: DefaultKubeletStatsInterval,
		},
		OTLP: OTLP{
			GRPCEndpoint: DefaultOTLPGRPCEndpoint,
			HTTPEndpoint: DefaultOTLPHTTPEndpoint,
		},
		HealthCheckEndpoint: DefaultHealthCheckEndpoint,
		DiskQueueMiB:        DefaultDiskQueueMiB,
		DrainTimeout:        DefaultDrainTimeout,
		LogLevel:            "info",
		TraceSampling:       1,
	}
}

// GatewayExporter is the default exporter: OTLP/gRPC to endpoint (host:port)
// without TLS, as in-cluster gateway collectors usually listen, with its
// sending queue kept on disk (file_storage) so that data already read from
// the log files survives a collector restart and a gateway outage.
func GatewayExporter(endpoint string) Exporter {
	return Exporter{
		ID: DefaultGatewayExporterID,
		Config: map[string]any{
			"endpoint": endpoint,
			"tls":      map[string]any{"insecure": true},
			"sending_queue": map[string]any{
				"storage": StorageExtensionID,
			},
		},
	}
}
