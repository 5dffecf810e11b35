package injector

import (
	corev1 "k8s.io/api/core/v1"
)

// Result is what Mutate did.
type Result struct {
	// Pod is a deep copy of the input, mutated when Injected. The input is
	// never modified. Nil only when the input was nil.
	Pod *corev1.Pod
	// Injected is true when Pod differs from the input.
	Injected bool
	// Skip says why nothing was injected (empty when Injected).
	Skip SkipReason
	// Warnings are admission warnings: what was skipped and why, with what
	// to do about it. One line each, prefixed with "fargate-otel: ".
	Warnings []string
	// Status is what was injected (also written to the status annotation).
	Status *Status
}

// SkipReason is a short, stable label (for metrics) of why a pod was left alone.
type SkipReason string

const (
	SkipAlreadyInjected SkipReason = "already-injected"
	SkipOptedOut        SkipReason = "opted-out"
	SkipNotFargate      SkipReason = "not-fargate"
	SkipNoSignals       SkipReason = "no-signals"
	SkipConflict        SkipReason = "conflict"
	SkipNeedsSidecars   SkipReason = "needs-native-sidecars"
	SkipWindows         SkipReason = "windows"
	SkipInvalid         SkipReason = "invalid"
	SkipConfigError     SkipReason = "config-error"
	SkipLimitRange      SkipReason = "limit-range"
	SkipInternalError   SkipReason = "internal-error"
)

// Status is the content of the fargate-otel.io/status annotation.
type Status struct {
	Version int `json:"version"`
	// Containers are the containers whose command was wrapped.
	Containers []string `json:"containers,omitempty"`
	// Unwrapped are selected containers left unwrapped (no command known).
	Unwrapped []string `json:"unwrapped,omitempty"`
	// OTLPEnv are the containers given OTEL_EXPORTER_OTLP_ENDPOINT/PROTOCOL.
	OTLPEnv []string `json:"otlpEnv,omitempty"`
	// Collector is "native-sidecar" or "container".
	Collector string `json:"collector"`
	// Signals are the enabled pipelines.
	Signals []string `json:"signals"`
	// KubeletStats is the kubelet stats mode (proxy, direct, off).
	KubeletStats string `json:"kubeletStats"`
	// ConfigHash names the collector config the pod starts with
	// (sidecarconfig.Hash of the YAML its settings render); the fleet
	// reports the hash of what each collector runs now.
	ConfigHash string `json:"configHash,omitempty"`
}
