package sidecarconfig

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Component IDs used in the rendered config.
const (
	StorageExtensionID     = "file_storage"
	HealthCheckExtensionID = "health_check"
	// DrainExtensionID is fargate-otel-collector's own extension that holds
	// the shutdown until the pod's last lines are read and sent.
	DrainExtensionID = "drain"

	fileLogReceiverID      = "file_log"
	kubeletStatsReceiverID = "kubelet_stats"
	otlpReceiverID         = "otlp"

	memoryLimiterProcessorID = "memory_limiter"
	resourceProcessorID      = "resource"
	batchProcessorID         = "batch"
	// SamplerProcessorID keeps a share of traces (Config.TraceSampling).
	SamplerProcessorID = "probabilistic_sampler"
)

// document is the collector config; its field order is the rendered order.
type document struct {
	Extensions map[string]any `yaml:"extensions"`
	Receivers  map[string]any `yaml:"receivers"`
	Processors map[string]any `yaml:"processors"`
	Exporters  map[string]any `yaml:"exporters"`
	Service    service        `yaml:"service"`
}

type service struct {
	Extensions []string            `yaml:"extensions"`
	Pipelines  map[string]pipeline `yaml:"pipelines"`
	Telemetry  map[string]any      `yaml:"telemetry"`
}

type pipeline struct {
	Receivers  []string `yaml:"receivers"`
	Processors []string `yaml:"processors"`
	Exporters  []string `yaml:"exporters"`
}

// Render turns cfg into the collector's YAML config. It fails, saying what
// to change, when cfg cannot give a working collector.
func Render(cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	doc := document{
		Extensions: map[string]any{
			StorageExtensionID:     fileStorage(cfg),
			HealthCheckExtensionID: map[string]any{"endpoint": cfg.HealthCheckEndpoint},
		},
		Receivers:  map[string]any{},
		Processors: map[string]any{},
		Exporters:  map[string]any{},
		Service: service{
			Extensions: []string{HealthCheckExtensionID, StorageExtensionID},
			Pipelines:  map[string]pipeline{},
			Telemetry:  telemetry(cfg),
		},
	}
	if cfg.DrainTimeout > 0 {
		drain := map[string]any{"timeout": cfg.DrainTimeout.String()}
		if hold := cfg.LogParsing.hold(); hold > 0 && cfg.has(Logs) {
			// recombine holds the last record of each stream: the drain
			// waits for it to reach the queues.
			drain["hold"] = hold.String()
		}
		doc.Extensions[DrainExtensionID] = drain
		doc.Service.Extensions = append(doc.Service.Extensions, DrainExtensionID)
	}

	for _, sig := range AllSignals {
		if !cfg.has(sig) {
			continue
		}
		p := pipeline{Receivers: receiversFor(cfg, sig)}
		for _, id := range p.Receivers {
			doc.Receivers[id] = receiver(cfg, id)
		}
		// memory_limiter first so that it refuses data before anything
		// buffers it; no batch processor for logs: it would hold lines whose
		// offsets file_log has already saved, and a crash would lose them
		// (exporters batch through their sending_queue instead).
		p.Processors = []string{memoryLimiterProcessorID, resourceProcessorID}
		if sig == Traces && cfg.TraceSampling < 1 {
			// Before batch, so that dropped spans are never batched.
			p.Processors = append(p.Processors, SamplerProcessorID)
		}
		if sig != Logs {
			p.Processors = append(p.Processors, batchProcessorID)
		}
		for _, id := range p.Processors {
			doc.Processors[id] = processor(cfg, id)
		}
		for _, e := range cfg.Exporters {
			if e.sends(sig) {
				p.Exporters = append(p.Exporters, e.ID)
				doc.Exporters[e.ID] = cfg.boundDiskQueue(cfg.paceRetries(e.ID, exporterConfig(e)))
			}
		}
		doc.Service.Pipelines[string(sig)] = p
	}

	var buf bytes.Buffer
	buf.WriteString("# fargate-otel collector config, rendered by sidecarconfig.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("render collector config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render collector config: %w", err)
	}
	return buf.Bytes(), nil
}

func (c Config) has(sig Signal) bool {
	for _, s := range c.Signals {
		if s == sig {
			return true
		}
	}
	return false
}

func (e Exporter) sends(sig Signal) bool {
	if len(e.Signals) == 0 {
		return true
	}
	for _, s := range e.Signals {
		if s == sig {
			return true
		}
	}
	return false
}

func receiversFor(cfg Config, sig Signal) []string {
	switch sig {
	case Logs:
		// otlp too, so that an app's OTLP log exporter (pointed at the
		// sidecar by the injector) is accepted rather than refused.
		return []string{fileLogReceiverID, otlpReceiverID}
	case Metrics:
		if cfg.KubeletStats.Disabled {
			return []string{otlpReceiverID}
		}
		return []string{kubeletStatsReceiverID, otlpReceiverID}
	default:
		return []string{otlpReceiverID}
	}
}

func receiver(cfg Config, id string) map[string]any {
	switch id {
	case fileLogReceiverID:
		return fileLog(cfg)
	case kubeletStatsReceiverID:
		return kubeletStats(cfg)
	default:
		return map[string]any{"protocols": map[string]any{
			"grpc": map[string]any{"endpoint": cfg.OTLP.GRPCEndpoint},
			"http": map[string]any{"endpoint": cfg.OTLP.HTTPEndpoint},
		}}
	}
}

