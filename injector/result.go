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
	// OTLPEnv are the containers given the OTLP variable (OTLPInsecureEnv;
	// ENDPOINT and PROTOCOL in pods injected by earlier versions).
	OTLPEnv []string `json:"otlpEnv,omitempty"`
	// Collector is "native-sidecar" or "container".
	Collector string `json:"collector"`
	// Signals are the enabled pipelines.
	Signals []string `json:"signals"`
	// KubeletStats is the kubelet stats mode (proxy, direct, off).
	KubeletStats string `json:"kubeletStats"`
	// LogSources is the log source of each captured container: wrap, api
	// (the follower reads its log from the kubelet; stdout and stderr
	// merged, as stdout) or none (not captured: see the warnings). Absent
	// when logs are off, and in pods injected before log sources.
	LogSources map[string]LogSource `json:"logSources,omitempty"`
	// ConfigHash names the collector config the pod starts with
	// (sidecarconfig.Hash of the YAML its settings render); the fleet
	// reports the hash of what each collector runs now.
	ConfigHash string `json:"configHash,omitempty"`
}

// NotCaptured lists the selected containers whose logs no log source
// captures: those left unwrapped (their command is unknown, or they already
// mount one of the injector's paths) that the follower does not read from
// the kubelet either (log source api). The CLI's summary and its --strict
// read this rather than Unwrapped.
func (s *Status) NotCaptured() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, name := range s.Unwrapped {
		if s.LogSources[name] != LogSourceAPI {
			out = append(out, name)
		}
	}
	return out
}

// Followed lists the containers of log source api, in the order of
// Unwrapped.
func (s *Status) Followed() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, name := range s.Unwrapped {
		if s.LogSources[name] == LogSourceAPI {
			out = append(out, name)
		}
	}
	return out
}

func (s *Status) setLogSource(name string, src LogSource) {
	if s.LogSources == nil {
		s.LogSources = map[string]LogSource{}
	}
	s.LogSources[name] = src
}
