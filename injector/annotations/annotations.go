// Package annotations names every pod label and annotation the injector reads
// or writes, all under the fargate-otel.io/ prefix, and parses the ones a user
// sets into Options. Parsing never fails: a bad value keeps the default and
// yields a warning that says what to write instead, so that a typo never
// blocks a pod.
package annotations

// Prefix is the prefix of every fargate-otel label and annotation.
const Prefix = "fargate-otel.io/"

// Set by users.
const (
	// Inject is a namespace label ("enabled" opts the namespace in) and a pod
	// label or annotation ("disabled" opts the pod out).
	Inject = Prefix + "inject"
	// Containers lists, comma-separated, the containers whose output is
	// captured. Default: every regular container. Init containers, native
	// sidecars included, are captured only when named here.
	Containers = Prefix + "containers"
	// SkipContainers lists containers never captured (applied after Containers).
	SkipContainers = Prefix + "skip-containers"
	// Command gives the command of containers that have none in the pod spec:
	// a JSON array (when one captured container lacks a command) or a JSON
	// object mapping container names to arrays. It takes the place of the
	// spec's `command` field: the spec's `args` are still appended.
	Command = Prefix + "command"
	// Logs, Metrics and Traces turn one signal off ("disabled") or on ("enabled").
	Logs    = Prefix + "logs"
	Metrics = Prefix + "metrics"
	Traces  = Prefix + "traces"
	// LogFormat is the wrapper's file format: "cri" (default) or "raw".
	LogFormat = Prefix + "log-format"
	// LogMaxSize is the size at which the wrapper rotates a container's file.
	LogMaxSize = Prefix + "log-max-size"
	// LogMaxBackups is how many rotated files the wrapper keeps per container.
	LogMaxBackups = Prefix + "log-max-backups"
	// LogsVolumeSize is the sizeLimit of the fargate-otel-logs emptyDir.
	LogsVolumeSize = Prefix + "logs-volume-size"
	// Exporters names a ConfigMap in the pod's namespace whose key
	// exporters.yaml (or NAME/KEY) lists the exporters used instead of the
	// cluster defaults.
	Exporters = Prefix + "exporters"
	// CollectorResources is the collector's ResourceRequirements as JSON; when
	// set, Fargate sizing leaves the collector's requests alone.
	CollectorResources = Prefix + "collector-resources"
	// FargateSizing is "fit" (default: collector requests fitted into the
	// headroom Fargate's rounding already pays for) or "fixed" (the configured
	// requests as they are).
	FargateSizing = Prefix + "fargate-sizing"
)

// KubeletStats is a namespace label: the kubelet stats mode of the
// namespace's pods, "proxy", "direct" or "off", honoured when the injector
// allows that mode (kubeletStats.allowedModes). Namespace labels are for
// cluster admins to set; a pod cannot choose its mode (direct gives its
// service account nodes/proxy), so the same key on a pod is ignored with a
// warning.
const KubeletStats = Prefix + "kubelet-stats"

// Written by the injector.
const (
	// Status records what was injected; its presence makes the injection a
	// no-op (idempotence, reinvocation).
	Status = Prefix + "status"
	// FargateSizeBefore and FargateSizeAfter are the Fargate sizes computed
	// from the pod's requests without and with the injected containers, in
	// the format of the CapacityProvisioned annotation ("0.25vCPU 0.5GB").
	FargateSizeBefore = Prefix + "fargate-size-before"
	FargateSizeAfter  = Prefix + "fargate-size-after"
)

// Values of Inject.
const (
	Enabled  = "enabled"
	Disabled = "disabled"
)

// DefaultExportersKey is the ConfigMap key read when Exporters names only the ConfigMap.
const DefaultExportersKey = "exporters.yaml"