// fileLog reads the files the wrapper writes exactly as a DaemonSet reads
// /var/log/pods on a node, so that records and attributes are the same.
func fileLog(cfg Config) map[string]any {
	m := map[string]any{
		"include":   strs(cfg.LogInclude),
		"start_at":  "beginning",
		"storage":   StorageExtensionID,
		"operators": []any{map[string]any{"type": "container_cri", "id": "container-parser"}},
		// container_cri is the distribution's CRI parser: the records of
		// the upstream container operator (format containerd), P/F pieces
		// joined by path and stream, k8s.* attributes from the path, at a
		// fraction of its CPU (cmd/fargate-otel-collector/internal/crioperator).
		"include_file_path": true,
		"include_file_name": false,
		// Joined P pieces keep the spaces at their seams.
		"preserve_trailing_whitespaces": true,
		// Refused data (memory_limiter, a full exporter queue) is retried
		// rather than dropped: the file keeps it, the app is not blocked.
		"retry_on_failure": map[string]any{
			"enabled":          true,
			"initial_interval": "1s",
			"max_interval":     "30s",
			"max_elapsed_time": "0s",
		},
	}
	if len(cfg.LogExclude) > 0 {
		m["exclude"] = strs(cfg.LogExclude)
	}
	// Parsing is operators of this one receiver, not a receiver per
	// container: the offsets file_storage keeps are the receiver's, so
	// that they stay valid when the parsing changes.
	if ops := parsingOperators(cfg.LogParsing); len(ops) > 0 {
		m["operators"] = append(m["operators"].([]any), ops...)
	}
	return m
}

func kubeletStats(cfg Config) map[string]any {
	m := map[string]any{
		"auth_type":           "serviceAccount",
		"endpoint":            cfg.KubeletStats.Endpoint,
		"collection_interval": cfg.KubeletStats.Interval.String(),
		"metric_groups":       []any{"pod", "container"},
	}
	if cfg.KubeletStats.CAFile != "" {
		m["ca_file"] = cfg.KubeletStats.CAFile
	}
	return m
}

func processor(cfg Config, id string) map[string]any {
	switch id {
	case memoryLimiterProcessorID:
		return memoryLimiter(cfg.MemoryLimitMiB)
	case resourceProcessorID:
		return resource(cfg)
	case SamplerProcessorID:
		// By trace ID with the collector's default hash seed, so that
		// every sidecar (and an SDK sampling the same way) keeps the
		// same traces whole.
		return map[string]any{"sampling_percentage": cfg.TraceSampling * 100}
	default:
		return map[string]any{}
	}
}

// memoryLimiter refuses data at 80% of the limit minus a 20% spike margin,
// below the GOMEMLIMIT the injector sets, so the collector sheds load (and
// file_log retries) before the kernel kills it.
func memoryLimiter(limitMiB int) map[string]any {
	if limitMiB == 0 {
		return map[string]any{
			"check_interval":         "1s",
			"limit_percentage":       80,
			"spike_limit_percentage": 20,
		}
	}
	return map[string]any{
		"check_interval":  "1s",
		"limit_mib":       limitMiB * 80 / 100,
		"spike_limit_mib": limitMiB * 20 / 100,
	}
}

// resource adds the pod's identity (semantic conventions) to everything
// that lacks it, OTLP from apps included. insert, not upsert: attributes
// already there are right (file_log's come from the path, kubelet_stats
// names each pod it reports, which matters where a node runs several pods).
func resource(cfg Config) map[string]any {
	attr := func(key, value string) map[string]any {
		return map[string]any{"key": key, "value": value, "action": "insert"}
	}
	attrs := []any{
		attr("k8s.pod.name", "${env:POD_NAME}"),
		attr("k8s.pod.uid", "${env:POD_UID}"),
		attr("k8s.namespace.name", "${env:POD_NAMESPACE}"),
		attr("k8s.node.name", "${env:NODE_NAME}"),
		attr("cloud.provider", "aws"),
		attr("cloud.platform", "aws_eks"),
	}
	if cfg.ClusterName != "" {
		attrs = append(attrs, attr("k8s.cluster.name", literal(cfg.ClusterName)))
	}
	return map[string]any{"attributes": attrs}
}

func fileStorage(cfg Config) map[string]any {
	return map[string]any{
		"directory":        cfg.StorageDir,
		"create_directory": true,
		// Compaction shrinks the files on the size-limited volume; its temp
		// files go there too (the root filesystem is read-only).
		"compaction": map[string]any{
			"directory":  cfg.StorageDir,
			"on_start":   true,
			"on_rebound": true,
		},
	}
}

// telemetry keeps the collector's own telemetry light: logs only, no
// metrics listener.
func telemetry(cfg Config) map[string]any {
	return map[string]any{
		"logs":    map[string]any{"level": cfg.LogLevel, "encoding": "json"},
		"metrics": map[string]any{"level": "none"},
	}
}

func exporterConfig(e Exporter) map[string]any {
	if e.Config == nil {
		return map[string]any{}
	}
	return e.Config
}

// literal escapes $ so that the collector does not expand a user's value as
// an ${env:...} reference.
func literal(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
